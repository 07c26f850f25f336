//! Everything a run must undo, in one place that every exit path can reach: the normal end, an
//! error, a panic (the binary's panic hook), Ctrl-C and SIGTERM (the binary's signal handlers).
//!
//! The run registers what it creates as it creates it (its iptables chain, its netem qdisc, the
//! node processes it started, the foreign nodes it paused or killed), and [`undo_all`] undoes
//! all of it synchronously. Undoing is idempotent, so calling it twice is harmless.
//!
//! Node processes started by the harness also get `PR_SET_PDEATHSIG`, so they die with it even
//! when the harness itself is `kill -9`ed; iptables and tc leftovers of such a run are removed by
//! the next run on the same addresses, before it starts.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::net::{iptables, netem};

/// A node of a cluster the harness did not start, killed by a nemesis: how to start it again.
#[derive(Debug, Clone)]
pub struct ForeignRestart {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
}

#[derive(Debug, Default)]
struct Pending {
    chain: Option<String>,
    netem: bool,
    /// Processes the harness started: SIGCONT, then SIGKILL.
    children: Vec<i32>,
    /// Processes of someone else's cluster that a nemesis paused: SIGCONT.
    paused: Vec<i32>,
    /// Nodes of someone else's cluster that a nemesis killed: start again.
    killed: Vec<ForeignRestart>,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    chain: None,
    netem: false,
    children: Vec::new(),
    paused: Vec::new(),
    killed: Vec::new(),
});

fn with<T>(f: impl FnOnce(&mut Pending) -> T) -> T {
    let mut guard = PENDING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    f(&mut guard)
}

pub fn chain_installed(chain: &str) {
    with(|p| p.chain = Some(chain.to_owned()));
}

pub fn netem_installed(on: bool) {
    with(|p| p.netem = on);
}

pub fn child_started(pid: i32) {
    with(|p| p.children.push(pid));
}

pub fn child_gone(pid: i32) {
    with(|p| p.children.retain(|c| *c != pid));
}

pub fn foreign_paused(pid: i32, paused: bool) {
    with(|p| {
        p.paused.retain(|c| *c != pid);
        if paused {
            p.paused.push(pid);
        }
    });
}

pub fn foreign_killed(restart: ForeignRestart) {
    with(|p| p.killed.push(restart));
}

pub fn foreign_restarted(argv: &[String]) {
    with(|p| p.killed.retain(|k| k.argv != argv));
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill has no memory preconditions; a stale pid at worst fails with ESRCH.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Starts a node of someone else's cluster again, detached from the harness (its own session,
/// so the harness's Ctrl-C does not reach it), logging to `log`.
pub fn restart_foreign(restart: &ForeignRestart) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&restart.log)?;
    let Some((program, args)) = restart.argv.split_first() else {
        return Err(std::io::Error::other("empty command line"));
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(&restart.cwd)
        .env_clear()
        .envs(restart.env.iter().cloned())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    Ok(command.spawn()?.id())
}

/// Undoes everything registered. Synchronous, idempotent, never panics.
pub fn undo_all() {
    let pending = with(std::mem::take);
    if let Some(chain) = &pending.chain {
        iptables::remove_chain(chain);
    }
    if pending.netem {
        netem::remove_leftover();
    }
    for pid in &pending.children {
        signal(*pid, libc::SIGCONT);
        signal(*pid, libc::SIGKILL);
    }
    for pid in &pending.paused {
        signal(*pid, libc::SIGCONT);
    }
    for restart in &pending.killed {
        if let Err(e) = restart_foreign(restart) {
            eprintln!(
                "tessera-chaos: could not restart {:?}: {e}; start it again by hand",
                restart.argv
            );
        }
    }
}
