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

/// A source line and what ran of it.
struct Line<'a> {
    file: &'a str,
    line: u32,
    text: &'a str,
    count: u64,
    insns: usize,
}

/// Counts summed per source line (the instructions BTF attributes to it).
fn lines<'a>(def: &'a ProgramDef, p: &Profile) -> Vec<Line<'a>> {
    let mut by: BTreeMap<(&str, u32), Line<'a>> = BTreeMap::new();
    for (pc, &c) in p.counts.iter().enumerate() {
        let Some(l) = def.line_for(pc) else {
            continue;
        };
        let e = by.entry((l.file.as_str(), l.line)).or_insert(Line {
            file: &l.file,
            line: l.line,
            text: &l.text,
            count: 0,
            insns: 0,
        });
        e.count += c;
        e.insns += usize::from(c > 0);
    }
    let mut v: Vec<Line> = by.into_values().collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.line.cmp(&b.line)));
    v
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
    let ls = lines(def, p);
    if ls.is_empty() {
        let _ = writeln!(s, "(no BTF line info: per-instruction counts only)");
    } else {
        let _ = writeln!(s, "hottest source lines:");
        let _ = writeln!(s, "{:>12} {:>6}  line", "count", "%");
        for l in ls.iter().filter(|l| l.count > 0).take(15) {
            let _ = writeln!(
                s,
                "{:>12} {:>5.1}%  {}:{}  {}",
                l.count,
                pct(l.count, total),
                base(l.file),
                l.line,
                src.text(l.file, l.line, l.text)
            );
        }
    }
    let _ = writeln!(s, "instructions:");
    let mut last_line = None;
    for l in program.instructions() {
        let pc = l.index;
        let c = p.counts.get(pc).copied().unwrap_or(0);
        if let Some(line) = def.line_for(pc)
            && last_line != Some((line.file.as_str(), line.line))
        {
            last_line = Some((line.file.as_str(), line.line));
            let _ = writeln!(
                s,
                "{:>12}         ; {}:{} {}",
                "",
                base(&line.file),
                line.line,
                src.text(&line.file, line.line, &line.text)
            );
        }
        let _ = writeln!(
            s,
            "{:>12} {:>5.1}%  {pc:>5}: {}",
            if c == 0 {
                "-".to_string()
            } else {
                c.to_string()
            },
            pct(c, total),
            l.insn.text()
        );
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
    let ls = lines(def, p);
    if !ls.is_empty() {
        let _ = write!(
            s,
            "<h2>Hottest source lines</h2><table id=\"lines\"><tr><th>count</th><th>%</th><th class=\"t\">line</th></tr>"
        );
        for l in ls.iter().filter(|l| l.count > 0).take(15) {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{:.1}</td><td class=\"t\">{}:{}  {}</td></tr>",
                l.count,
                pct(l.count, total),
                esc(base(l.file)),
                l.line,
                esc(&src.text(l.file, l.line, l.text))
            );
        }
        let _ = write!(s, "</table>");
    }
    let _ = write!(
        s,
        "<h2>Instructions</h2><table id=\"insns\"><tr><th>count</th><th>%</th><th></th><th>pc</th><th class=\"t\">instruction</th></tr>"
    );
    let mut last_line = None;
    for l in program.instructions() {
        let pc = l.index;
        let c = p.counts.get(pc).copied().unwrap_or(0);
        if let Some(line) = def.line_for(pc)
            && last_line != Some((line.file.as_str(), line.line))
        {
            last_line = Some((line.file.as_str(), line.line));
            let _ = write!(
                s,
                "<tr class=\"src\"><td></td><td></td><td></td><td></td><td class=\"t\">{}:{} {}</td></tr>",
                esc(base(&line.file)),
                line.line,
                esc(&src.text(&line.file, line.line, &line.text))
            );
        }
        let width = (c as f64 / max as f64 * 120.0).round() as u32;
        let _ = write!(
            s,
            "<tr data-pc=\"{pc}\" data-count=\"{c}\"><td>{c}</td><td>{:.1}</td><td class=\"t\"><span class=\"bar\" style=\"width:{width}px\"></span></td><td>{pc}</td><td class=\"t\">{}</td></tr>",
            pct(c, total),
            esc(&l.insn.text())
        );
    }
    s.push_str("</table></body></html>\n");
    s
}
