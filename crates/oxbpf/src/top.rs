//! `oxbpf top`: every BPF program loaded in the kernel (oxbpf's or
//! anyone's) with its run rate, average run time and CPU share, sampled
//! every interval, in a terminal UI (ratatui) or as JSON snapshots. The
//! kernel counts run time only while statistics are on: `BPF_ENABLE_STATS`
//! turns them on for as long as oxbpf holds its descriptor, so the previous
//! state (`kernel.bpf_stats_enabled`) is back when it exits. bpftop's
//! columns are the reference: ID, type, name, period and total average
//! run time, events per second, CPU %.

use std::collections::{HashMap, VecDeque};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Sparkline, Table, TableState};

#[derive(clap::Args)]
pub struct TopArgs {
    /// Seconds between samples.
    #[arg(short = 'd', long, default_value_t = 1.0)]
    pub interval: f64,
    /// Print snapshots as JSON lines instead of the terminal UI.
    #[arg(long)]
    pub json: bool,
    /// With --json: this many snapshots, then exit (default: until Ctrl-C).
    #[arg(short = 'n', long, requires = "json")]
    pub count: Option<u64>,
    /// The column to sort by (largest first); in the UI, `s` cycles it.
    #[arg(long, default_value = "cpu", value_parser = SORT_KEYS)]
    pub sort: String,
}

const SORT_KEYS: [&str; 6] = ["cpu", "events", "period", "total", "id", "name"];

/// One program over one sampling period.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ProgRow {
    pub id: u32,
    #[serde(rename = "type")]
    pub prog_type: String,
    pub name: String,
    /// Runs per second in the period.
    pub events_per_sec: f64,
    /// Average run time in the period (none when it did not run).
    pub period_avg_ns: Option<f64>,
    /// Average run time since statistics were first on for it.
    pub total_avg_ns: Option<f64>,
    /// Its run time as a share of one CPU's time in the period (bpftop's
    /// measure: 200 when it kept two CPUs busy).
    pub cpu_percent: f64,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

/// The counters of a program at a sample.
#[derive(Clone, Copy, Default)]
struct Counters {
    time: u64,
    cnt: u64,
}

/// Rows for a period from the programs now and their counters at the
/// previous sample (a program first seen now counts from zero) and
/// `elapsed` the period.
fn rows(
    now: &[oxbpf_sys::info::ProgInfo],
    before: &HashMap<u32, Counters>,
    elapsed: Duration,
) -> Vec<ProgRow> {
    let secs = elapsed.as_secs_f64().max(1e-9);
    now.iter()
        .map(|p| {
            let b = before.get(&p.id).copied().unwrap_or_default();
            let dc = p.run_cnt.saturating_sub(b.cnt);
            let dt = p.run_time_ns.saturating_sub(b.time);
            ProgRow {
                id: p.id,
                prog_type: oxbpf_abi::ProgType::from_u32(p.prog_type)
                    .map_or_else(|| format!("type {}", p.prog_type), |t| t.name().to_string()),
                name: p.name.clone(),
                events_per_sec: dc as f64 / secs,
                period_avg_ns: (dc > 0).then(|| dt as f64 / dc as f64),
                total_avg_ns: (p.run_cnt > 0).then(|| p.run_time_ns as f64 / p.run_cnt as f64),
                cpu_percent: dt as f64 / (secs * 1e9) * 100.0,
                run_cnt: p.run_cnt,
                run_time_ns: p.run_time_ns,
            }
        })
        .collect()
}

fn sort_rows(rows: &mut [ProgRow], key: &str) {
    let f = |o: Option<f64>| o.unwrap_or(-1.0);
    rows.sort_by(|a, b| match key {
        "events" => b.events_per_sec.total_cmp(&a.events_per_sec),
        "period" => f(b.period_avg_ns).total_cmp(&f(a.period_avg_ns)),
        "total" => f(b.total_avg_ns).total_cmp(&f(a.total_avg_ns)),
        "id" => a.id.cmp(&b.id),
        "name" => a.name.cmp(&b.name),
        _ => b
            .cpu_percent
            .total_cmp(&a.cpu_percent)
            .then(b.events_per_sec.total_cmp(&a.events_per_sec)),
    });
}

/// Samples the kernel's programs: the rows of each period.
struct Sampler {
    before: HashMap<u32, Counters>,
    at: Instant,
}

impl Sampler {
    fn new() -> Result<Sampler> {
        let mut s = Sampler {
            before: HashMap::new(),
            at: Instant::now(),
        };
        s.sample()?;
        Ok(s)
    }

    fn sample(&mut self) -> Result<Vec<ProgRow>> {
        let now = oxbpf_sys::info::programs().context("listing the kernel's programs")?;
        let t = Instant::now();
        let out = rows(&now, &self.before, t - self.at);
        self.before = now
            .iter()
            .map(|p| {
                (
                    p.id,
                    Counters {
                        time: p.run_time_ns,
                        cnt: p.run_cnt,
                    },
                )
            })
            .collect();
        self.at = t;
        Ok(out)
    }
}

fn unix_secs() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub fn top(a: &TopArgs) -> Result<ExitCode> {
    let interval = Duration::from_secs_f64(a.interval.clamp(0.05, 3600.0));
    // Statistics on for as long as this descriptor lives.
    let _stats = oxbpf_sys::info::enable_run_time_stats()
        .context("turning on the kernel's BPF run-time statistics (BPF_ENABLE_STATS)")?;
    let mut sampler = Sampler::new()?;
    if a.json {
        return json(a, interval, &mut sampler);
    }
    ui(a, interval, &mut sampler)
}

fn json(a: &TopArgs, interval: Duration, sampler: &mut Sampler) -> Result<ExitCode> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::SeqCst))
            .context("installing the SIGINT/SIGTERM handler")?;
    }
    let mut n = 0;
    while a.count.is_none_or(|c| n < c) && !stop.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(interval);
        let mut r = sampler.sample()?;
        sort_rows(&mut r, &a.sort);
        println!(
            "{}",
            serde_json::json!({
                "time": unix_secs(),
                "interval_s": interval.as_secs_f64(),
                "programs": r,
            })
        );
        n += 1;
    }
    Ok(ExitCode::SUCCESS)
}

fn fmt_ns(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.0}"))
}

/// The UI's state between frames.
struct View {
    rows: Vec<ProgRow>,
    sort: usize,
    table: TableState,
    /// CPU % of each program over the last samples.
    history: HashMap<u32, VecDeque<u64>>,
    interval: Duration,
}

impl View {
    fn selected_id(&self) -> Option<u32> {
        self.table
            .selected()
            .and_then(|i| self.rows.get(i))
            .map(|r| r.id)
    }

    fn update(&mut self, rows: Vec<ProgRow>) {
        let keep = self.selected_id();
        for r in &rows {
            let h = self.history.entry(r.id).or_default();
            // Hundredths of a percent, for the sparkline's integers.
            h.push_back((r.cpu_percent * 100.0).round() as u64);
            while h.len() > 120 {
                h.pop_front();
            }
        }
        self.history
            .retain(|id, _| rows.iter().any(|r| r.id == *id));
        self.rows = rows;
        self.reselect(keep);
    }

    /// Sorts the rows and selects program `keep` again (the first row when
    /// it is gone).
    fn reselect(&mut self, keep: Option<u32>) {
        sort_rows(&mut self.rows, SORT_KEYS[self.sort]);
        let at = keep
            .and_then(|id| self.rows.iter().position(|r| r.id == id))
            .or((!self.rows.is_empty()).then_some(0));
        self.table.select(at);
    }

    fn draw(&mut self, f: &mut ratatui::Frame) {
        let [table_area, spark_area, help_area] = Layout::vertical([
            Constraint::Min(5),
            Constraint::Length(6),
            Constraint::Length(1),
        ])
        .areas(f.area());
        let header = Row::new([
            "ID",
            "Type",
            "Name",
            "Period Avg (ns)",
            "Total Avg (ns)",
            "Events/s",
            "CPU %",
        ])
        .style(Style::default().add_modifier(Modifier::BOLD));
        let body: Vec<Row> = self
            .rows
            .iter()
            .map(|r| {
                Row::new([
                    r.id.to_string(),
                    r.prog_type.clone(),
                    r.name.clone(),
                    fmt_ns(r.period_avg_ns),
                    fmt_ns(r.total_avg_ns),
                    format!("{:.0}", r.events_per_sec),
                    format!("{:.2}", r.cpu_percent),
                ])
            })
            .collect();
        let table = Table::new(
            body,
            [
                Constraint::Length(7),
                Constraint::Length(16),
                Constraint::Min(16),
                Constraint::Length(16),
                Constraint::Length(15),
                Constraint::Length(11),
                Constraint::Length(8),
            ],
        )
        .header(header)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .block(Block::default().borders(Borders::ALL).title(format!(
            " oxbpf top: {} programs, every {:.1}s, sorted by {} ",
            self.rows.len(),
            self.interval.as_secs_f64(),
            SORT_KEYS[self.sort]
        )));
        f.render_stateful_widget(table, table_area, &mut self.table);
        let (title, data): (String, Vec<u64>) = match self
            .selected_id()
            .and_then(|id| Some((id, self.history.get(&id)?)))
        {
            Some((id, h)) => (
                format!(
                    " CPU % of program {id} (latest {:.2}) ",
                    h.back().copied().unwrap_or(0) as f64 / 100.0
                ),
                h.iter().copied().collect(),
            ),
            None => (" CPU % ".into(), Vec::new()),
        };
        f.render_widget(
            Sparkline::default()
                .block(Block::default().borders(Borders::ALL).title(title))
                .data(&data),
            spark_area,
        );
        f.render_widget(
            Paragraph::new(
                " q quit   up/down select   s next sort column   statistics on while running",
            ),
            help_area,
        );
    }
}

fn ui(a: &TopArgs, interval: Duration, sampler: &mut Sampler) -> Result<ExitCode> {
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    let mut view = View {
        rows: Vec::new(),
        sort: SORT_KEYS.iter().position(|k| *k == a.sort).unwrap_or(0),
        table: TableState::default(),
        history: HashMap::new(),
        interval,
    };
    // ratatui's init restores the terminal on a panic as well.
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        anyhow::bail!("oxbpf top draws on a terminal; for scripts use --json [--count N]");
    }
    // SIGINT/SIGTERM from outside end it as `q` does (the terminal put
    // back, statistics off).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, std::sync::atomic::Ordering::SeqCst))
            .context("installing the SIGINT/SIGTERM handler")?;
    }
    let mut term = ratatui::try_init()
        .context("setting up the terminal (for scripts use --json [--count N])")?;
    let result = (|| -> Result<()> {
        let mut next = Instant::now() + interval;
        loop {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Ok(());
            }
            term.draw(|f| view.draw(f))?;
            let wait = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            if event::poll(wait)? {
                if let Event::Key(k) = event::read()?
                    && k.kind == KeyEventKind::Press
                {
                    match k.code {
                        KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                            return Ok(());
                        }
                        KeyCode::Down | KeyCode::Char('j') => view.table.select_next(),
                        KeyCode::Up | KeyCode::Char('k') => view.table.select_previous(),
                        KeyCode::Char('s') => {
                            view.sort = (view.sort + 1) % SORT_KEYS.len();
                            view.resort();
                        }
                        _ => {}
                    }
                }
                continue;
            }
            if Instant::now() < next {
                continue;
            }
            next = Instant::now() + interval;
            let rows = sampler.sample()?;
            view.update(rows);
        }
    })();
    ratatui::restore();
    result.map(|()| ExitCode::SUCCESS)
}

impl View {
    /// Re-sorts the rows shown (no new sample), the selection kept.
    fn resort(&mut self) {
        self.reselect(self.selected_id());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: u32, name: &str, time: u64, cnt: u64) -> oxbpf_sys::info::ProgInfo {
        oxbpf_sys::info::ProgInfo {
            id,
            prog_type: 1,
            name: name.into(),
            tag: String::new(),
            gpl_compatible: true,
            load_time: 0,
            created_by_uid: 0,
            bytes_xlated: 0,
            bytes_jited: 0,
            map_ids: Vec::new(),
            btf_id: 0,
            run_time_ns: time,
            run_cnt: cnt,
            verified_insns: 0,
        }
    }

    #[test]
    fn periods_give_rates_averages_and_cpu_share() {
        let before = HashMap::from([(
            7,
            Counters {
                time: 1_000,
                cnt: 10,
            },
        )]);
        let now = [info(7, "xdp_fw", 501_000, 1_010), info(9, "fresh", 200, 2)];
        let r = rows(&now, &before, Duration::from_millis(500));
        // 1000 runs in half a second, 500 ns each: 500 µs of 0.5 s of one CPU.
        assert_eq!(r[0].events_per_sec, 2000.0);
        assert_eq!(r[0].period_avg_ns, Some(500.0));
        assert_eq!(r[0].total_avg_ns, Some(501_000.0 / 1_010.0));
        assert!(
            (r[0].cpu_percent - 0.1).abs() < 1e-9,
            "{}",
            r[0].cpu_percent
        );
        assert_eq!(r[0].prog_type, "socket_filter");
        // A program first seen now counts from zero.
        assert_eq!(r[1].events_per_sec, 4.0);
        let idle = rows(
            &now,
            &HashMap::from([(
                7,
                Counters {
                    time: 501_000,
                    cnt: 1_010,
                },
            )]),
            Duration::from_secs(1),
        );
        assert_eq!(idle[0].period_avg_ns, None);
        assert_eq!(idle[0].cpu_percent, 0.0);
    }

    #[test]
    fn the_table_renders_and_sorts() {
        let mut view = View {
            rows: Vec::new(),
            sort: 0,
            table: TableState::default(),
            history: HashMap::new(),
            interval: Duration::from_secs(1),
        };
        let now = [info(3, "quiet", 10, 1), info(4, "busy", 9_000_000, 1_000)];
        view.update(rows(&now, &HashMap::new(), Duration::from_secs(1)));
        assert_eq!(view.rows[0].name, "busy", "sorted by CPU");
        let backend = ratatui::backend::TestBackend::new(100, 16);
        let mut term = ratatui::Terminal::new(backend).unwrap();
        term.draw(|f| view.draw(f)).unwrap();
        let text: String = term
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        for want in [
            "Period Avg (ns)",
            "Events/s",
            "busy",
            "quiet",
            "socket_filter",
            "CPU % of program 4",
            "0.90",
        ] {
            assert!(text.contains(want), "{want:?} not on screen:\n{text}");
        }
        view.sort = SORT_KEYS.iter().position(|k| *k == "id").unwrap();
        view.resort();
        assert_eq!(view.rows[0].id, 3);
        assert_eq!(
            view.selected_id(),
            Some(4),
            "the selection follows its program"
        );
    }
}
