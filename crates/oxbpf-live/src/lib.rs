//! # oxbpf-live: programs on live kernel events
//!
//! Load a BPF ELF object into the kernel, attach its programs to the hooks
//! their section names say ([`hook::hook_for`], libbpf's conventions),
//! stream what they emit through ring buffers, read their maps — and leave
//! nothing behind: a [`Session`] owns every program, map, link and perf
//! event it creates, and dropping it (also on an error half way) detaches
//! and closes them all.
//!
//! ```no_run
//! let object = oxbpf_obj::load(&std::fs::read("syscount.o")?)?;
//! let mut session = oxbpf_live::Session::load(object, &Default::default())?;
//! session.attach_all()?;
//! let mut events = session.ring_buffer("events")?;
//! events.consume(|record| println!("{record:02x?}"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Attached today: tracepoints (perf events through BPF links), raw
//! tracepoints, BTF tracepoints (`tp_btf`, loaded with the kernel's BTF
//! id of the tracepoint), uprobes and uretprobes (perf events of the uprobe PMU),
//! uprobe.multi links, `perf_event` sampling on every CPU, XDP and tcx
//! links on an interface, socket filters on a packet socket, cgroup links. Every other hook is recognised and refused with what is
//! missing ([`LiveError::Unsupported`]), never a bare errno.

#![forbid(unsafe_code)]

pub mod alternates;
pub mod hook;
pub mod symbols;
pub mod uprobe;
pub mod usdt;

use std::os::fd::AsRawFd;

pub use hook::{Hook, hook_for};
use oxbpf_obj::{Object, ProgramType};
use oxbpf_sys::perf::PerfEvent;
use oxbpf_sys::ringbuf::RingBuf;
use oxbpf_sys::{Link, Map, SysError};

/// What can go wrong, naming the program and the thing at fault.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("bpf(2) is not usable here (run as root): {0}")]
    NoBpf(SysError),
    #[error("map `{map}` could not be created: {error}")]
    Map { map: String, error: SysError },
    #[error("program `{program}`: the kernel's verifier rejected it: {summary}")]
    Rejected {
        program: String,
        summary: String,
        log: String,
    },
    #[error("map `{0}` has max_entries 0: give it a size (--map {0}.max_entries=N)")]
    Unsized(String),
    #[error("program `{program}`: interface `{iface}` does not exist")]
    NoInterface { program: String, iface: String },
    #[error("program `{program}`: {error}")]
    Usdt {
        program: String,
        error: Box<usdt::UsdtError>,
    },
    #[error("pinning {what}: {error}")]
    Pin { what: String, error: SysError },
    #[error("kconfig extern `{name}`: {why}")]
    Kconfig { name: String, why: String },
    #[error("no program `{0}` in the object")]
    NoProgram(String),
    #[error("no map `{0}` in the object")]
    NoMap(String),
    #[error("map `{map}` is a {kind} map, not a ring buffer or perf event array")]
    NotRingBuf { map: String, kind: &'static str },
    #[error("program `{program}`: {error}")]
    Section {
        program: String,
        error: hook::HookError,
    },
    #[error("program `{program}`: {error}")]
    Tracepoint {
        program: String,
        error: oxbpf_sys::perf::TracepointError,
    },
    #[error("program `{program}` ({hook}): {reason}")]
    Unsupported {
        program: String,
        hook: String,
        reason: String,
    },
    #[error("program `{program}` ({hook}): attaching failed: {error}")]
    Attach {
        program: String,
        hook: String,
        error: SysError,
    },
    #[error("map `{map}`: {error}")]
    MapAccess { map: String, error: SysError },
    #[error("program `{program}`: {error}")]
    Uprobe {
        program: String,
        error: uprobe::UprobeError,
    },
}

/// Load and attach options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The type for programs whose section names none.
    pub default_type: Option<ProgramType>,
    /// Only this process, for probes that can filter by process (uprobes,
    /// uprobe.multi, sampling events); every process when `None`.
    pub pid: Option<i32>,
    /// What `perf_event` programs sample.
    pub sampling: Sampling,
    /// The interface for XDP, tc and socket-filter programs.
    pub iface: Option<String>,
    /// How XDP programs attach.
    pub xdp_mode: XdpMode,
    /// The cgroup (a cgroup v2 directory) for cgroup programs.
    pub cgroup: Option<std::path::PathBuf>,
    /// Keep going when the kernel rejects a program or refuses a map: the
    /// rest loads, and attaching a rejected program reports its rejection
    /// (by default the whole load fails, as libbpf's does).
    pub partial: bool,
    /// Where maps marked `LIBBPF_PIN_BY_NAME` are found and pinned
    /// (libbpf's `pin_root_path`); `None` is libbpf's default, /sys/fs/bpf.
    /// A map pinned there is reused when it matches its definition, and a
    /// new one stays pinned after the session, as with libbpf.
    pub pin_root: Option<std::path::PathBuf>,
    /// Of programs that are alternates for one event (`tp_btf/X`,
    /// `raw_tp/X`, `tracepoint/C/X`; `fentry/F`, `kprobe/F`; `fexit/F`,
    /// `kretprobe/F`), load only the best the kernel supports
    /// ([`alternates`]); see [`Session::choices`].
    pub auto: bool,
    /// The sockmap or sockhash (a map of the object, by name) that
    /// `sk_msg`/`sk_skb` programs attach to; unnecessary when the object
    /// has just one.
    pub sockmap: Option<String>,
}

/// Where an XDP program runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// Native if the driver has it, else generic (the kernel's choice).
    #[default]
    Auto,
    /// In the driver.
    Native,
    /// In the network stack (any interface).
    Generic,
}

/// One attached program (on a sampling event: one link per CPU).
#[derive(Debug)]
pub struct Attachment {
    pub program: String,
    pub hook: Hook,
    // Drop order: the links first (detach), then the perf events.
    links: Vec<Link>,
    perf: Vec<PerfEvent>,
    /// A socket filter's packet socket.
    _socket: Option<std::os::fd::OwnedFd>,
}

impl Attachment {
    /// How many kernel attachments this is (CPUs for a sampling event).
    pub fn count(&self) -> usize {
        self.links.len() + usize::from(self._socket.is_some())
    }

    /// Stops the perf events (the links stay until the attachment drops).
    fn stop(&self) {
        for p in &self.perf {
            let _ = p.disable();
        }
    }
}

/// What a `perf_event` program samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// A software event's `config` (`oxbpf_sys::perf::SOFTWARE_EVENTS`).
    pub event: u64,
    pub rate: oxbpf_sys::perf::Sampling,
}

impl Default for Sampling {
    /// cpu-clock at 99 Hz on every CPU (bpftrace's `profile:hz:99`).
    fn default() -> Sampling {
        Sampling {
            event: 0,
            rate: oxbpf_sys::perf::Sampling::Frequency(99),
        }
    }
}

/// A loaded object and its attachments.
#[derive(Debug)]
pub struct Session {
    // Fields drop in order: attachments before the programs and maps.
    attachments: Vec<Attachment>,
    /// Perf events of detached attachments (their programs detached, their
    /// last close still to come).
    retired: Vec<PerfEvent>,
    kernel: oxbpf_sys::object::KernelObject,
    object: Object,
    pid: Option<i32>,
    sampling: Sampling,
    iface: Option<String>,
    xdp_mode: XdpMode,
    cgroup: Option<std::path::PathBuf>,
    /// The next free id in `__bpf_usdt_specs`.
    usdt_spec_ids: u32,
    choices: Vec<alternates::Choice>,
    sockmap: Option<String>,
}

/// The kernel functions that match glob `pattern`, each once: those
/// ftrace can trace (tracefs `available_filter_functions`), or, where that
/// file cannot be read, the text symbols of /proc/kallsyms — libbpf's two
/// sources for kprobe.multi patterns.
fn traceable_functions(pattern: &str) -> Result<Vec<String>, String> {
    let filter = oxbpf_sys::perf::tracefs_root()
        .map(|r| r.join("available_filter_functions"))
        .and_then(|p| std::fs::read_to_string(p).ok());
    let (text, from_kallsyms) = match filter {
        Some(t) => (t, false),
        None => (
            std::fs::read_to_string("/proc/kallsyms")
                .map_err(|e| format!("/proc/kallsyms: {e}"))?,
            true,
        ),
    };
    let mut seen = std::collections::HashSet::new();
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            if from_kallsyms {
                let (_, kind, name) = (f.next(), f.next()?, f.next()?);
                matches!(kind, "t" | "T").then_some(name)
            } else {
                f.next()
            }
        })
        .filter(|f| !f.starts_with("__ftrace_invalid_address__"))
        .filter(|f| oxbpf_sys::perf::glob_match(pattern, f))
        .filter(|f| seen.insert(f.to_string()))
        .map(String::from)
        .collect())
}

impl Drop for Session {
    fn drop(&mut self) {
        self.detach_all();
        close_in_parallel(std::mem::take(&mut self.retired));
    }
}

/// Drops `items` from threads of their own (in batches), so that kernel
/// waits in their closes overlap and share grace periods.
fn close_in_parallel<T: Send>(items: Vec<T>) {
    if items.len() <= 1 {
        return;
    }
    const BATCH: usize = 512;
    let mut rest = items;
    while !rest.is_empty() {
        let batch: Vec<T> = rest.drain(..rest.len().min(BATCH)).collect();
        std::thread::scope(|s| {
            for a in batch {
                // A thread that cannot start: close here instead.
                let (tx, rx) = std::sync::mpsc::channel::<T>();
                if std::thread::Builder::new()
                    .spawn_scoped(s, move || drop(rx.recv()))
                    .is_ok()
                {
                    let _ = tx.send(a);
                } else {
                    drop(a);
                }
            }
        });
    }
}

impl Session {
    /// Loads every map and program of `object` into the kernel. A program
    /// the verifier rejects or a map the kernel refuses fails the load, and
    /// everything created so far is closed.
    pub fn load(mut object: Object, opts: &Options) -> Result<Session, LiveError> {
        oxbpf_sys::available().map_err(LiveError::NoBpf)?;
        if let Some(t) = opts.default_type {
            for p in &mut object.programs {
                if p.kind == ProgramType::Unspec {
                    p.kind = t;
                }
            }
        }
        let choices = if opts.auto {
            alternates::choose(&mut object, alternates::kernel_lacks)
        } else {
            Vec::new()
        };
        // A size left zero is the user's to set (libbpf would fail the load
        // with a bare EINVAL); perf event arrays are sized per CPU by the
        // loader.
        if let Some(m) = object
            .maps
            .iter()
            .find(|m| m.max_entries == 0 && m.map_type != oxbpf_abi::map_type::PERF_EVENT_ARRAY)
        {
            return Err(LiveError::Unsized(m.name.clone()));
        }
        // `__kconfig` externs from the running kernel, as libbpf fills them.
        if !object.kconfig.is_empty() {
            let values = oxbpf_sys::kconfig::values();
            for v in object.kconfig.clone() {
                match values.get(&v.name) {
                    Some(val) if object.set_kconfig(&v.name, val) => {}
                    Some(val) => {
                        return Err(LiveError::Kconfig {
                            name: v.name.clone(),
                            why: format!("its value {val:?} does not fit the extern's type"),
                        });
                    }
                    None if v.weak => {}
                    None => {
                        return Err(LiveError::Kconfig {
                            name: v.name.clone(),
                            why: "the running kernel's configuration does not set it (declare it __weak to accept 0)".into(),
                        });
                    }
                }
            }
        }
        let pin_root = opts
            .pin_root
            .clone()
            .unwrap_or_else(|| std::path::PathBuf::from("/sys/fs/bpf"));
        let mut kernel = oxbpf_sys::object::load_object_with(
            &object,
            &oxbpf_sys::object::LoadOptions {
                override_type: None,
                pin_root: Some(&pin_root),
            },
        );
        if let Some(f) = kernel.map_failures.first().filter(|_| !opts.partial) {
            return Err(LiveError::Map {
                map: f.name.clone(),
                error: SysError {
                    command: f.error.command,
                    errno: f.error.errno,
                    log: f.error.log.clone(),
                },
            });
        }
        for p in kernel.programs.iter().filter(|_| !opts.partial) {
            if let Err(e) = &p.verdict.prog {
                let log = e.log.clone().unwrap_or_else(|| p.verdict.log.clone());
                let summary = match oxbpf_sys::log_summary(&log) {
                    "" => e.to_string(),
                    s => s.to_string(),
                };
                // A trampoline program the kernel refuses without a word:
                // say what this kernel lacks, not a bare errno.
                if let Ok(hook @ Hook::Trampoline { .. }) = hook_for(&p.def.section)
                    && oxbpf_sys::log_summary(&log).is_empty()
                    && let Err(reason) = oxbpf_sys::vmlinux::trampolines()
                {
                    return Err(LiveError::Unsupported {
                        program: p.def.name.clone(),
                        hook: hook.to_string(),
                        reason: format!(
                            "{reason} (fentry, fexit, fmod_ret, freplace and lsm programs need them)"
                        ),
                    });
                }
                return Err(LiveError::Rejected {
                    program: p.def.name.clone(),
                    summary,
                    log,
                });
            }
        }
        kernel.keep_pins();
        Ok(Session {
            attachments: Vec::new(),
            retired: Vec::new(),
            kernel,
            object,
            pid: opts.pid,
            sampling: opts.sampling.clone(),
            iface: opts.iface.clone(),
            xdp_mode: opts.xdp_mode,
            cgroup: opts.cgroup.clone(),
            usdt_spec_ids: 0,
            choices,
            sockmap: opts.sockmap.clone(),
        })
    }

    /// What [`Options::auto`] chose among alternate programs.
    pub fn choices(&self) -> &[alternates::Choice] {
        &self.choices
    }

    /// The maps pinned by name (`LIBBPF_PIN_BY_NAME`), reused or new.
    pub fn pinned_maps(&self) -> &[oxbpf_sys::object::PinnedMap] {
        &self.kernel.pinned
    }

    /// The object as loaded (programs, maps, BTF).
    pub fn object(&self) -> &Object {
        &self.object
    }

    /// Program names in object order.
    pub fn programs(&self) -> impl Iterator<Item = &str> {
        self.kernel.programs.iter().map(|p| p.def.name.as_str())
    }

    /// What is attached so far.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// Attaches every program whose section names a hook this loader
    /// attaches automatically; returns how many it attached. Programs with
    /// no such hook (`Hook::Manual`) are left loaded, as libbpf leaves them.
    pub fn attach_all(&mut self) -> Result<usize, LiveError> {
        let names: Vec<String> = self.programs().map(String::from).collect();
        let mut n = 0;
        for name in names {
            let section = self.program_def(&name)?.section.clone();
            let hook = hook_for(&section).map_err(|error| LiveError::Section {
                program: name.clone(),
                error,
            })?;
            if !matches!(hook, Hook::Manual { .. }) {
                self.attach(&name)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Program `name` as the kernel loaded it, or why it is not loaded.
    fn loaded<'k>(
        kernel: &'k oxbpf_sys::object::KernelObject,
        name: &str,
    ) -> Result<&'k oxbpf_sys::Prog, LiveError> {
        let kp = kernel
            .programs
            .iter()
            .find(|p| p.def.name == name)
            .ok_or_else(|| LiveError::NoProgram(name.into()))?;
        kp.verdict.prog.as_ref().map_err(|e| LiveError::Rejected {
            program: name.into(),
            summary: e.to_string(),
            log: kp.verdict.log.clone(),
        })
    }

    fn program_def(&self, name: &str) -> Result<&oxbpf_obj::ProgramDef, LiveError> {
        self.kernel
            .programs
            .iter()
            .find(|p| p.def.name == name)
            .map(|p| &p.def)
            .ok_or_else(|| {
                // Left out by --auto: say for which program.
                let dropped = self.choices.iter().find_map(|c| {
                    let (_, section, why) = c.dropped.iter().find(|d| d.0 == name)?;
                    Some((section.clone(), why.clone()))
                });
                match dropped {
                    Some((section, why)) => LiveError::Unsupported {
                        program: name.into(),
                        hook: section,
                        reason: format!("not loaded, an alternate was chosen instead: {why}"),
                    },
                    None => LiveError::NoProgram(name.into()),
                }
            })
    }

    /// Attaches program `name` to the hook its section names.
    pub fn attach(&mut self, name: &str) -> Result<&Attachment, LiveError> {
        let section = self.program_def(name)?.section.clone();
        let hook = hook_for(&section).map_err(|error| LiveError::Section {
            program: name.into(),
            error,
        })?;
        self.attach_to(name, hook)
    }

    /// Attaches program `name` to `hook`, whatever its section says (for
    /// sections that name no target, such as a bare `uprobe`).
    pub fn attach_to(&mut self, name: &str, hook: Hook) -> Result<&Attachment, LiveError> {
        let prog = Self::loaded(&self.kernel, name)?;
        let attach_err = |error: SysError| LiveError::Attach {
            program: name.into(),
            hook: hook.to_string(),
            error,
        };
        let unsupported = |reason: &str| LiveError::Unsupported {
            program: name.into(),
            hook: hook.to_string(),
            reason: reason.into(),
        };
        let mut socket = None;
        let (links, perf): (Vec<Link>, Vec<PerfEvent>) = match &hook {
            Hook::Tracepoint { category, name: tp } => {
                let id = oxbpf_sys::perf::tracepoint_id(category, tp).map_err(|error| {
                    LiveError::Tracepoint {
                        program: name.into(),
                        error,
                    }
                })?;
                let event = PerfEvent::tracepoint(id, &format!("tracepoint {category}:{tp}"))
                    .map_err(attach_err)?;
                let link = event.attach(prog).map_err(|e| {
                    if e.errno == oxbpf_abi::errno::EACCES {
                        // perf_event_set_bpf_prog: the program reads past
                        // the end of this tracepoint's record.
                        unsupported(&format!(
                            "the program reads beyond the tracepoint's record (its layout differs on this kernel: see events/{category}/{tp}/format in tracefs)"
                        ))
                    } else {
                        attach_err(e)
                    }
                })?;
                (vec![link], vec![event])
            }
            Hook::RawTracepoint { name: tp, .. } => {
                let link = oxbpf_sys::perf::raw_tracepoint_open(prog, Some(tp)).map_err(|e| {
                    if e.errno == oxbpf_abi::errno::ENOENT {
                        LiveError::Unsupported {
                            program: name.into(),
                            hook: hook.to_string(),
                            reason: format!("the kernel has no tracepoint `{tp}`"),
                        }
                    } else {
                        attach_err(e)
                    }
                })?;
                (vec![link], Vec::new())
            }
            Hook::TpBtf { .. } => {
                // The target was fixed at load time by the attach BTF id.
                let link = oxbpf_sys::perf::raw_tracepoint_open(prog, None).map_err(attach_err)?;
                (vec![link], Vec::new())
            }
            Hook::Uprobe {
                path,
                symbol,
                offset,
                ret,
            } => {
                let uerr = |error| LiveError::Uprobe {
                    program: name.into(),
                    error,
                };
                let file = uprobe::resolve_path(path).map_err(uerr)?;
                let at = if symbol.is_empty() {
                    *offset
                } else {
                    uprobe::symbol_offset(&file, symbol).map_err(uerr)? + offset
                };
                let event = PerfEvent::uprobe(&file, at, *ret, 0, self.pid.unwrap_or(-1))
                    .map_err(attach_err)?;
                let link = event.attach(prog).map_err(attach_err)?;
                (vec![link], vec![event])
            }
            Hook::UprobeMulti { path, pattern, ret } => {
                let uerr = |error| LiveError::Uprobe {
                    program: name.into(),
                    error,
                };
                let file = uprobe::resolve_path(path).map_err(uerr)?;
                let targets = uprobe::matching_functions(&file, pattern).map_err(uerr)?;
                if targets.is_empty() {
                    return Err(unsupported(&format!(
                        "no function of {} matches `{pattern}`",
                        file.display()
                    )));
                }
                let offsets: Vec<u64> = targets.iter().map(|(_, o)| *o).collect();
                let pid = self.pid.map_or(0, |p| p as u32);
                let link =
                    Link::uprobe_multi(prog, &file, &offsets, *ret, pid).map_err(attach_err)?;
                (vec![link], Vec::new())
            }
            Hook::PerfEvent => {
                // One event per online CPU (or one following the process
                // across CPUs), each with its link.
                let (mut links, mut events) = (Vec::new(), Vec::new());
                let cpus: Vec<i32> = match self.pid {
                    Some(_) => vec![-1],
                    None => oxbpf_sys::online_cpus()
                        .into_iter()
                        .map(|c| c as i32)
                        .collect(),
                };
                for cpu in cpus {
                    let event = PerfEvent::software(
                        self.sampling.event,
                        self.sampling.rate,
                        self.pid.unwrap_or(-1),
                        cpu,
                    )
                    .map_err(attach_err)?;
                    links.push(event.attach(prog).map_err(attach_err)?);
                    events.push(event);
                }
                (links, events)
            }
            Hook::Breakpoint {
                addr,
                len,
                bp_type,
                pid,
            } => {
                // Every thread of the process, each with its link; threads
                // created later inherit the event. No process: every CPU.
                let targets: Vec<(i32, i32)> = match *pid {
                    Some(pid) => {
                        let mut tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
                            .map(|d| {
                                d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                                    .collect()
                            })
                            .unwrap_or_default();
                        if tids.is_empty() {
                            tids.push(pid);
                        }
                        tids.into_iter().map(|t| (t, -1)).collect()
                    }
                    None => oxbpf_sys::online_cpus()
                        .into_iter()
                        .map(|c| (-1, c as i32))
                        .collect(),
                };
                let (mut links, mut events) = (Vec::new(), Vec::new());
                for (pid, cpu) in targets {
                    let event = PerfEvent::breakpoint(*addr, *len, *bp_type, pid, cpu)
                        .map_err(attach_err)?;
                    links.push(event.attach(prog).map_err(attach_err)?);
                    events.push(event);
                }
                (links, events)
            }
            Hook::Interval { period_ns } => {
                if *period_ns == 0 {
                    return Err(unsupported("an interval of zero"));
                }
                let cpu = oxbpf_sys::online_cpus().first().copied().unwrap_or(0) as i32;
                let event = PerfEvent::software(
                    0, // PERF_COUNT_SW_CPU_CLOCK
                    oxbpf_sys::perf::Sampling::Period(*period_ns),
                    -1,
                    cpu,
                )
                .map_err(attach_err)?;
                let link = event.attach(prog).map_err(attach_err)?;
                (vec![link], vec![event])
            }
            Hook::Usdt {
                path,
                provider,
                name: probe,
            } => {
                let uerr = |error| LiveError::Uprobe {
                    program: name.into(),
                    error,
                };
                let file = uprobe::resolve_path(path).map_err(uerr)?;
                let sites =
                    usdt::find(&file, provider, probe).map_err(|error| LiveError::Usdt {
                        program: name.into(),
                        error: Box::new(error),
                    })?;
                // bpf/usdt.bpf.h's maps: the spec of each site, found by
                // the BPF cookie (spec id) the link carries.
                let specs = self
                    .kernel
                    .map_names
                    .iter()
                    .position(|n| n == "__bpf_usdt_specs")
                    .and_then(|i| self.kernel.maps[i].as_ref())
                    .ok_or_else(|| {
                        unsupported("the program does not use bpf/usdt.bpf.h (no __bpf_usdt_specs map to describe the arguments in)")
                    })?;
                let (mut links, mut events) = (Vec::new(), Vec::new());
                for site in &sites {
                    let id = self.usdt_spec_ids;
                    if id >= specs.spec.max_entries {
                        return Err(unsupported(
                            "more USDT sites than __bpf_usdt_specs has entries",
                        ));
                    }
                    self.usdt_spec_ids += 1;
                    specs
                        .update(&id.to_le_bytes(), &usdt::spec_bytes(site, 0), 0)
                        .map_err(attach_err)?;
                    let event = PerfEvent::uprobe(
                        &file,
                        site.offset,
                        false,
                        site.semaphore,
                        self.pid.unwrap_or(-1),
                    )
                    .map_err(attach_err)?;
                    links.push(
                        event
                            .attach_with_cookie(prog, id as u64)
                            .map_err(attach_err)?,
                    );
                    events.push(event);
                }
                (links, events)
            }
            Hook::Xdp | Hook::Tc { .. } | Hook::Socket => {
                let iface = self
                    .iface
                    .as_deref()
                    .ok_or_else(|| unsupported("needs a network interface (--iface IF)"))?;
                let ifindex =
                    oxbpf_sys::net::ifindex(iface).ok_or_else(|| LiveError::NoInterface {
                        program: name.into(),
                        iface: iface.into(),
                    })?;
                use oxbpf_abi::attach_type as at;
                match &hook {
                    Hook::Xdp => {
                        let flags = match self.xdp_mode {
                            XdpMode::Auto => 0,
                            XdpMode::Native => oxbpf_sys::net::xdp_flags::DRV_MODE,
                            XdpMode::Generic => oxbpf_sys::net::xdp_flags::SKB_MODE,
                        };
                        let link = Link::create(prog, ifindex as i32, at::XDP, flags)
                            .map_err(attach_err)?;
                        (vec![link], Vec::new())
                    }
                    Hook::Tc { egress } => {
                        // tc programs attach through tcx links (Linux 6.6+):
                        // atomic, owned, detached on close.
                        let t = if *egress {
                            at::TCX_EGRESS
                        } else {
                            at::TCX_INGRESS
                        };
                        let link = Link::create(prog, ifindex as i32, t, 0).map_err(attach_err)?;
                        (vec![link], Vec::new())
                    }
                    _ => {
                        socket = Some(
                            oxbpf_sys::net::filtered_packet_socket(prog, ifindex)
                                .map_err(attach_err)?,
                        );
                        (Vec::new(), Vec::new())
                    }
                }
            }
            Hook::Cgroup { attach_type } => {
                let path = self.cgroup.as_deref().ok_or_else(|| {
                    unsupported("needs a cgroup (--cgroup PATH, a cgroup v2 directory)")
                })?;
                let fd =
                    oxbpf_sys::net::open_cgroup(path).map_err(|reason| LiveError::Unsupported {
                        program: name.into(),
                        hook: hook.to_string(),
                        reason,
                    })?;
                let link =
                    Link::create(prog, fd.as_raw_fd(), *attach_type, 0).map_err(attach_err)?;
                (vec![link], Vec::new())
            }
            Hook::Kprobe { target, ret } => {
                if !std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() {
                    return Err(unsupported(
                        "this kernel has no kprobes (no kprobe PMU in /sys/bus/event_source/devices)",
                    ));
                }
                let (func, off) = match target.split_once('+') {
                    Some((f, o)) => (
                        f,
                        hook::parse_offset(o).ok_or_else(|| unsupported("bad offset after `+`"))?,
                    ),
                    None => (target.as_str(), 0),
                };
                if func.contains('*') || func.contains('?') {
                    return Err(unsupported(
                        "a kprobe takes one function; name the section kprobe.multi/PATTERN for a pattern",
                    ));
                }
                let event = PerfEvent::kprobe(func, off, *ret).map_err(attach_err)?;
                let link = event.attach(prog).map_err(attach_err)?;
                (vec![link], vec![event])
            }
            Hook::KprobeMulti {
                pattern,
                ret,
                session,
            } => {
                let funcs = traceable_functions(pattern).map_err(|e| unsupported(&e))?;
                if funcs.is_empty() {
                    return Err(unsupported(&format!(
                        "no traceable kernel function matches `{pattern}` (tracefs available_filter_functions)"
                    )));
                }
                let link = Link::kprobe_multi(prog, &funcs, *ret, *session).map_err(|e| {
                    if matches!(e.errno, 524 | 95) {
                        unsupported("this kernel has no fprobe (kprobe.multi and kprobe.session need CONFIG_FPROBE)")
                    } else {
                        attach_err(e)
                    }
                })?;
                (vec![link], Vec::new())
            }
            Hook::Trampoline { .. } => {
                // fentry/fexit/fmod_ret/lsm: the target came with the
                // attach BTF id at load; the kernel builds a trampoline.
                let link = oxbpf_sys::perf::raw_tracepoint_open(prog, None).map_err(|e| {
                    if matches!(e.errno, 524 | 95) {
                        // ENOTSUPP / EOPNOTSUPP
                        unsupported("this kernel has no BPF trampolines (fentry, fexit, fmod_ret and lsm need them)")
                    } else {
                        attach_err(e)
                    }
                })?;
                (vec![link], Vec::new())
            }
            Hook::Sockmap { attach_type } => {
                use oxbpf_abi::map_type::{SOCKHASH, SOCKMAP};
                let socks: Vec<&str> = self
                    .object
                    .maps
                    .iter()
                    .filter(|m| matches!(m.map_type, SOCKMAP | SOCKHASH))
                    .map(|m| m.name.as_str())
                    .collect();
                let map = match (&self.sockmap, socks.as_slice()) {
                    (Some(m), _) if socks.contains(&m.as_str()) => m.clone(),
                    (Some(m), _) => {
                        return Err(unsupported(&format!(
                            "`{m}` is not a sockmap or sockhash of this object (it has: {})",
                            if socks.is_empty() {
                                "none".into()
                            } else {
                                socks.join(", ")
                            }
                        )));
                    }
                    (None, [one]) => one.to_string(),
                    (None, []) => {
                        return Err(unsupported(
                            "the object has no sockmap or sockhash to attach to",
                        ));
                    }
                    (None, many) => {
                        return Err(unsupported(&format!(
                            "name the sockmap to attach to with --sockmap (the object has {})",
                            many.join(", ")
                        )));
                    }
                };
                let fd = self.map(&map)?.fd.as_raw_fd();
                let prog = Self::loaded(&self.kernel, name)?;
                let link = Link::create(prog, fd, *attach_type, 0).map_err(attach_err)?;
                (vec![link], Vec::new())
            }
            Hook::Manual { why } => return Err(unsupported(why)),
        };
        self.attachments.push(Attachment {
            program: name.into(),
            hook,
            links,
            perf,
            _socket: socket,
        });
        Ok(self.attachments.last().expect("just pushed"))
    }

    /// Runs `perf_event` program `name` every `period` (on one CPU, from a
    /// cpu-clock timer: bpftrace's `interval` probes).
    pub fn attach_interval(
        &mut self,
        name: &str,
        period: std::time::Duration,
    ) -> Result<&Attachment, LiveError> {
        let period_ns = u64::try_from(period.as_nanos()).unwrap_or(u64::MAX);
        self.attach_to(name, Hook::Interval { period_ns })
    }

    /// Runs `perf_event` program `name` when the `len` bytes at `addr` are
    /// accessed as `bp_type` says (`oxbpf_sys::perf::breakpoint` bits): in
    /// process `pid`, or anywhere with none (kernel addresses). bpftrace's
    /// `watchpoint` probes.
    pub fn attach_breakpoint(
        &mut self,
        name: &str,
        addr: u64,
        len: u64,
        bp_type: u32,
        pid: Option<i32>,
    ) -> Result<&Attachment, LiveError> {
        self.attach_to(
            name,
            Hook::Breakpoint {
                addr,
                len,
                bp_type,
                pid,
            },
        )
    }

    /// Attaches `perf_event` program `name` to its own sampling event on
    /// every CPU (bpftrace's `profile` and `software` probes, several of
    /// which may differ in one session).
    pub fn attach_sampled(&mut self, name: &str, sampling: Sampling) -> Result<(), LiveError> {
        let saved = std::mem::replace(&mut self.sampling, sampling);
        let r = self.attach_to(name, Hook::PerfEvent).map(drop);
        self.sampling = saved;
        r
    }

    /// Attaches uprobe.multi program `name` at explicit file offsets of
    /// `path` (one link for all of them).
    pub fn attach_offsets_multi(
        &mut self,
        name: &str,
        path: &std::path::Path,
        offsets: &[u64],
        ret: bool,
    ) -> Result<&Attachment, LiveError> {
        let hook = Hook::UprobeMulti {
            path: path.display().to_string(),
            pattern: format!("<{} offsets>", offsets.len()),
            ret,
        };
        let prog = Self::loaded(&self.kernel, name)?;
        let pid = self.pid.map_or(0, |p| p as u32);
        let link = Link::uprobe_multi(prog, path, offsets, ret, pid).map_err(|error| {
            LiveError::Attach {
                program: name.into(),
                hook: hook.to_string(),
                error,
            }
        })?;
        self.attachments.push(Attachment {
            program: name.into(),
            hook,
            links: vec![link],
            perf: Vec::new(),
            _socket: None,
        });
        Ok(self.attachments.last().expect("just pushed"))
    }

    /// Pins every map (`DIR/NAME`) and every attachment's links
    /// (`DIR/link_PROGRAM`, `_N` for more than one) in the bpffs directory
    /// `dir`, created if missing: they outlive the session until the pins
    /// are removed. A pin that fails removes the ones made before it.
    pub fn pin(&self, dir: &std::path::Path) -> Result<Vec<String>, LiveError> {
        let fail = |what: String, error: SysError| LiveError::Pin { what, error };
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| {
                fail(
                    dir.display().to_string(),
                    SysError {
                        command: "mkdir",
                        errno: e.raw_os_error().unwrap_or(0),
                        log: None,
                    },
                )
            })?;
        }
        let mut pins = Vec::new();
        let clean = |name: &str| name.trim_start_matches('.').replace(['/', '.'], "_");
        for (name, m) in self.maps() {
            let path = dir.join(clean(name)).display().to_string();
            pins.push(m.pin(&path).map_err(|e| fail(path.clone(), e))?);
        }
        for a in &self.attachments {
            for (i, l) in a.links.iter().enumerate() {
                let suffix = if a.links.len() > 1 {
                    format!("_{i}")
                } else {
                    String::new()
                };
                let path = dir
                    .join(format!("link_{}{suffix}", clean(&a.program)))
                    .display()
                    .to_string();
                pins.push(l.pin(&path).map_err(|e| fail(path.clone(), e))?);
            }
        }
        // Every pin made: keep them all.
        Ok(pins.into_iter().map(|p| p.keep()).collect())
    }

    /// Detaches everything attached so far (programs and maps stay loaded):
    /// sampling events are stopped first, then every link is closed, which
    /// detaches its program. The perf events themselves are closed when
    /// the session ends.
    ///
    /// Closing a tracepoint's or uprobe's perf event waits for the
    /// kernel's tracepoint (RCU) synchronization, ~85 ms each here; closed
    /// one after the other, 360 tracepoints take 30 s (bpftrace's exit).
    /// Closed from threads of their own, the waits overlap and share grace
    /// periods; [`Session::end_in_background`] leaves them to a helper
    /// process.
    pub fn detach_all(&mut self) {
        for a in &self.attachments {
            a.stop();
        }
        let mut links = Vec::new();
        for mut a in std::mem::take(&mut self.attachments) {
            links.append(&mut a.links);
            self.retired.append(&mut a.perf);
        }
        close_in_parallel(links);
    }

    /// Ends the session for a process that is about to exit: everything
    /// is detached and closed, and the last closes of its perf events —
    /// the kernel's waits — happen in a helper process
    /// ([`oxbpf_sys::perf::close_perf_events_later`]) instead of holding up
    /// this one. Where no helper can be made, they happen here.
    pub fn end_in_background(mut self) {
        self.detach_all();
        let handoff = (!self.retired.is_empty())
            .then(oxbpf_sys::perf::close_perf_events_later)
            .and_then(Result::ok);
        close_in_parallel(std::mem::take(&mut self.retired));
        drop(self);
        drop(handoff);
    }

    /// The kernel map named `name`.
    pub fn map(&self, name: &str) -> Result<&Map, LiveError> {
        self.kernel
            .map_names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.kernel.maps[i].as_ref())
            .ok_or_else(|| LiveError::NoMap(name.into()))
    }

    /// Every map with its name, in object order.
    pub fn maps(&self) -> impl Iterator<Item = (&str, &Map)> {
        self.kernel
            .map_names
            .iter()
            .zip(&self.kernel.maps)
            .filter_map(|(n, m)| m.as_ref().map(|m| (n.as_str(), m)))
    }

    /// A consumer for the ring buffer map `name`.
    pub fn ring_buffer(&self, name: &str) -> Result<RingBuf, LiveError> {
        let m = self.map(name)?;
        if m.spec.map_type != oxbpf_abi::map_type::RINGBUF {
            return Err(LiveError::NotRingBuf {
                map: name.into(),
                kind: oxbpf_obj::map_type_name(m.spec.map_type),
            });
        }
        RingBuf::new(m).map_err(|error| LiveError::MapAccess {
            map: name.into(),
            error,
        })
    }

    /// A reader for the perf event array `name` (what
    /// `bpf_perf_event_output` writes): a ring of `pages` pages on every
    /// online CPU. Lost samples are counted in `PerfBuffer::lost`.
    pub fn perf_buffer(
        &self,
        name: &str,
        pages: usize,
    ) -> Result<oxbpf_sys::perfbuf::PerfBuffer, LiveError> {
        let m = self.map(name)?;
        if m.spec.map_type != oxbpf_abi::map_type::PERF_EVENT_ARRAY {
            return Err(LiveError::NotRingBuf {
                map: name.into(),
                kind: oxbpf_obj::map_type_name(m.spec.map_type),
            });
        }
        oxbpf_sys::perfbuf::PerfBuffer::new(m, &oxbpf_sys::online_cpus(), pages).map_err(|error| {
            LiveError::MapAccess {
                map: name.into(),
                error,
            }
        })
    }

    /// Readers for every perf event array, with their names.
    pub fn perf_buffers(
        &self,
        pages: usize,
    ) -> Result<Vec<(String, oxbpf_sys::perfbuf::PerfBuffer)>, LiveError> {
        self.maps()
            .filter(|(_, m)| m.spec.map_type == oxbpf_abi::map_type::PERF_EVENT_ARRAY)
            .map(|(n, _)| Ok((n.to_string(), self.perf_buffer(n, pages)?)))
            .collect()
    }

    /// Consumers for every ring buffer map, with their names.
    pub fn ring_buffers(&self) -> Result<Vec<(String, RingBuf)>, LiveError> {
        self.maps()
            .filter(|(_, m)| m.spec.map_type == oxbpf_abi::map_type::RINGBUF)
            .map(|(n, _)| Ok((n.to_string(), self.ring_buffer(n)?)))
            .collect()
    }

    /// The raw fd of a loaded program (for tools that need it).
    /// Runs raw tracepoint program `name` once, now, in this thread (what
    /// bpftrace's BEGIN and END probes need), with `args` as its context.
    pub fn run_raw_tp(&self, name: &str, args: &[u64]) -> Result<u32, LiveError> {
        let prog = Self::loaded(&self.kernel, name)?;
        prog.run_raw_tp(args).map_err(|error| LiveError::Attach {
            program: name.into(),
            hook: "BPF_PROG_TEST_RUN".into(),
            error,
        })
    }

    pub fn program_fd(&self, name: &str) -> Option<i32> {
        self.kernel
            .programs
            .iter()
            .find(|p| p.def.name == name)
            .and_then(|p| p.verdict.prog.as_ref().ok())
            .map(|p| p.fd.as_raw_fd())
    }
}
