//! Checks shared by the ring tests: each returns a description of what is wrong, so that property
//! tests can report it and the worst-case sweep can tally it.

#![allow(dead_code)]

use std::collections::HashSet;
use tessera_ring::{diff, replica_changes, NodeId, PartitionId, Ring};

pub fn names(prefix: &str, count: usize) -> Vec<NodeId> {
    (0..count).map(|i| format!("{prefix}{i:03}")).collect()
}

pub fn loads(ring: &Ring) -> Vec<usize> {
    ring.nodes().map(|n| ring.partitions_of(n).len()).collect()
}

/// The ±10 % band in whole partitions: `[ceil(0.9·Q/S), floor(1.1·Q/S)]`, widened only to take
/// in the floor and ceiling of Q/S where it would leave them out.
pub fn band(q: u32, s: usize) -> (usize, usize) {
    let (q, s) = (q as usize, s);
    (
        (9 * q).div_ceil(10 * s).min(q / s),
        ((11 * q) / (10 * s)).max(q.div_ceil(s)),
    )
}

/// `ceil(1.2·Q/S)`, the most partitions one change may move.
pub fn move_limit(q: u32, s: usize) -> usize {
    (6 * q as usize).div_ceil(5 * s)
}

/// Whether Q/S ≥ 8, where the load band must hold.
pub fn dense(q: u32, s: usize) -> bool {
    q as usize >= 8 * s
}

/// Windows of `min(N, S)` consecutive partitions that repeat a node, counted independently of
/// `Ring::target_n_violations`.
pub fn repeated_windows(ring: &Ring) -> usize {
    let owners: Vec<&NodeId> = ring.owners().collect();
    let q = owners.len();
    let w = (ring.target_n() as usize).min(ring.node_count()).min(q);
    (0..q)
        .filter(|&p| {
            let set: HashSet<&NodeId> = (0..w).map(|d| owners[(p + d) % q]).collect();
            set.len() < w
        })
        .count()
}

/// Everything that must hold of any ring, whatever its history.
pub fn check_ring(ring: &Ring) -> Result<(), String> {
    let q = ring.scheme().count();
    let s = ring.node_count();
    if ring.owners().len() != q as usize {
        return Err(format!("{} owners for {q} partitions", ring.owners().len()));
    }
    let l = loads(ring);
    if l.iter().sum::<usize>() != q as usize || l.contains(&0) {
        return Err(format!("loads {l:?} do not cover Q = {q} with every node"));
    }
    if repeated_windows(ring) != ring.target_n_violations().len() {
        return Err("target_n_violations disagrees with an independent count".into());
    }
    // Every partition for N, a sample for the other lengths (fallbacks walk the whole ring).
    for n in [1, ring.target_n() as usize, ring.target_n() as usize + 1] {
        let step = if n == ring.target_n() as usize {
            1
        } else {
            (q as usize / 8).max(1)
        };
        for p in (0..q as usize).step_by(step) {
            let p = p as PartitionId;
            let list = ring.preference_list(p, n);
            let distinct: HashSet<&NodeId> = list.iter().collect();
            if list.len() != n.min(s) || distinct.len() != list.len() {
                return Err(format!("preference list of {p} for n={n}: {list:?}"));
            }
            if list[0] != *ring.owner(p) {
                return Err(format!(
                    "preference list of {p} does not start at its owner"
                ));
            }
            if usize::from(p) % (q as usize / 8).max(1) != 0 {
                continue;
            }
            let fallbacks = ring.fallbacks(p, n);
            if fallbacks.len() != s - list.len() || fallbacks.iter().any(|f| distinct.contains(f)) {
                return Err(format!("fallbacks of {p} for n={n}: {fallbacks:?}"));
            }
        }
    }
    let decoded = Ring::decode(&ring.encode()).map_err(|e| format!("decode: {e}"))?;
    if decoded != *ring {
        return Err("encode/decode does not round-trip".into());
    }
    Ok(())
}

/// Whether a repeat-free window of N is possible at all for this many nodes: with more nodes than
/// N, always; with exactly N, only if N divides Q (the ring must be a strict rotation); with fewer,
/// the window is S and S must divide Q.
pub fn distinct_windows_possible(q: u32, n: u32, s: usize) -> bool {
    let w = (n as usize).min(s);
    s > w || (q as usize).is_multiple_of(w)
}

/// What one change did, for tallies.
pub struct Change {
    pub moves: usize,
    pub limit: usize,
    pub even_share: f64,
}

/// Checks one change from `old` to `new`, where `joined` or `left` names the node.
pub fn check_change(
    old: &Ring,
    new: &Ring,
    joined: Option<&NodeId>,
    left: Option<&NodeId>,
) -> Result<Change, String> {
    let q = old.scheme().count();
    if new.epoch() != old.epoch() + 1 {
        return Err(format!("epoch {} after {}", new.epoch(), old.epoch()));
    }
    let moves = diff(old, new);
    let changed: Vec<PartitionId> = (0..q as usize)
        .map(|p| p as PartitionId)
        .filter(|&p| old.owner(p) != new.owner(p))
        .collect();
    if moves.iter().map(|m| m.partition).collect::<Vec<_>>() != changed {
        return Err("diff does not list exactly the partitions whose owner changed".into());
    }
    for m in &moves {
        if *old.owner(m.partition) != m.from || *new.owner(m.partition) != m.to {
            return Err(format!("move {m:?} does not match the rings"));
        }
        let ok = match (joined, left) {
            (Some(j), None) => m.to == *j,
            (None, Some(l)) => m.from == *l,
            _ => false,
        };
        if !ok {
            return Err(format!("move {m:?} is between two nodes that both stay"));
        }
    }
    let s = if joined.is_some() {
        new.node_count()
    } else {
        old.node_count()
    };
    let limit = move_limit(q, s);
    if moves.len() > limit {
        return Err(format!(
            "{} partitions moved, limit ceil(1.2·{q}/{s}) = {limit}",
            moves.len()
        ));
    }
    check_replica_changes(old, new)?;
    Ok(Change {
        moves: moves.len(),
        limit,
        even_share: f64::from(q) / s as f64,
    })
}

/// Replica changes must turn every old preference list into the new one, and appear only where
/// the walk of a preference list passes a moved partition.
pub fn check_replica_changes(old: &Ring, new: &Ring) -> Result<(), String> {
    let q = old.scheme().count() as usize;
    let moved: HashSet<usize> = diff(old, new)
        .iter()
        .map(|m| usize::from(m.partition))
        .collect();
    for n in 1..=old.target_n() as usize {
        let changes = replica_changes(old, new, n);
        let mut by_partition = changes.iter().peekable();
        for p in 0..q {
            let pid = p as PartitionId;
            let (before, after) = (old.preference_list(pid, n), new.preference_list(pid, n));
            let change = by_partition.next_if(|c| usize::from(c.partition) == p);
            let mut rebuilt: Vec<&NodeId> = before
                .iter()
                .filter(|b| change.is_none_or(|c| !c.removed.contains(b)))
                .collect();
            if let Some(c) = change {
                rebuilt.extend(c.added.iter());
                if c.removed.is_empty() && c.added.is_empty() {
                    return Err(format!("empty replica change for {p}"));
                }
                let reach = span(old, pid, n).max(span(new, pid, n));
                if !(0..reach).any(|d| moved.contains(&((p + d) % q))) {
                    return Err(format!("replica set of {p} changed with no move in reach"));
                }
            }
            let want: HashSet<&NodeId> = after.iter().collect();
            let got: HashSet<&NodeId> = rebuilt.iter().copied().collect();
            if want != got || rebuilt.len() != after.len() {
                return Err(format!(
                    "replica change of {p} (n={n}) does not turn {before:?} into {after:?}"
                ));
            }
        }
        if by_partition.next().is_some() {
            return Err("replica changes out of partition order".into());
        }
    }
    Ok(())
}

/// How many partitions the walk for `n` distinct nodes from `p` covers.
fn span(ring: &Ring, p: PartitionId, n: usize) -> usize {
    let q = ring.scheme().count() as usize;
    let owners: Vec<&NodeId> = ring.owners().collect();
    let mut seen = HashSet::new();
    for d in 0..q {
        seen.insert(owners[(usize::from(p) + d) % q]);
        if seen.len() == n.min(ring.node_count()) {
            return d + 1;
        }
    }
    q
}
