//! What the harness waits for, asked of every node: the same ring everywhere (epoch and owners
//! of `/v1/cluster/ring`), every member alive in every node's view (`/v1/cluster`), and no hints
//! or background work left (`/metrics`). Also the placement of keys, from the ring.

use std::time::{Duration, Instant};

use serde_json::Value;
use tessera_ring::{token_of, PartitionScheme};

use crate::client::{metric, Api};

/// A node's ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingView {
    pub epoch: u64,
    pub partitions: u64,
    pub owners: Vec<String>,
    /// Data is moving to this ring from the previous one.
    pub moving: bool,
}

impl RingView {
    pub fn parse(json: &Value) -> Option<RingView> {
        Some(RingView {
            epoch: json["epoch"].as_u64()?,
            partitions: json["partitions"].as_u64()?,
            owners: json["owners"]
                .as_array()?
                .iter()
                .map(|o| o.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()?,
            moving: json["moving"].as_bool().unwrap_or(false),
        })
    }

    /// The replicas of `key`: the owner of its partition and of the following ones, skipping
    /// repeats, up to `n` distinct nodes (docs/api.md).
    pub fn replicas(&self, key: &str, n: usize) -> Vec<String> {
        let Ok(scheme) = PartitionScheme::new(self.partitions) else {
            return Vec::new();
        };
        if self.owners.is_empty() {
            return Vec::new();
        }
        let first = usize::from(scheme.partition_of(token_of(key.as_bytes())));
        let mut out: Vec<String> = Vec::new();
        for step in 0..self.owners.len() {
            let owner = &self.owners[(first + step) % self.owners.len()];
            if !out.contains(owner) {
                out.push(owner.clone());
                if out.len() == n {
                    break;
                }
            }
        }
        out
    }
}

/// Why the cluster is not (yet) in the state waited for.
pub type NotYet = String;

/// Every node answers with the same ring, which holds every expected member with no move under
/// way, and sees every expected member alive.
pub async fn settled(api: &Api, hosts: &[String], ids: &[String]) -> Result<RingView, NotYet> {
    let mut first: Option<(String, RingView)> = None;
    for host in hosts {
        let ring = api
            .get_json(host, "/v1/cluster/ring")
            .await
            .and_then(|j| RingView::parse(&j))
            .ok_or_else(|| format!("{host} does not answer its ring"))?;
        if ring.moving {
            return Err(format!(
                "{host}: data is still moving to epoch {}",
                ring.epoch
            ));
        }
        if let Some(missing) = ids.iter().find(|id| !ring.owners.contains(id)) {
            return Err(format!(
                "{missing} owns no partition yet (epoch {})",
                ring.epoch
            ));
        }
        match &first {
            None => first = Some((host.clone(), ring)),
            Some((h, r)) if *r != ring => {
                return Err(format!(
                    "rings differ: {h} has epoch {}, {host} has epoch {}{}",
                    r.epoch,
                    ring.epoch,
                    if r.epoch == ring.epoch {
                        " with other owners"
                    } else {
                        ""
                    }
                ))
            }
            Some(_) => {}
        }
        let view = api
            .get_json(host, "/v1/cluster")
            .await
            .ok_or_else(|| format!("{host} does not answer /v1/cluster"))?;
        for id in ids {
            let alive = view["members"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["id"] == id.as_str())
                .and_then(|m| m["alive"].as_bool())
                .unwrap_or(false);
            if !alive {
                return Err(format!("{host} does not see {id} alive"));
            }
        }
    }
    first
        .map(|(_, ring)| ring)
        .ok_or_else(|| "no nodes".to_string())
}

/// Hints held and background tasks running, summed over the nodes.
pub async fn pending(api: &Api, hosts: &[String]) -> Result<(u64, u64), NotYet> {
    let mut hints = 0;
    let mut background = 0;
    for host in hosts {
        let text = api
            .get_text(host, "/metrics")
            .await
            .ok_or_else(|| format!("{host} does not answer /metrics"))?;
        hints += metric(&text, "tessera_hints_pending").unwrap_or(0.0) as u64;
        background += metric(&text, "tessera_coordinator_background_tasks").unwrap_or(0.0) as u64;
    }
    Ok((hints, background))
}

/// Polls `check` every `every` until it succeeds or `deadline` passes; returns the start time
/// of the round that succeeded, or the last reason it did not.
pub async fn wait_for<T, F, Fut>(
    deadline: Duration,
    every: Duration,
    mut check: F,
) -> Result<(Instant, T), NotYet>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, NotYet>>,
{
    let end = Instant::now() + deadline;
    loop {
        let round = Instant::now();
        match check().await {
            Ok(value) => return Ok((round, value)),
            Err(why) if Instant::now() >= end => return Err(why),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_walk_the_ring_skipping_repeats() {
        let ring = RingView {
            epoch: 1,
            partitions: 4,
            owners: ["n1", "n1", "n2", "n3"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            moving: false,
        };
        // Every key's walk finds 3 distinct nodes, starting at its partition's owner.
        for key in ["a", "b", "c", "d", "e"] {
            let replicas = ring.replicas(key, 3);
            assert_eq!(replicas.len(), 3, "{key}");
            let p = PartitionScheme::new(4)
                .unwrap()
                .partition_of(token_of(key.as_bytes()));
            assert_eq!(replicas[0], ring.owners[usize::from(p)]);
        }
        assert_eq!(ring.replicas("a", 5).len(), 3);
    }
}
