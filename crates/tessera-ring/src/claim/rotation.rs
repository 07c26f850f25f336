//! The strict rotation nearest a ring: for S nodes and windows of S (S ≤ N), where S divides Q.
//!
//! With as many nodes as the window, every window must hold every node, so partition `p` must be
//! owned by `σ(p mod S)` for some order `σ` of the nodes. The order that keeps the most owners is
//! a maximum-weight assignment of the S residues to the S nodes, weighted by how many partitions
//! of each residue each node owns today; the Hungarian algorithm finds it exactly.

#[cfg(test)]
use super::layout::UNASSIGNED;
use super::layout::{Layout, Node};

/// The changes that turn `layout` into the strict rotation that keeps the most owners of `base`
/// (the ring before the change; a partition that changes owner anyway, such as a leaving node's,
/// weighs nothing), or `None` if the layout has more nodes than its window or the window does not
/// divide Q.
pub(crate) fn nearest_rotation(layout: &Layout, base: &[Node]) -> Option<Vec<(usize, Node)>> {
    let (q, s) = (layout.len(), layout.nodes());
    if s != layout.window() || !q.is_multiple_of(s) {
        return None;
    }
    let mut kept = vec![0i64; s * s];
    for (p, &owner) in base.iter().enumerate() {
        if (owner as usize) < s {
            kept[(p % s) * s + owner as usize] += 1;
        }
    }
    let cost: Vec<i64> = kept.iter().map(|&k| -k).collect();
    let order = assign(&cost, s);
    Some(
        (0..q)
            .filter(|&p| layout.owner(p) != order[p % s])
            .map(|p| (p, order[p % s]))
            .collect(),
    )
}

/// A minimum-cost perfect assignment of `n` rows to `n` columns (`cost[row * n + column]`): the
/// column of each row. The O(n³) Hungarian algorithm with potentials; ties go the same way on
/// every run.
fn assign(cost: &[i64], n: usize) -> Vec<Node> {
    // 1-based, with row and column 0 as the algorithm's sentinels.
    let at = |i: usize, j: usize| cost[(i - 1) * n + (j - 1)];
    let mut u = vec![0i64; n + 1];
    let mut v = vec![0i64; n + 1];
    let mut row_of = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        row_of[0] = i;
        let mut j0 = 0;
        let mut min = vec![i64::MAX; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = row_of[j0];
            let mut delta = i64::MAX;
            let mut j1 = 0;
            for j in 1..=n {
                if used[j] {
                    continue;
                }
                let reduced = at(i0, j) - u[i0] - v[j];
                if reduced < min[j] {
                    min[j] = reduced;
                    way[j] = j0;
                }
                if min[j] < delta {
                    delta = min[j];
                    j1 = j;
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[row_of[j]] += delta;
                    v[j] -= delta;
                } else {
                    min[j] -= delta;
                }
            }
            j0 = j1;
            if row_of[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            row_of[j0] = row_of[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut column = vec![0 as Node; n];
    for j in 1..=n {
        column[row_of[j] - 1] = (j - 1) as Node;
    }
    column
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_is_optimal_on_small_matrices() {
        // Every 3×3 and 4×4 matrix of a small pseudo-random family, against brute force.
        let mut seed = 7u64;
        for n in [1usize, 2, 3, 4] {
            for _ in 0..200 {
                let cost: Vec<i64> = (0..n * n)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        ((seed >> 33) % 9) as i64 - 4
                    })
                    .collect();
                let got = assign(&cost, n);
                let total = |cols: &[Node]| -> i64 {
                    cols.iter()
                        .enumerate()
                        .map(|(i, &j)| cost[i * n + j as usize])
                        .sum()
                };
                let mut best = i64::MAX;
                let mut perm: Vec<Node> = (0..n as Node).collect();
                permutations(&mut perm, 0, &mut |p| best = best.min(total(p)));
                let mut seen = got.clone();
                seen.sort_unstable();
                assert_eq!(seen, (0..n as Node).collect::<Vec<_>>());
                assert_eq!(total(&got), best, "{cost:?}");
            }
        }
    }

    fn permutations(items: &mut Vec<Node>, k: usize, visit: &mut impl FnMut(&[Node])) {
        if k == items.len() {
            visit(items);
            return;
        }
        for i in k..items.len() {
            items.swap(k, i);
            permutations(items, k + 1, visit);
            items.swap(k, i);
        }
    }

    #[test]
    fn keeps_the_most_owners() {
        // Two nodes, windows of 2: 0 1 0 1 1 0 1 0 keeps four owners either way; 0 0 1 1 0 1 0 1
        // keeps six as 0 1 0 1 … (partitions 1 and 2 change).
        let owners = vec![0, 0, 1, 1, 0, 1, 0, 1];
        let layout = Layout::new(owners.clone(), 2, 2);
        assert_eq!(
            nearest_rotation(&layout, &owners),
            Some(vec![(1, 1), (2, 0)])
        );
        // Partitions that move anyway (here the first three, freed by a leave) weigh nothing: the
        // rotation follows the rest, 1 0 1 0 1.
        let base = vec![UNASSIGNED, UNASSIGNED, UNASSIGNED, 0, 1, 0, 1, 0];
        assert_eq!(
            nearest_rotation(&layout, &base),
            Some(vec![(0, 1), (1, 0), (3, 0), (4, 1), (5, 0), (6, 1), (7, 0)]).map(
                |c: Vec<(usize, Node)>| c.into_iter().filter(|&(p, n)| owners[p] != n).collect()
            )
        );
        // Three nodes cannot rotate over 8 partitions; nor can a layout with more nodes than its
        // window.
        let three = vec![0, 1, 2, 0, 1, 2, 0, 1];
        assert_eq!(
            nearest_rotation(&Layout::new(three.clone(), 3, 3), &three),
            None
        );
        assert_eq!(
            nearest_rotation(&Layout::new(three.clone(), 3, 2), &three),
            None
        );
    }
}
