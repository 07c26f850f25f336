//! Checks shared by the ring tests: each returns a description of what is wrong, so that property
//! tests can report it and the worst-case sweep can tally it.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use tessera_ring::{diff, move_counts, replica_changes, NodeId, PartitionId, Ring};

pub fn names(prefix: &str, count: usize) -> Vec<NodeId> {
    (0..count).map(|i| format!("{prefix}{i:03}")).collect()
}

/// Each node's partition count, in node order.
pub fn loads(ring: &Ring) -> Vec<usize> {
    let mut loads = vec![0; ring.node_count()];
    for i in owner_indices(ring) {
        loads[i] += 1;
    }
    loads
}

/// The owner of each partition as an index into the ring's nodes.
pub fn owner_indices(ring: &Ring) -> Vec<usize> {
    let index: HashMap<&NodeId, usize> = ring.nodes().enumerate().map(|(i, n)| (n, i)).collect();
    ring.owners().map(|o| index[o]).collect()
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
    let owners = owner_indices(ring);
    let q = owners.len();
    let w = (ring.target_n() as usize).min(ring.node_count()).min(q);
    (0..q)
        .filter(|&p| {
            let window: Vec<usize> = (0..w).map(|d| owners[(p + d) % q]).collect();
            (1..w).any(|i| window[..i].contains(&window[i]))
        })
        .count()
}

/// Everything that must hold of any valid ring: invariants, preference lists and fallbacks, and
/// the encoding.
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

/// What claim promises of every ring it makes, whatever its history, on top of [`check_ring`]:
/// every load in the band (at any density), and no repeated window wherever claim guarantees
/// distinct windows.
pub fn check_claimed(ring: &Ring) -> Result<(), String> {
    check_ring(ring)?;
    let q = ring.scheme().count();
    let s = ring.node_count();
    let l = loads(ring);
    let guaranteed = distinct_windows_guaranteed(q, ring.target_n(), s);
    if ring.distinct_windows_guaranteed() != guaranteed {
        return Err(format!(
            "distinct_windows_guaranteed is {}, the independent formula says {guaranteed}",
            ring.distinct_windows_guaranteed()
        ));
    }
    if guaranteed && !ring.target_n_violations().is_empty() {
        return Err(format!(
            "windows must be distinct, but {} repeat a node",
            ring.target_n_violations().len()
        ));
    }
    let (lo, hi) = band(q, s);
    if !l.iter().all(|&x| lo <= x && x <= hi) {
        return Err(format!("loads {l:?} outside [{lo}, {hi}]"));
    }
    Ok(())
}

/// Whether a ring of S nodes over Q partitions can have every `min(N, S)` consecutive partitions
/// owned by distinct nodes, computed independently of the crate: with exactly as many nodes as
/// the window w, only a strict rotation will do, so w must divide Q; with more, it is the
/// chromatic number of the (w−1)-th power of a cycle of Q (Prowse and Woodall): writing
/// Q = q·w + r with 0 ≤ r < w, S ≥ w + ⌈r/q⌉.
pub fn distinct_windows_possible(q: u32, n: u32, s: usize) -> bool {
    let q = q as usize;
    let w = (n as usize).min(s).min(q);
    if s == w {
        return q.is_multiple_of(w);
    }
    let (rounds, rest) = (q / w, q % w);
    rounds >= 1 && s >= w + rest.div_ceil(rounds)
}

/// Whether claim must keep every window distinct (the crate's promise): at least N nodes, and a
/// ring without repeats exists.
pub fn distinct_windows_guaranteed(q: u32, n: u32, s: usize) -> bool {
    s >= n as usize && distinct_windows_possible(q, n, s)
}

/// What one change moved.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    /// Partitions whose owner changed.
    pub moves: usize,
    /// Of those, partitions that moved between two nodes in both rings.
    pub extra: usize,
    /// Q/S, with S the larger of the node counts before and after.
    pub even_share: f64,
    /// Nodes added or removed.
    pub changed_nodes: usize,
}

/// Checks one change from `old` to `new`: epochs, that [`diff`] and [`move_counts`] agree with
/// the rings, that every node that left gave up all its partitions and every node that joined
/// got only moved partitions, that the moves to and from the changed nodes are at most
/// `ceil(1.2·Q/S)` per changed node once Q/S ≥ 8, and that replica changes match. Moves between
/// nodes that stay are counted, not limited.
pub fn check_change(old: &Ring, new: &Ring) -> Result<Change, String> {
    let change = check_moves(old, new)?;
    check_replica_changes(old, new)?;
    Ok(change)
}

/// [`check_change`] without the replica changes, which cost a preference list per partition and
/// replica count.
pub fn check_moves(old: &Ring, new: &Ring) -> Result<Change, String> {
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
    let mut extra = 0;
    for m in &moves {
        if *old.owner(m.partition) != m.from || *new.owner(m.partition) != m.to {
            return Err(format!("move {m:?} does not match the rings"));
        }
        if new.contains(&m.from) && old.contains(&m.to) {
            extra += 1;
        }
    }
    let counts = move_counts(old, new);
    if (
        counts.total,
        counts.between_staying_nodes,
        counts.to_or_from_changed_nodes,
    ) != (moves.len(), extra, moves.len() - extra)
    {
        return Err(format!("move_counts {counts:?} disagrees with the diff"));
    }
    let left: Vec<&NodeId> = old.nodes().filter(|n| !new.contains(n)).collect();
    let joined: Vec<&NodeId> = new.nodes().filter(|n| !old.contains(n)).collect();
    for node in &left {
        let gave = moves.iter().filter(|m| m.from == **node).count();
        if gave != old.partitions_of(node).len() {
            return Err(format!("{node} left but gave up only {gave} partitions"));
        }
    }
    let s = old.node_count().max(new.node_count());
    let even_share = f64::from(q) / s as f64;
    // A newcomer's share is Q over the nodes after the change (fewer than before, when a batch
    // removes more nodes than it adds).
    let s_after = new.node_count();
    let limit = move_limit(q, s_after);
    if dense(q, s_after) {
        for node in &joined {
            let took = new.partitions_of(node).len();
            if took > limit {
                return Err(format!(
                    "{node} joined and took {took} partitions, limit ceil(1.2·{q}/{s_after}) = \
                     {limit}"
                ));
            }
        }
    }
    Ok(Change {
        moves: moves.len(),
        extra,
        even_share,
        changed_nodes: left.len() + joined.len(),
    })
}

/// Replica changes must turn every old preference list into the new one, and appear only where
/// the walk of a preference list passes a moved partition (for n = 1, ⌈N/2⌉ and N).
pub fn check_replica_changes(old: &Ring, new: &Ring) -> Result<(), String> {
    let q = old.scheme().count() as usize;
    let moved: HashSet<usize> = diff(old, new)
        .iter()
        .map(|m| usize::from(m.partition))
        .collect();
    let (old_owners, new_owners) = (owner_indices(old), owner_indices(new));
    // One, N, and one between: each n walks every partition twice, and the rest add little.
    let top = old.target_n() as usize;
    let mut counts = vec![1, top.div_ceil(2), top];
    counts.dedup();
    for n in counts {
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
                let reach = span(&old_owners, old.node_count(), p, n).max(span(
                    &new_owners,
                    new.node_count(),
                    p,
                    n,
                ));
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

/// How many partitions the walk for `n` distinct nodes from `p` covers, over owner indices.
fn span(owners: &[usize], nodes: usize, p: usize, n: usize) -> usize {
    let q = owners.len();
    let mut seen = vec![false; nodes];
    let mut distinct = 0;
    for d in 0..q {
        let o = owners[(p + d) % q];
        if !std::mem::replace(&mut seen[o], true) {
            distinct += 1;
        }
        if distinct == n.min(nodes) {
            return d + 1;
        }
    }
    q
}
