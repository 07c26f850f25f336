//! Slow links with tc netem on the loopback device.
//!
//! A qdisc on `lo` affects every process on the machine, so the harness confines netem to its
//! own nodes' pairs: a `prio` root qdisc with one extra band that no packet priority maps to,
//! netem on that band, and u32 filters that send only the chosen (source, destination) pairs
//! into it. Everything else takes the ordinary bands.
//!
//! The harness only installs its root qdisc when `lo` has none of its own (`noqueue`, the
//! default), and deleting the root returns `lo` to that default, so "restore" is exact. A qdisc
//! with the harness's handle (`7c3a:`) left by a crashed run is removed at the start.
//!
//! Kernels without the `prio` or `netem` qdiscs exist (containers, minimal VMs): [`probe`] says
//! so, and the run skips this nemesis with a note instead of failing.

use std::net::Ipv4Addr;

use super::{run, Owned};
use crate::error::ChaosError;

/// The root qdisc's handle: "7c3a" reads as "chaos" to nobody, and collides with nothing usual.
const ROOT: &str = "7c3a:";
const BAND: &str = "7c3a:4";
const NETEM: &str = "7c3b:";

fn tc(words: &[&str]) -> Result<String, ChaosError> {
    let args: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    run("tc", &args)
}

/// The root qdisc line of `lo`.
fn root_qdisc() -> Result<String, ChaosError> {
    let shown = tc(&["qdisc", "show", "dev", "lo"])?;
    Ok(shown
        .lines()
        .find(|l| l.contains(" root "))
        .unwrap_or("")
        .to_owned())
}

/// Removes a root qdisc of the harness's own from `lo` (left by a crashed run).
pub fn remove_leftover() {
    if root_qdisc().is_ok_and(|line| line.contains(&format!("prio {ROOT}"))) {
        let _ = tc(&["qdisc", "del", "dev", "lo", "root"]);
    }
}

/// Whether the slow-link nemesis can run here: `Err` says why not, for the run's notes.
pub fn probe() -> Result<(), String> {
    remove_leftover();
    let root = root_qdisc().map_err(|e| format!("tc is not usable ({e})"))?;
    if !root.is_empty() && !root.starts_with("qdisc noqueue") {
        return Err(format!(
            "lo already has a root qdisc of its own ({root}); the harness leaves it alone"
        ));
    }
    let installed = install_root(1, 0, 0);
    remove_leftover();
    installed.map_err(|e| format!("this kernel has no usable prio/netem qdisc ({e})"))
}

fn install_root(delay_ms: u32, jitter_ms: u32, loss_percent: u32) -> Result<(), ChaosError> {
    tc(&[
        "qdisc", "add", "dev", "lo", "root", "handle", ROOT, "prio", "bands", "4", "priomap", "1",
        "2", "2", "2", "1", "2", "0", "0", "1", "1", "1", "1", "1", "1", "1", "1",
    ])?;
    let delay = format!("{delay_ms}ms");
    let jitter = format!("{jitter_ms}ms");
    let loss = format!("{loss_percent}%");
    let mut netem = vec![
        "qdisc", "add", "dev", "lo", "parent", BAND, "handle", NETEM, "netem", "delay", &delay,
    ];
    if jitter_ms > 0 {
        netem.push(&jitter);
    }
    if loss_percent > 0 {
        netem.extend(["loss", &loss]);
    }
    if let Err(e) = tc(&netem) {
        remove_leftover();
        return Err(e);
    }
    Ok(())
}

/// netem between the run's own nodes.
#[derive(Debug)]
pub struct Netem {
    owned: Owned,
}

impl Netem {
    pub fn new(owned: Owned) -> Self {
        Netem { owned }
    }

    /// Delays (and drops some of) the packets between each pair, both ways.
    pub fn slow(
        &self,
        pairs: &[(Ipv4Addr, Ipv4Addr)],
        delay_ms: u32,
        jitter_ms: u32,
        loss_percent: u32,
    ) -> Result<(), ChaosError> {
        for &(a, b) in pairs {
            self.owned.check(a)?;
            self.owned.check(b)?;
        }
        install_root(delay_ms, jitter_ms, loss_percent)?;
        for &(a, b) in pairs {
            for (from, to) in [(a, b), (b, a)] {
                let (src, dst) = (format!("{from}/32"), format!("{to}/32"));
                let added = tc(&[
                    "filter", "add", "dev", "lo", "parent", ROOT, "protocol", "ip", "prio", "1",
                    "u32", "match", "ip", "src", &src, "match", "ip", "dst", &dst, "flowid", BAND,
                ]);
                if let Err(e) = added {
                    self.heal();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Returns `lo` to its default qdisc. Never fails: it is the cleanup path.
    pub fn heal(&self) {
        remove_leftover();
    }
}
