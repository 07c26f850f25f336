//! Starts and stops the faults of the schedule: firewall rules for partitions and lossy links,
//! netem for slow links, signals for process faults.

use std::net::Ipv4Addr;

use crate::cleanup;
use crate::cluster::Cluster;
use crate::error::ChaosError;
use crate::net::iptables::Firewall;
use crate::net::netem::Netem;
use crate::schedule::Action;

/// What the faults act through.
pub struct Nemeses {
    pub firewall: Option<Firewall>,
    pub netem: Option<Netem>,
    /// Node i's address.
    pub ips: Vec<Ipv4Addr>,
}

impl Nemeses {
    fn pairs(&self, pairs: &[(usize, usize)]) -> Vec<(Ipv4Addr, Ipv4Addr)> {
        pairs
            .iter()
            .map(|&(a, b)| (self.ips[a], self.ips[b]))
            .collect()
    }

    fn firewall(&self) -> Result<&Firewall, ChaosError> {
        self.firewall.as_ref().ok_or_else(|| {
            ChaosError::Privileges("this nemesis needs iptables, which was not set up".into())
        })
    }

    pub async fn start(&self, cluster: &mut Cluster, action: &Action) -> Result<(), ChaosError> {
        match action {
            Action::Cut { pairs, .. } => self.firewall()?.cut(&self.pairs(pairs)),
            Action::Lossy {
                pairs,
                loss_percent,
            } => self.firewall()?.lossy(&self.pairs(pairs), *loss_percent),
            Action::Slow {
                pairs,
                delay_ms,
                jitter_ms,
                loss_percent,
            } => {
                let netem = self
                    .netem
                    .as_ref()
                    .ok_or_else(|| ChaosError::Privileges("netem is not available".into()))?;
                cleanup::netem_installed(true);
                netem.slow(&self.pairs(pairs), *delay_ms, *jitter_ms, *loss_percent)
            }
            Action::Kill { node } => cluster.kill(*node).await,
            Action::Pause { node } => cluster.pause(*node),
            Action::Wipe { node } => cluster.wipe(*node).await,
        }
    }

    pub async fn stop(&self, cluster: &mut Cluster, action: &Action) -> Result<(), ChaosError> {
        match action {
            Action::Cut { .. } | Action::Lossy { .. } => self.firewall()?.heal(),
            Action::Slow { .. } => {
                if let Some(netem) = &self.netem {
                    netem.heal();
                }
                cleanup::netem_installed(false);
                Ok(())
            }
            Action::Kill { node } | Action::Wipe { node } => cluster.restart(*node).await,
            Action::Pause { node } => cluster.resume(*node),
        }
    }

    /// Heals every link (the final heal; processes are revived by the cluster).
    pub fn heal_links(&self) -> Result<(), ChaosError> {
        if let Some(firewall) = &self.firewall {
            firewall.heal()?;
        }
        if let Some(netem) = &self.netem {
            netem.heal();
            cleanup::netem_installed(false);
        }
        Ok(())
    }
}
