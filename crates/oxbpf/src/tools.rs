//! `oxbpf tool`: ready tools written in the tracing language and shipped
//! inside the binary (`crates/oxbpf/tools/NAME.bt`).
//!
//! A tool's options are declared in the comment lines at the top of its
//! script, and reach the script as macros defined before its first line
//! (`#ifdef FILTER_PID … pid == FILTER_PID`), so one script serves every
//! combination and costs nothing for the options not given:
//!
//! ```text
//! // tool: execsnoop: trace new processes, each exec() with its arguments
//! // option: -T --time TIMESTAMP: print a time column (HH:MM:SS)
//! // option: -u --uid UID:int FILTER_UID: trace this user's processes only
//! // option: -n --name NAME:str FILTER_NAME: only commands whose name contains NAME
//! // arg: INTERVAL:int INTERVAL: seconds between summaries
//! ```
//!
//! A tool whose script counts by stack says so with `// stacks: yes`, and
//! gets `--folded FILE` and `--flamegraph FILE.svg` (given either, the
//! script sees the macro `FOLDED`: it then leaves its stack maps to them,
//! keyed in folding's order); one that draws
//! histograms says `// plot: yes` and gets `--plot FILE.svg`;
//! `// conflicts: A B` makes the options of macros A and B exclusive.
//! Every tool takes `--json`: its output as bpftrace's NDJSON records (a
//! line per printf, a record per map printed: one per interval).
//!
//! An option with a value is an integer (`:int`, checked), a string
//! (`:str`, given to the script as a string literal) or a block device
//! (`:disk`, a name such as `vda` or `/dev/vda`, given to the script as the
//! kernel's `dev_t` that block tracepoints carry); one without defines its
//! macro as 1.

use anyhow::{Result, bail};
use std::process::ExitCode;

/// The scripts, by name.
const SCRIPTS: &[(&str, &str)] = &[
    ("execsnoop", include_str!("../tools/execsnoop.bt")),
    ("opensnoop", include_str!("../tools/opensnoop.bt")),
    ("syscount", include_str!("../tools/syscount.bt")),
    ("killsnoop", include_str!("../tools/killsnoop.bt")),
    ("runqlat", include_str!("../tools/runqlat.bt")),
    ("tcpconnect", include_str!("../tools/tcpconnect.bt")),
    ("tcplife", include_str!("../tools/tcplife.bt")),
    ("exitsnoop", include_str!("../tools/exitsnoop.bt")),
    ("sigsnoop", include_str!("../tools/sigsnoop.bt")),
    ("tcpstates", include_str!("../tools/tcpstates.bt")),
    ("capable", include_str!("../tools/capable.bt")),
    ("biolatency", include_str!("../tools/biolatency.bt")),
    ("biosnoop", include_str!("../tools/biosnoop.bt")),
    ("bitesize", include_str!("../tools/bitesize.bt")),
    ("biostacks", include_str!("../tools/biostacks.bt")),
    ("profile", include_str!("../tools/profile.bt")),
    ("offcputime", include_str!("../tools/offcputime.bt")),
    ("tcpaccept", include_str!("../tools/tcpaccept.bt")),
    ("tcpretrans", include_str!("../tools/tcpretrans.bt")),
    ("oomkill", include_str!("../tools/oomkill.bt")),
    ("cpudist", include_str!("../tools/cpudist.bt")),
    ("softirqs", include_str!("../tools/softirqs.bt")),
    ("hardirqs", include_str!("../tools/hardirqs.bt")),
    ("statsnoop", include_str!("../tools/statsnoop.bt")),
    ("mountsnoop", include_str!("../tools/mountsnoop.bt")),
    ("drsnoop", include_str!("../tools/drsnoop.bt")),
    ("wakeuptime", include_str!("../tools/wakeuptime.bt")),
    ("futexctn", include_str!("../tools/futexctn.bt")),
    ("runqlen", include_str!("../tools/runqlen.bt")),
    ("cpuwalk", include_str!("../tools/cpuwalk.bt")),
    ("naptime", include_str!("../tools/naptime.bt")),
    ("pidpersec", include_str!("../tools/pidpersec.bt")),
    ("setuids", include_str!("../tools/setuids.bt")),
    ("syncsnoop", include_str!("../tools/syncsnoop.bt")),
    ("threadsnoop", include_str!("../tools/threadsnoop.bt")),
    ("writeback", include_str!("../tools/writeback.bt")),
    ("bashreadline", include_str!("../tools/bashreadline.bt")),
    ("gethostlatency", include_str!("../tools/gethostlatency.bt")),
    ("sslsnoop", include_str!("../tools/sslsnoop.bt")),
    ("ssllatency", include_str!("../tools/ssllatency.bt")),
    ("loads", include_str!("../tools/loads.bt")),
    ("tcpdrop", include_str!("../tools/tcpdrop.bt")),
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Value {
    Flag,
    Int,
    Str,
    Disk,
}

#[derive(Debug)]
struct Opt {
    short: Option<char>,
    long: String,
    placeholder: String,
    value: Value,
    define: String,
    help: String,
}

#[derive(Debug)]
struct Arg {
    placeholder: String,
    value: Value,
    define: String,
    help: String,
}

/// A tool: its script and what its header declares.
#[derive(Debug)]
pub struct Tool {
    pub name: &'static str,
    pub about: String,
    opts: Vec<Opt>,
    args: Vec<Arg>,
    /// `// stacks: yes`: `--folded` and `--flamegraph`.
    stacks: bool,
    /// `// plot: yes`: `--plot`.
    plot: bool,
    /// `// conflicts: A B …`: at most one of these options.
    conflicts: Vec<Vec<String>>,
    source: &'static str,
}

/// `PLACEHOLDER:int` / `PLACEHOLDER:str`.
fn value_of(word: &str) -> Option<(String, Value)> {
    let (p, k) = word.split_once(':')?;
    let v = match k {
        "int" => Value::Int,
        "str" => Value::Str,
        "disk" => Value::Disk,
        _ => return None,
    };
    Some((p.to_string(), v))
}

/// A block device's number as the kernel's block tracepoints carry it
/// (`dev_t`: major << 20 | minor), from /sys/class/block/NAME/dev.
fn disk_number(name: &str) -> Result<i64, String> {
    let base = name.strip_prefix("/dev/").unwrap_or(name);
    if base.is_empty() || base.contains('/') {
        return Err(format!(
            "`{name}` is not a block device's name (such as vda)"
        ));
    }
    let dev = std::fs::read_to_string(format!("/sys/class/block/{base}/dev"))
        .map_err(|_| format!("there is no block device `{base}` (see /sys/class/block)"))?;
    let (major, minor) = dev
        .trim()
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)))
        .ok_or_else(|| format!("/sys/class/block/{base}/dev holds `{}`", dev.trim()))?;
    Ok(major << 20 | minor)
}

/// A header directive's `yes` or `no`.
fn yes_no(value: &str) -> Option<bool> {
    match value.trim() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// Reads a tool's header (every `// tool:`, `// option:` and `// arg:`
/// line before the first line that is not a comment).
fn header(name: &'static str, source: &'static str) -> Result<Tool, String> {
    let mut tool = Tool {
        name,
        about: String::new(),
        opts: Vec::new(),
        args: Vec::new(),
        stacks: false,
        plot: false,
        conflicts: Vec::new(),
        source,
    };
    for (n, line) in source.lines().enumerate() {
        let Some(c) = line.trim().strip_prefix("//") else {
            break;
        };
        let bad = |what: &str| format!("{name}.bt:{}: {what}: `{}`", n + 1, line.trim());
        let c = c.trim();
        if let Some(rest) = c.strip_prefix("tool:") {
            let (n2, about) = rest
                .split_once(':')
                .ok_or_else(|| bad("expected `tool: NAME: ABOUT`"))?;
            if n2.trim() != name {
                return Err(bad("the tool's name differs from its file's"));
            }
            tool.about = about.trim().to_string();
        } else if let Some(rest) = c.strip_prefix("option:") {
            let (spec, help) = rest
                .split_once(": ")
                .ok_or_else(|| bad("expected `option: FLAGS MACRO: HELP`"))?;
            let mut words: Vec<&str> = spec.split_whitespace().collect();
            let define = words.pop().ok_or_else(|| bad("no macro"))?.to_string();
            let mut opt = Opt {
                short: None,
                long: String::new(),
                placeholder: String::new(),
                value: Value::Flag,
                define,
                help: help.trim().to_string(),
            };
            for w in words {
                if let Some(l) = w.strip_prefix("--") {
                    opt.long = l.to_string();
                } else if let Some(s) = w.strip_prefix('-') {
                    let mut cs = s.chars();
                    match (cs.next(), cs.next()) {
                        (Some(c), None) => opt.short = Some(c),
                        _ => return Err(bad("a short option is one letter")),
                    }
                } else if let Some((p, v)) = value_of(w) {
                    opt.placeholder = p;
                    opt.value = v;
                } else {
                    return Err(bad("expected -X, --long, VALUE:int or VALUE:str"));
                }
            }
            if opt.long.is_empty() {
                return Err(bad("every option has a long name"));
            }
            tool.opts.push(opt);
        } else if let Some(rest) = c.strip_prefix("conflicts:") {
            let set: Vec<String> = rest.split_whitespace().map(String::from).collect();
            if set.len() < 2 {
                return Err(bad("expected `conflicts: MACRO MACRO…`"));
            }
            tool.conflicts.push(set);
        } else if let Some(rest) = c.strip_prefix("stacks:") {
            tool.stacks = yes_no(rest).ok_or_else(|| bad("expected `stacks: yes`"))?;
        } else if let Some(rest) = c.strip_prefix("plot:") {
            tool.plot = yes_no(rest).ok_or_else(|| bad("expected `plot: yes`"))?;
        } else if let Some(rest) = c.strip_prefix("arg:") {
            let (spec, help) = rest
                .split_once(": ")
                .ok_or_else(|| bad("expected `arg: VALUE:int MACRO: HELP`"))?;
            let words: Vec<&str> = spec.split_whitespace().collect();
            let [v, define] = words[..] else {
                return Err(bad("expected `arg: VALUE:int MACRO: HELP`"));
            };
            let (placeholder, value) =
                value_of(v).ok_or_else(|| bad("expected VALUE:int or VALUE:str"))?;
            tool.args.push(Arg {
                placeholder,
                value,
                define: define.to_string(),
                help: help.trim().to_string(),
            });
        }
    }
    if tool.about.is_empty() {
        return Err(format!("{name}.bt: no `// tool: {name}: ABOUT` line"));
    }
    for m in tool.conflicts.iter().flatten() {
        if !tool.opts.iter().any(|o| &o.define == m) {
            return Err(format!(
                "{name}.bt: `conflicts:` names `{m}`, which no option defines"
            ));
        }
    }
    Ok(tool)
}

/// Every shipped tool, in name order.
pub fn tools() -> Vec<Tool> {
    let mut v: Vec<Tool> = SCRIPTS
        .iter()
        .map(|(n, s)| header(n, s).unwrap_or_else(|e| panic!("a shipped tool's header: {e}")))
        .collect();
    v.sort_by_key(|t| t.name);
    v
}

impl Tool {
    fn command(&self) -> clap::Command {
        let mut c = clap::Command::new(self.name)
            .bin_name(format!("oxbpf tool {}", self.name))
            .about(self.about.clone())
            .arg(
                clap::Arg::new("__duration")
                    .long("duration")
                    .value_name("S")
                    .value_parser(clap::value_parser!(f64))
                    .help("Stop after this many seconds"),
            )
            .arg(
                clap::Arg::new("__bytecode")
                    .long("bytecode")
                    .action(clap::ArgAction::SetTrue)
                    .help("Print the generated eBPF (checked by oxbpf's verifier) and exit"),
            )
            .arg(
                clap::Arg::new("__output")
                    .short('o')
                    .long("output")
                    .value_name("FILE")
                    .help("Write the output here instead of stdout"),
            )
            .arg(
                clap::Arg::new("__json")
                    .long("json")
                    .action(clap::ArgAction::SetTrue)
                    .help("Write the output as NDJSON records (bpftrace's -f json): one per line printed, one per map printed"),
            );
        if self.plot {
            c = c.arg(
                clap::Arg::new("__plot")
                    .long("plot")
                    .value_name("FILE.svg")
                    .help("At the end, draw the histograms as bar charts in this SVG file"),
            );
        }
        if self.stacks {
            c = c
                .arg(
                    clap::Arg::new("__flamegraph")
                        .long("flamegraph")
                        .value_name("FILE.svg")
                        .help("At the end, draw the stacks as an interactive SVG flame graph in this file"),
                )
                .arg(
                    clap::Arg::new("__folded")
                        .long("folded")
                        .value_name("FILE")
                        .help("At the end, write the stacks to this file folded (`comm;outer;…;inner COUNT`)"),
                );
        }
        for o in &self.opts {
            let mut a = clap::Arg::new(o.define.clone())
                .long(o.long.clone())
                .help(o.help.clone());
            if let Some(s) = o.short {
                a = a.short(s);
            }
            a = match o.value {
                Value::Flag => a.action(clap::ArgAction::SetTrue),
                Value::Int => a
                    .value_name(o.placeholder.clone())
                    .value_parser(clap::value_parser!(i64)),
                Value::Str => a.value_name(o.placeholder.clone()),
                Value::Disk => a
                    .value_name(o.placeholder.clone())
                    .value_parser(disk_number),
            };
            c = c.arg(a);
        }
        for (i, set) in self.conflicts.iter().enumerate() {
            c = c.group(
                clap::ArgGroup::new(format!("__conflicts{i}"))
                    .args(set.clone())
                    .multiple(false),
            );
        }
        for a in &self.args {
            let mut x = clap::Arg::new(a.define.clone())
                .value_name(a.placeholder.clone())
                .help(a.help.clone());
            match a.value {
                Value::Int => x = x.value_parser(clap::value_parser!(i64)),
                Value::Disk => x = x.value_parser(disk_number),
                Value::Flag | Value::Str => {}
            }
            c = c.arg(x);
        }
        c
    }

    /// The macros the command line defines, or clap's error (help and
    /// bad options alike).
    fn defines(
        &self,
        argv: &[String],
    ) -> Result<(Vec<(String, String)>, clap::ArgMatches), clap::Error> {
        let m = self.command().try_get_matches_from(
            std::iter::once(self.name.to_string()).chain(argv.iter().cloned()),
        )?;
        let mut d = Vec::new();
        let kinds = self
            .opts
            .iter()
            .map(|o| (&o.define, o.value))
            .chain(self.args.iter().map(|a| (&a.define, a.value)));
        for (define, value) in kinds {
            match value {
                Value::Flag => {
                    if m.get_flag(define) {
                        d.push((define.clone(), "1".into()));
                    }
                }
                Value::Int | Value::Disk => {
                    if let Some(v) = m.get_one::<i64>(define) {
                        d.push((define.clone(), v.to_string()));
                    }
                }
                Value::Str => {
                    if let Some(v) = m.get_one::<String>(define) {
                        let lit = serde_json::to_string(v).unwrap_or_else(|_| "\"\"".into());
                        d.push((define.clone(), lit));
                    }
                }
            }
        }
        Ok((d, m))
    }
}

/// `oxbpf tool list | NAME [OPTIONS]`.
pub fn tool(argv: &[String]) -> Result<ExitCode> {
    let all = tools();
    let Some(name) = argv.first() else {
        bail!(
            "give a tool's name ({}) or `list`",
            all.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
        );
    };
    if name == "list" {
        for t in &all {
            println!("{:<12} {}", t.name, t.about);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(t) = all.iter().find(|t| t.name == name) else {
        let names: Vec<&str> = all.iter().map(|t| t.name).collect();
        let hint = oxbpf_trace::diag::nearest(name, names.iter().copied())
            .map(|n| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        bail!("there is no tool `{name}`{hint}; `oxbpf tool list` lists them");
    };
    let (mut defines, m) = match t.defines(&argv[1..]) {
        Ok(x) => x,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return Ok(ExitCode::from(code));
        }
    };
    // A stacks tool written for folding keeps its maps for --folded and
    // --flamegraph (in the order folding wants) instead of printing them.
    if t.stacks && (m.contains_id("__folded") || m.contains_id("__flamegraph")) {
        defines.push(("FOLDED".into(), "1".into()));
    }
    let a = crate::trace::TraceArgs {
        program: Some(t.source.to_string()),
        name: Some(format!("{}.bt", t.name)),
        tool: true,
        defines,
        quiet: true,
        format: if m.get_flag("__json") { "json" } else { "text" }.into(),
        plot: t
            .plot
            .then(|| m.get_one::<String>("__plot").map(Into::into))
            .flatten(),
        duration: m.get_one::<f64>("__duration").copied(),
        debug: m.get_flag("__bytecode").then(|| "bytecode".to_string()),
        output: m.get_one::<String>("__output").map(Into::into),
        folded: t
            .stacks
            .then(|| m.get_one::<String>("__folded").map(Into::into))
            .flatten(),
        flamegraph: t
            .stacks
            .then(|| m.get_one::<String>("__flamegraph").map(Into::into))
            .flatten(),
        ..crate::trace::TraceArgs::default()
    };
    // Errors name the tool's script (`syscount.bt:LINE:COL`).
    crate::trace::trace(&a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_header_reads() {
        let all = tools();
        assert_eq!(all.len(), SCRIPTS.len());
        for t in &all {
            t.command().debug_assert();
        }
    }

    #[test]
    fn options_become_macros() {
        let t = header(
            "demo",
            "// tool: demo: a demo\n// option: -p --pid PID:int FILTER_PID: this pid\n// option: -n --name NAME:str FILTER_NAME: by name\n// option: -x --failed FAILED: failures only\n// arg: INTERVAL:int INTERVAL: seconds\nBEGIN {}\n",
        )
        .unwrap();
        let argv: Vec<String> = ["-p", "42", "--name", "a\"b", "-x", "5"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (d, _) = t.defines(&argv).unwrap();
        assert_eq!(
            d,
            vec![
                ("FILTER_PID".to_string(), "42".to_string()),
                ("FILTER_NAME".to_string(), "\"a\\\"b\"".to_string()),
                ("FAILED".to_string(), "1".to_string()),
                ("INTERVAL".to_string(), "5".to_string()),
            ]
        );
        // An integer option refuses text (nothing reaches the script).
        let bad: Vec<String> = ["-p", "1; exit()"].iter().map(|s| s.to_string()).collect();
        assert!(t.defines(&bad).is_err());
    }

    #[test]
    fn malformed_headers_are_named() {
        let e = header("x", "// tool: y: other\n").unwrap_err();
        assert!(e.contains("x.bt:1"), "{e}");
        let e = header("x", "// tool: x: ok\n// option: -pp --pid P:int M: h\n").unwrap_err();
        assert!(e.contains("x.bt:2") && e.contains("one letter"), "{e}");
        assert!(header("x", "BEGIN {}\n").is_err());
    }
}
