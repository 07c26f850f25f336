//! Partitions and lossy links as iptables rules, in a chain of the run's own.
//!
//! The chain (`TCHAOS_<a>_<b>_<c>`, named after the run's first node address, so two runs on
//! different addresses never share one) is jumped to from OUTPUT: on loopback every packet
//! crosses OUTPUT, so one DROP rule per (source, destination) cuts TCP (data) and UDP
//! (membership) alike. Clients talk to the nodes from 127.0.0.1, which no rule names, so only
//! links between nodes are cut.
//!
//! [`Firewall::remove`] is synchronous and idempotent: the cleanup path calls it on success,
//! failure, panic, Ctrl-C and SIGTERM, and the next run calls it first for a chain a crashed run
//! left behind.

use std::net::Ipv4Addr;

use super::{is_root, run, Owned};
use crate::error::ChaosError;

/// Seconds iptables waits for the xtables lock.
const LOCK_WAIT: &str = "5";

/// The chain of a run whose first node is `first`.
pub fn chain_name(first: Ipv4Addr) -> String {
    let [_, b, c, d] = first.octets();
    format!("TCHAOS_{b}_{c}_{d}")
}

#[derive(Debug)]
pub struct Firewall {
    chain: String,
    owned: Owned,
}

fn args(words: &[&str]) -> Vec<String> {
    let mut out = vec!["-w".to_string(), LOCK_WAIT.to_string()];
    out.extend(words.iter().map(|w| w.to_string()));
    out
}

impl Firewall {
    /// Checks that iptables can be used here: the binary exists and this process may change
    /// rules. The error says what is missing and how to get it.
    pub fn preflight() -> Result<(), ChaosError> {
        if !is_root() {
            return Err(ChaosError::Privileges(
                "the partition and lossy-link nemeses need iptables, which needs root (or \
                 CAP_NET_ADMIN): run `sudo scripts/chaos.sh ...`, or choose only process \
                 nemeses with `--nemesis process`"
                    .into(),
            ));
        }
        run("iptables", &args(&["-S", "OUTPUT"])).map_err(|e| {
            ChaosError::Privileges(format!(
                "iptables is not usable here ({e}); install it (`apt-get install iptables`) and \
                 run as root, or choose only process nemeses with `--nemesis process`"
            ))
        })?;
        Ok(())
    }

    pub fn new(first: Ipv4Addr, owned: Owned) -> Self {
        Firewall {
            chain: chain_name(first),
            owned,
        }
    }

    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// Creates the chain (after removing any left by a crashed run) and jumps to it.
    pub fn install(&self) -> Result<(), ChaosError> {
        remove_chain(&self.chain);
        run("iptables", &args(&["-N", &self.chain]))?;
        run("iptables", &args(&["-I", "OUTPUT", "1", "-j", &self.chain]))?;
        Ok(())
    }

    /// Drops every packet between each pair, both ways.
    pub fn cut(&self, pairs: &[(Ipv4Addr, Ipv4Addr)]) -> Result<(), ChaosError> {
        self.drop_rules(pairs, None)
    }

    /// Drops `percent`% of the packets between each pair, both ways, at random.
    pub fn lossy(&self, pairs: &[(Ipv4Addr, Ipv4Addr)], percent: u32) -> Result<(), ChaosError> {
        self.drop_rules(pairs, Some(percent))
    }

    fn drop_rules(
        &self,
        pairs: &[(Ipv4Addr, Ipv4Addr)],
        percent: Option<u32>,
    ) -> Result<(), ChaosError> {
        for &(a, b) in pairs {
            let (a, b) = (self.owned.check(a)?, self.owned.check(b)?);
            for (from, to) in [(a, b), (b, a)] {
                let (from, to) = (from.to_string(), to.to_string());
                let mut words = vec!["-A", &self.chain, "-s", &from, "-d", &to];
                let probability = percent.map(|p| format!("{:.3}", f64::from(p.min(100)) / 100.0));
                if let Some(p) = &probability {
                    words.extend(["-m", "statistic", "--mode", "random", "--probability", p]);
                }
                words.extend(["-j", "DROP"]);
                run("iptables", &args(&words))?;
            }
        }
        Ok(())
    }

    /// Removes every rule of the chain: all links work again.
    pub fn heal(&self) -> Result<(), ChaosError> {
        run("iptables", &args(&["-F", &self.chain])).map(|_| ())
    }

    /// Unhooks, flushes and deletes the chain. Never fails: it is the cleanup path.
    pub fn remove(&self) {
        remove_chain(&self.chain);
    }
}

/// Unhooks, flushes and deletes `chain`, ignoring what is already gone.
pub fn remove_chain(chain: &str) {
    // Every jump from OUTPUT (a crashed run may have left more than one); bounded.
    for _ in 0..16 {
        if run("iptables", &args(&["-D", "OUTPUT", "-j", chain])).is_err() {
            break;
        }
    }
    let _ = run("iptables", &args(&["-F", chain]));
    let _ = run("iptables", &args(&["-X", chain]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_are_named_after_the_first_node_and_fit_iptables() {
        let name = chain_name("127.255.255.101".parse().unwrap());
        assert_eq!(name, "TCHAOS_255_255_101");
        assert!(name.len() <= 28);
    }
}
