//! The harness end to end against real `tessera` processes: a short schedule (one partition,
//! one `kill -9` and restart, one `SIGSTOP` pause) on 5 nodes with the set and register
//! workloads at quorum must find no violation, and its saved history must be judged the same by
//! `--check`.
//!
//! Partitions need iptables, so root. Without root the test fails under `CI=true` and is skipped
//! loudly otherwise. Each test uses its own loopback range, so it never meets a `make run`
//! cluster (127.0.0.11-15) or a chaos run on the default range (127.0.0.101-107).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One chaos run at a time: two 5-node clusters at once on a 2-core machine would only measure
/// the machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serialised() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The `tessera` binary: `TESSERA_BIN`, else next to this test's target dir (`cargo build --bin
/// tessera` puts it there).
fn tessera_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("TESSERA_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    for dir in exe.ancestors().skip(1) {
        let candidate = dir.join("tessera");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("no tessera binary found above {}: run `cargo build --bin tessera` (make test does), or set TESSERA_BIN", exe.display());
}

/// Whether the test may run: root is needed for iptables.
fn may_run(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let message = format!(
        "{test} needs root for iptables (partitions); run the tests as root, e.g. `sudo -E make test`"
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    eprintln!("\n**********\nSKIPPED: {message}\n**********\n");
    false
}

/// A seed that changes from run to run (printed), so CI keeps drawing new schedules.
fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64 % 100_000)
        .unwrap_or(7)
}

/// `--flag value` pairs as arguments.
fn flags<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<&'a str> {
    pairs
        .iter()
        .flat_map(|(flag, value)| [*flag, *value])
        .collect()
}

/// Runs the harness; returns its exit code.
fn chaos(base_ip: &str, seed: u64, extra: &[(&str, &str)], out: &Path) -> i32 {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera-chaos"));
    command
        .arg("--bin")
        .arg(tessera_bin())
        .args([
            "--base-ip",
            base_ip,
            "--seed",
            &seed.to_string(),
            "--nodes",
            "5",
        ])
        .arg("--out")
        .arg(out)
        .args(flags(extra));
    eprintln!("running {command:?}");
    let status = command.status().expect("the tessera-chaos binary runs");
    status.code().unwrap_or(-1)
}

fn show(out: &Path) -> String {
    std::fs::read_to_string(out.join("summary.md"))
        .unwrap_or_else(|e| format!("(no summary.md: {e})"))
}

/// The short schedule of `make test`. Clients talk to a replica of each key (`--route replica`):
/// with `--route node`, a write forwarded to a replica that is paused or cut off is retried at
/// another replica and later applied a second time by the first (see
/// `forwarded_writes_are_not_applied_twice` below and docs/chaos.md), which this schedule hits
/// almost every time.
#[test]
fn a_short_schedule_finds_no_violation() {
    if !may_run("a_short_schedule_finds_no_violation") {
        return;
    }
    let _one = serialised();
    let seed = fresh_seed();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("report");
    let code = chaos(
        "127.0.1.101",
        seed,
        &[
            ("--nemesis", "isolate,kill,pause"),
            ("--duration", "36"),
            ("--warmup", "3"),
            ("--fault-secs", "6-8"),
            ("--gap-secs", "4-5"),
            ("--healthy-secs", "6"),
            ("--workloads", "set,register"),
            ("--clients", "6"),
            ("--rate", "80"),
            ("--level", "quorum"),
            ("--route", "replica"),
            ("--converge-timeout", "3"),
        ],
        &out,
    );
    let summary = show(&out);
    assert_eq!(
        code, 0,
        "seed {seed}: the run failed or found violations:\n{summary}"
    );
    for file in ["history.jsonl", "summary.md", "plot.svg", "verdict.json"] {
        assert!(
            out.join(file).is_file(),
            "seed {seed}: no {file} in the report"
        );
    }
    assert!(summary.contains("PASS"), "{summary}");
    assert!(
        summary.contains("](plot.svg)"),
        "the summary links the plot"
    );
    assert!(
        summary.contains(&format!("--seed {seed}")),
        "the summary prints the replay command"
    );
    // All three faults happened, and were recorded.
    for kind in ["| isolate |", "| kill |", "| pause |"] {
        assert!(
            summary.contains(kind),
            "seed {seed}: no {kind} window:\n{summary}"
        );
    }

    // The saved history is judged the same way again.
    let again = dir.path().join("again");
    let status = Command::new(env!("CARGO_BIN_EXE_tessera-chaos"))
        .arg("--check")
        .arg(out.join("history.jsonl"))
        .arg("--out")
        .arg(&again)
        .status()
        .expect("--check runs");
    assert_eq!(
        status.code(),
        Some(0),
        "--check disagrees:\n{}",
        show(&again)
    );
}

/// The same schedule with clients that send every request to their own node, which forwards
/// writes it is no replica of. A regression test of the first product bug the harness found: a
/// forwarded write whose first replica did not answer in time (paused, cut off) was retried at
/// the next replica, and the first applied it later anyway, under a dot of its own, after a
/// read-modify-write superseded the first copy: the superseded value came back as a sibling of
/// the write that superseded it. Such a forward now ends in a timeout (outcome unknown).
#[test]
fn forwarded_writes_are_not_applied_twice() {
    if !may_run("forwarded_writes_are_not_applied_twice") {
        return;
    }
    let _one = serialised();
    let seed = fresh_seed();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("report");
    let code = chaos(
        "127.0.2.101",
        seed,
        &[
            ("--nemesis", "isolate,pause"),
            ("--duration", "30"),
            ("--warmup", "3"),
            ("--fault-secs", "8-8"),
            ("--gap-secs", "4-5"),
            ("--healthy-secs", "6"),
            ("--workloads", "register,batch"),
            ("--route", "node"),
            ("--converge-timeout", "3"),
        ],
        &out,
    );
    assert_eq!(code, 0, "seed {seed}:\n{}", show(&out));
}

/// A build with the `fault-injection` feature: `TESSERA_FAULT_BIN`, else one this test builds
/// into the target dir it runs from (cargo does not hold its lock while tests run), as
/// `debug/tessera-fault-injection`, putting the normal `debug/tessera` back afterwards. The
/// feature does nothing unless `TESSERA_FAULT` is set.
fn fault_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("TESSERA_FAULT_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    // target/debug/deps/e2e-HASH
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test runs from a cargo target dir")
        .to_path_buf();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = |features: &[&str]| {
        let status = Command::new(&cargo)
            .current_dir(&root)
            .args(["build", "--quiet", "--bin", "tessera", "--target-dir"])
            .arg(&target)
            .args(features)
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "cargo build --bin tessera {features:?} failed"
        );
    };
    build(&["--features", "tessera/fault-injection"]);
    let faulty = target.join("debug/tessera-fault-injection");
    std::fs::copy(target.join("debug/tessera"), &faulty).expect("copying the fault build");
    build(&[]);
    faulty
}

/// Breaks the system on purpose and checks that the harness says so: with
/// `TESSERA_FAULT=drop-replication`, a coordinator acknowledges a write on its own copy alone,
/// so wiping a node's data dir loses the writes it coordinated. The run must exit 1 and report
/// lost adds.
#[test]
fn a_build_that_drops_replication_is_caught_losing_writes() {
    if !may_run("a_build_that_drops_replication_is_caught_losing_writes") {
        return;
    }
    let _one = serialised();
    let seed = fresh_seed();
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("report");
    let bin = fault_bin();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera-chaos"));
    command
        .arg("--bin")
        .arg(&bin)
        .args([
            "--base-ip",
            "127.0.3.101",
            "--seed",
            &seed.to_string(),
            "--nodes",
            "5",
        ])
        .arg("--out")
        .arg(&out)
        .args(flags(&[
            ("--node-env", "TESSERA_FAULT=drop-replication"),
            ("--nemesis", "wipe"),
            ("--duration", "20"),
            ("--warmup", "10"),
            ("--fault-secs", "4-4"),
            ("--healthy-secs", "3"),
            ("--workloads", "set"),
            ("--clients", "10"),
            ("--rate", "100"),
            ("--converge-timeout", "1"),
            // A wiped node comes back with a ring of its own today (docs/chaos.md), so the
            // recovery never comes; the verdict on lost adds does not need it.
            ("--recover-within", "10"),
        ]));
    eprintln!("running {command:?}");
    let code = command.status().expect("tessera-chaos runs").code();
    let summary = show(&out);
    let logs: String = (1..=5)
        .map(|i| std::fs::read_to_string(out.join(format!("nodes/n{i}.log"))).unwrap_or_default())
        .collect();
    assert!(
        logs.contains("fault injection"),
        "seed {seed}: the nodes did not run the broken write path (no `fault injection` in their \
         logs): was {} built with the fault-injection feature?\n{summary}",
        bin.display()
    );
    assert_eq!(
        code,
        Some(1),
        "seed {seed}: the broken build was not caught:\n{summary}"
    );
    let verdict: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("verdict.json")).expect("verdict.json"))
            .expect("verdict.json is JSON");
    let lost = verdict["counts"]["set"]["lost"].as_u64().unwrap_or(0);
    assert!(lost > 0, "seed {seed}: no lost add reported:\n{summary}");
    assert!(summary.contains("lost add"), "{summary}");
}
