//! `oxbpf run … --profile`: how often each instruction and each source
//! line (BTF line info) ran over all runs of the input, the hottest lines
//! first, as text or as one self-contained HTML page (`--html OUT.html`);
//! for the JIT, its time per run too. Counts come from the interpreter
//! (the same semantics as every engine), which steps every instruction.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::{Path, PathBuf};

use oxbpf_obj::ProgramDef;
use oxbpf_vm::program::Program;

/// Execution counts of one program, by instruction slot.
pub struct Profile {
    pub counts: Vec<u64>,
    pub runs: u64,
}

impl Profile {
    pub fn new(slots: usize) -> Profile {
        Profile {
            counts: vec![0; slots],
            runs: 0,
        }
    }

    pub fn hit(&mut self, pc: usize) {
        if let Some(c) = self.counts.get_mut(pc) {
            *c += 1;
        }
    }

    fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Source files read from disk for line text BTF does not carry: the
/// recorded path, or beside the object.
pub struct Sources {
    dir: Option<PathBuf>,
    files: HashMap<String, Option<Vec<String>>>,
}

impl Sources {
    pub fn new(object: Option<&Path>) -> Sources {
        Sources {
            dir: object.and_then(Path::parent).map(Path::to_path_buf),
            files: HashMap::new(),
        }
    }

    /// The text of `line` of `file` (`btf` when BTF has it).
    fn text(&mut self, file: &str, line: u32, btf: &str) -> String {
        if !btf.trim().is_empty() {
            return btf.trim().to_string();
        }
        let dir = self.dir.clone();
        let lines = self.files.entry(file.to_string()).or_insert_with(|| {
            let mut candidates = vec![PathBuf::from(file)];
            if let Some(d) = &dir {
                candidates.push(d.join(file));
                candidates.push(d.join(base(file)));
            }
            candidates
                .iter()
                .find_map(|p| std::fs::read_to_string(p).ok())
                .map(|t| t.lines().map(str::to_string).collect())
        });
        lines
            .as_ref()
            .and_then(|l| l.get((line as usize).checked_sub(1)?))
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    }
}

/// The hottest source lines (at most 15 that ran): count and
/// `file:line  text`; `None` when BTF has no line info at all.
fn hot_lines(def: &ProgramDef, p: &Profile, src: &mut Sources) -> Option<Vec<(u64, String)>> {
    if def.line_info.is_empty() {
        return None;
    }
    let mut by: BTreeMap<(&str, u32), (u64, &str)> = BTreeMap::new();
    for (pc, &c) in p.counts.iter().enumerate() {
        if let Some(l) = def.line_for(pc) {
            by.entry((l.file.as_str(), l.line))
                .or_insert((0, &l.text))
                .0 += c;
        }
    }
    // (count, file, line, BTF text), the hottest first.
    let mut v: Vec<_> = by
        .into_iter()
        .filter(|(_, (c, _))| *c > 0)
        .map(|((file, line), (c, text))| (c, file, line, text))
        .collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then(a.2.cmp(&b.2)));
    Some(
        v.into_iter()
            .take(15)
            .map(|(c, file, line, text)| {
                (
                    c,
                    format!("{}:{line}  {}", base(file), src.text(file, line, text)),
                )
            })
            .collect(),
    )
}

/// The listing, instruction by instruction, with a source line before
/// the first instruction of each.
enum Entry {
    /// `file:line text`.
    Source(String),
    Insn {
        pc: usize,
        count: u64,
        text: String,
    },
}

fn entries(def: &ProgramDef, program: &Program, p: &Profile, src: &mut Sources) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut last_line = None;
    for l in program.instructions() {
        let pc = l.index;
        if let Some(line) = def.line_for(pc)
            && last_line != Some((line.file.as_str(), line.line))
        {
            last_line = Some((line.file.as_str(), line.line));
            out.push(Entry::Source(format!(
                "{}:{} {}",
                base(&line.file),
                line.line,
                src.text(&line.file, line.line, &line.text)
            )));
        }
        out.push(Entry::Insn {
            pc,
            count: p.counts.get(pc).copied().unwrap_or(0),
            text: l.insn.text(),
        });
    }
    out
}

fn base(file: &str) -> &str {
    file.rsplit('/').next().unwrap_or(file)
}

fn pct(c: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        c as f64 * 100.0 / total as f64
    }
}

/// The text report: totals, the hottest source lines, every instruction
/// with its count.
pub fn report(
    def: &ProgramDef,
    program: &Program,
    p: &Profile,
    jit_ns: Option<f64>,
    src: &mut Sources,
) -> String {
    let total = p.total();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "profile of `{}`: {} runs, {} instructions executed ({:.1} per run)",
        def.name,
        p.runs,
        total,
        total as f64 / p.runs.max(1) as f64
    );
    if let Some(ns) = jit_ns {
        let _ = writeln!(s, "JIT: {ns:.1} ns per run");
    }
    match hot_lines(def, p, src) {
        None => {
            let _ = writeln!(s, "(no BTF line info: per-instruction counts only)");
        }
        Some(hot) => {
            let _ = writeln!(s, "hottest source lines:");
            let _ = writeln!(s, "{:>12} {:>6}  line", "count", "%");
            for (c, label) in hot {
                let _ = writeln!(s, "{c:>12} {:>5.1}%  {label}", pct(c, total));
            }
        }
    }
    let _ = writeln!(s, "instructions:");
    for e in entries(def, program, p, src) {
        let _ = match e {
            Entry::Source(line) => writeln!(s, "{:>12}         ; {line}", ""),
            Entry::Insn { pc, count, text } => writeln!(
                s,
                "{:>12} {:>5.1}%  {pc:>5}: {text}",
                if count == 0 {
                    "-".to_string()
                } else {
                    count.to_string()
                },
                pct(count, total),
            ),
        };
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One self-contained page: the hottest lines and the listing, each
/// instruction's count as a bar and a heat color.
pub fn html(
    def: &ProgramDef,
    program: &Program,
    p: &Profile,
    jit_ns: Option<f64>,
    src: &mut Sources,
) -> String {
    let total = p.total();
    let max = p.counts.iter().copied().max().unwrap_or(0).max(1);
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>oxbpf profile: {name}</title><style>\
body{{font:13px/1.4 ui-monospace,monospace;margin:1.5em;color:#222}}\
table{{border-collapse:collapse}}td,th{{padding:1px 8px;text-align:right;white-space:pre}}\
td.t{{text-align:left}}tr.src td{{color:#666;background:#f4f4f4}}\
.bar{{display:inline-block;height:9px;background:#d9480f}}</style></head><body>\
<h1>Profile of <code>{name}</code></h1><p id=\"summary\">{runs} runs, {total} instructions executed ({per:.1} per run){jit}</p>",
        name = esc(&def.name),
        runs = p.runs,
        per = total as f64 / p.runs.max(1) as f64,
        jit = jit_ns
            .map(|n| format!("; JIT {n:.1} ns per run"))
            .unwrap_or_default(),
    );
    if let Some(hot) = hot_lines(def, p, src) {
        let _ = write!(
            s,
            "<h2>Hottest source lines</h2><table id=\"lines\"><tr><th>count</th><th>%</th><th class=\"t\">line</th></tr>"
        );
        for (c, label) in hot {
            let _ = write!(
                s,
                "<tr><td>{c}</td><td>{:.1}</td><td class=\"t\">{}</td></tr>",
                pct(c, total),
                esc(&label)
            );
        }
        let _ = write!(s, "</table>");
    }
    let _ = write!(
        s,
        "<h2>Instructions</h2><table id=\"insns\"><tr><th>count</th><th>%</th><th></th><th>pc</th><th class=\"t\">instruction</th></tr>"
    );
    for e in entries(def, program, p, src) {
        let _ = match e {
            Entry::Source(line) => write!(
                s,
                "<tr class=\"src\"><td></td><td></td><td></td><td></td><td class=\"t\">{}</td></tr>",
                esc(&line)
            ),
            Entry::Insn { pc, count, text } => {
                let width = (count as f64 / max as f64 * 120.0).round() as u32;
                write!(
                    s,
                    "<tr data-pc=\"{pc}\" data-count=\"{count}\"><td>{count}</td><td>{:.1}</td><td class=\"t\"><span class=\"bar\" style=\"width:{width}px\"></span></td><td>{pc}</td><td class=\"t\">{}</td></tr>",
                    pct(count, total),
                    esc(&text)
                )
            }
        };
    }
    s.push_str("</table></body></html>\n");
    s
}
