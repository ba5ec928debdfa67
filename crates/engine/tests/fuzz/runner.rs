//! The parent side: each case is written to a temp folder and loaded by a child process (this
//! test binary re-executed on `fuzz_child`) under an address-space limit and a wall-clock
//! timeout; the child's OUTCOME line is judged against the case's expectation, and all the
//! failures are reported together, grouped by class.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{env_or, layout, Case, Expect};

/// The child test's name and the variable that hands it the case folder.
pub const CHILD_TEST: &str = "fuzz_child";
pub const CHILD_ENV: &str = "TL_FUZZ_CHILD_DIR";
pub const CHILD_PROCESSING_ENV: &str = "TL_FUZZ_CHILD_PROCESSING";

#[derive(Debug, Clone)]
pub enum Outcome {
    Ok(String),
    Err { code: String, message: String },
    Bad(String),
    /// Killed by a signal, or a non-zero exit, with the last stage and stderr lines.
    Crash(String),
    Timeout(String),
    NoOutcome(String),
    /// The case folder could not be written here (not the loader's fault).
    Skipped(String),
}

pub struct Settings {
    pub timeout: Duration,
    pub as_limit: u64,
    pub keep: bool,
}

impl Settings {
    pub fn from_env() -> Settings {
        Settings {
            timeout: Duration::from_secs(env_or("TL_FUZZ_TIMEOUT_S", 20u64)),
            as_limit: env_or("TL_FUZZ_AS_LIMIT_MB", 4096u64) << 20,
            keep: std::env::var_os("TL_FUZZ_KEEP").is_some(),
        }
    }
}

/// At most `jobs` children at once across all the fuzz tests of this binary.
struct Slots {
    total: usize,
    free: Mutex<usize>,
    cv: Condvar,
}

fn slots() -> &'static Slots {
    static S: std::sync::OnceLock<Slots> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let total = env_or("TL_FUZZ_JOBS", cores.clamp(1, 8)).max(1);
        Slots { total, free: Mutex::new(total), cv: Condvar::new() }
    })
}

fn with_slot<T>(f: impl FnOnce() -> T) -> T {
    let s = slots();
    let mut free = s.free.lock().unwrap();
    while *free == 0 {
        free = s.cv.wait(free).unwrap();
    }
    *free -= 1;
    drop(free);
    let out = f();
    *s.free.lock().unwrap() += 1;
    s.cv.notify_one();
    out
}

fn case_root(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tl-fuzz-{}", std::process::id())).join(name)
}

fn tail_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("TLFUZZ-STAGE") && !l.contains("RUST_BACKTRACE"))
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

fn spawn_reader(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs one case in a child process.
pub fn run_case(case: &Case, s: &Settings) -> Outcome {
    let root = case_root(&case.name);
    let _ = std::fs::remove_dir_all(&root);
    let dir = match layout::materialize(&case.folder, &root) {
        Ok(d) => d,
        Err(e) => return Outcome::Skipped(format!("cannot write the case folder: {e}")),
    };
    let out = with_slot(|| run_child(&dir, case.processing, s));
    let failed = judge(case, &out).is_some();
    if !(s.keep && failed) {
        let _ = std::fs::remove_dir_all(&root);
    }
    out
}

fn run_child(dir: &Path, processing: bool, s: &Settings) -> Outcome {
    let exe = std::env::current_exe().expect("current_exe");
    let limit = s.as_limit;
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env(CHILD_PROCESSING_ENV, if processing { "1" } else { "0" })
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec. Best effort: a
    // platform that refuses a limit still runs the case (the timeout still applies).
    unsafe {
        cmd.pre_exec(move || {
            let as_lim = libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: limit as libc::rlim_t };
            let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            libc::setrlimit(libc::RLIMIT_AS, &as_lim);
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::Crash(format!("could not start the child: {e}")),
    };
    let (out_r, err_r) = (spawn_reader(child.stdout.take().unwrap()), spawn_reader(child.stderr.take().unwrap()));
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if started.elapsed() > s.timeout => {
                let _ = child.kill();
                timed_out = true;
                break child.wait().expect("wait after kill");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Outcome::Crash(format!("wait failed: {e}")),
        }
    };
    let (stdout, stderr) = (out_r.join().unwrap_or_default(), err_r.join().unwrap_or_default());
    let stage = stderr.lines().filter_map(|l| l.strip_prefix("TLFUZZ-STAGE ")).last().unwrap_or("before load").to_string();
    if timed_out {
        return Outcome::Timeout(format!("no exit after {:?}, during {stage}", s.timeout));
    }
    let line = stdout.lines().filter_map(|l| l.split_once("OUTCOME ").map(|(_, r)| r.trim().to_string())).last();
    if let Some(sig) = status.signal() {
        let name = match sig {
            libc::SIGABRT => "SIGABRT".to_string(),
            libc::SIGSEGV => "SIGSEGV".to_string(),
            libc::SIGBUS => "SIGBUS".to_string(),
            libc::SIGILL => "SIGILL".to_string(),
            libc::SIGKILL => "SIGKILL".to_string(),
            n => format!("signal {n}"),
        };
        return Outcome::Crash(format!("killed by {name} during {stage}: {}", tail_lines(&stderr, 2)));
    }
    match (status.code(), line) {
        (Some(0), Some(l)) => parse_outcome(&l),
        (code, Some(l)) => Outcome::Crash(format!("exit code {code:?} after OUTCOME {l}")),
        (code, None) => {
            let why = if code == Some(0) { "exit 0 but no OUTCOME line".to_string() } else { format!("exit code {code:?}") };
            Outcome::NoOutcome(format!("{why} during {stage}: {}", tail_lines(&stderr, 2)))
        }
    }
}

fn parse_outcome(l: &str) -> Outcome {
    let (head, rest) = l.split_once(' ').unwrap_or((l, ""));
    match head {
        "ok" => Outcome::Ok(rest.to_string()),
        "err" => {
            let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
            Outcome::Err { code: code.to_string(), message: message.to_string() }
        }
        "bad" => Outcome::Bad(rest.to_string()),
        _ => Outcome::NoOutcome(format!("unparsable OUTCOME line: {l}")),
    }
}

/// None: the outcome is acceptable for the case; Some: what is wrong.
pub fn judge(case: &Case, out: &Outcome) -> Option<String> {
    match out {
        Outcome::Ok(notes) if case.expect == Expect::MustRefuse => {
            Some(format!("loaded, but must be refused ({}){}", case.why_refuse(), if notes.is_empty() { String::new() } else { format!(" {notes}") }))
        }
        Outcome::Ok(_) | Outcome::Skipped(_) => None,
        Outcome::Err { code, message } if code == "TL_INTERNAL" => Some(format!("TL_INTERNAL: {message}")),
        Outcome::Err { code, message } if case.expect == Expect::MustLoad => Some(format!("refused a valid checkpoint: {code} {message}")),
        Outcome::Err { .. } => None,
        Outcome::Bad(why) => Some(format!("bad: {why}")),
        Outcome::Crash(why) => Some(format!("crash: {why}")),
        Outcome::Timeout(why) => Some(format!("timeout: {why}")),
        Outcome::NoOutcome(why) => Some(format!("no OUTCOME: {why}")),
    }
}

impl Case {
    /// What makes the case a must-refuse: its explicitly invalid mutations and the oracles'
    /// must-refuse findings.
    fn refuse_reasons(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .applied
            .iter()
            .filter(|a| a.expect == Some(Expect::MustRefuse))
            .map(|a| format!("{} is invalid", a.class))
            .collect();
        all.extend(self.why.iter().filter(|(e, _)| *e == Expect::MustRefuse).map(|(_, w)| w.clone()));
        all
    }
    fn why_refuse(&self) -> String {
        self.refuse_reasons().join("; ")
    }
    /// The group a failure is reported under: for a silent load, what made the case invalid
    /// (reduced to a key); otherwise the mutation classes.
    fn group_key(&self, _out: &Outcome) -> String {
        if self.expect == Expect::MustRefuse {
            let mut keys: Vec<String> = self.refuse_reasons().iter().map(|r| reason_key(r)).collect();
            keys.sort();
            keys.dedup();
            let tail = if self.processing { "" } else { " [no processing]" };
            return format!("{}{tail}", keys.join(" + "));
        }
        self.class()
    }
}

/// A reason reduced to what it is about: `config: n_inner`, `weights: shape h.*.mlp.c_proj.bias`.
fn reason_key(r: &str) -> String {
    let Some((src, rest)) = r.split_once(": ") else { return r.to_string() };
    if src != "weights" {
        if src == "config" {
            return format!("config: {}", rest.split([' ', ';']).next().unwrap_or(rest));
        }
        return src.to_string();
    }
    let role = |name: &str| super::st::role(name);
    if let Some(name) = rest.strip_prefix("required tensor ") {
        return format!("weights: missing {}", role(name.split(' ').next().unwrap_or(name)));
    }
    if rest.starts_with("format") {
        return "weights: format".into();
    }
    let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    if tail.starts_with("has shape") {
        format!("weights: shape {}", role(name))
    } else if tail.starts_with("has non-float") {
        format!("weights: dtype {}", role(name))
    } else if name.contains('[') {
        "weights: non-finite value".into()
    } else {
        format!("weights: {}", rest.chars().take(40).collect::<String>())
    }
}

/// The outcome reduced to a class for grouping (numbers and paths blurred).
fn outcome_class(failure: &str) -> String {
    let mut s = String::new();
    let mut last_digit = false;
    for c in failure.chars().take(110) {
        if c.is_ascii_digit() {
            if !last_digit {
                s.push('#');
            }
            last_digit = true;
        } else {
            s.push(c);
            last_digit = false;
        }
    }
    let s = if s.starts_with("loaded, but must be refused") { "loaded, but must be refused".to_string() } else { s };
    let tmp = env!("CARGO_TARGET_TMPDIR");
    s.replace(tmp, "<tmp>")
}

/// Runs all cases (in parallel, `TL_FUZZ_JOBS` at once) and panics with every failure.
pub fn run_and_assert(suite: &str, cases: Vec<Case>, rerun: &str) {
    let s = Arc::new(Settings::from_env());
    let started = Instant::now();
    let n = cases.len();
    let cases = Arc::new(cases);
    let next = Arc::new(Mutex::new(0usize));
    let results = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..slots_count())
        .map(|_| {
            let (cases, next, results, s) = (cases.clone(), next.clone(), results.clone(), s.clone());
            std::thread::spawn(move || loop {
                let i = {
                    let mut g = next.lock().unwrap();
                    let i = *g;
                    *g += 1;
                    i
                };
                let Some(case) = cases.get(i) else { break };
                let out = run_case(case, &s);
                results.lock().unwrap().push((i, out));
            })
        })
        .collect();
    for w in workers {
        w.join().expect("fuzz worker");
    }
    let mut results = std::mem::take(&mut *results.lock().unwrap());
    results.sort_by_key(|(i, _)| *i);
    let mut failures = Vec::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, out) in &results {
        let case = &cases[*i];
        let kind = match out {
            Outcome::Ok(_) => "ok",
            Outcome::Err { .. } => "err",
            Outcome::Skipped(_) => "skipped",
            _ => "failed",
        };
        *counts.entry(kind).or_default() += 1;
        if let Outcome::Skipped(why) = out {
            eprintln!("[{suite}] {} skipped: {why}", case.name);
        }
        if std::env::var_os("TL_FUZZ_VERBOSE").is_some() {
            eprintln!("[{suite}] {} [{:?}] {} => {out:?}", case.name, case.expect, case.describe());
        }
        if let Some(f) = judge(case, out) {
            failures.push((case, out, f));
        }
    }
    let _ = std::fs::remove_dir(case_root("x").parent().unwrap());
    eprintln!("[{suite}] {n} cases in {:.1?}: {counts:?}; {} failures", started.elapsed(), failures.len());
    if failures.is_empty() {
        return;
    }
    let mut groups: BTreeMap<(String, String), Vec<&Case>> = BTreeMap::new();
    for (case, out, f) in &failures {
        groups.entry((case.group_key(out), outcome_class(f))).or_default().push(case);
    }
    let mut msg = format!("{suite}: {} of {n} cases failed, {} distinct classes (mutation -> outcome):\n", failures.len(), groups.len());
    for ((class, out), cs) in &groups {
        msg += &format!("  [{}x] {class} ({:?}) -> {out}   e.g. {}\n", cs.len(), cs[0].expect, cs[0].name);
    }
    msg += "\nAll failures:\n";
    for (case, _, f) in &failures {
        msg += &format!("- {} [{:?}] {}\n    => {f}\n", case.name, case.expect, case.describe());
    }
    msg += &format!("\nRerun one case: TL_FUZZ_ONLY=<case name> {rerun}; add TL_FUZZ_KEEP=1 to keep its folder (under {}).\n", env!("CARGO_TARGET_TMPDIR"));
    panic!("{msg}");
}

fn slots_count() -> usize {
    slots().total
}
