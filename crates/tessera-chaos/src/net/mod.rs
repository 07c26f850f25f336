//! What the harness does to the network: iptables rules in a chain of its own
//! ([`iptables`]), tc netem on the loopback device ([`netem`]), and the one rule that guards
//! both: every address touched is a loopback address of the run's own nodes ([`Owned`]).

pub mod iptables;
pub mod netem;

use std::net::Ipv4Addr;
use std::process::Command;

use crate::error::ChaosError;

/// The node addresses a run may touch.
#[derive(Debug, Clone)]
pub struct Owned {
    addresses: Vec<Ipv4Addr>,
}

impl Owned {
    /// Refuses any address that is not loopback: a partition of anything else could cut a
    /// machine off its network.
    pub fn new(addresses: Vec<Ipv4Addr>) -> Result<Self, ChaosError> {
        for address in &addresses {
            if !address.is_loopback() {
                return Err(ChaosError::ForbiddenAddress {
                    address: address.to_string(),
                    reason: "the chaos harness only acts on loopback addresses (127.0.0.0/8)"
                        .into(),
                });
            }
        }
        Ok(Owned { addresses })
    }

    /// Checks that `address` is one of the run's nodes.
    pub fn check(&self, address: Ipv4Addr) -> Result<Ipv4Addr, ChaosError> {
        if address.is_loopback() && self.addresses.contains(&address) {
            Ok(address)
        } else {
            Err(ChaosError::ForbiddenAddress {
                address: address.to_string(),
                reason: format!("not one of this run's node addresses {:?}", self.addresses),
            })
        }
    }

    pub fn addresses(&self) -> &[Ipv4Addr] {
        &self.addresses
    }
}

/// Runs a command to completion; an error carries the command line and what it printed.
pub fn run(program: &str, args: &[String]) -> Result<String, ChaosError> {
    let line = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| ChaosError::Command {
            command: line.clone(),
            code: None,
            stderr: e.to_string(),
        })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(ChaosError::Command {
            command: line,
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Whether this process runs as root (the usual way to hold CAP_NET_ADMIN).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_of_the_run_are_touched() {
        assert!(Owned::new(vec!["10.0.0.1".parse().unwrap()]).is_err());
        let owned = Owned::new(vec!["127.0.0.101".parse().unwrap()]).unwrap();
        assert!(owned.check("127.0.0.101".parse().unwrap()).is_ok());
        assert!(owned.check("127.0.0.11".parse().unwrap()).is_err());
        assert!(owned.check("192.168.1.1".parse().unwrap()).is_err());
    }
}
