//! Partition shapes: which links between nodes a partition cuts (a "grudge", in Jepsen's
//! words). Pure: nodes are indices `0..n`, and the caller supplies the random order, so the
//! shapes are tested exhaustively here and the schedule stays replayable from its seed.
//!
//! Every shape cuts links in both directions (the firewall drops each pair both ways).

use std::collections::BTreeSet;

/// A partition: the unordered pairs `(a, b)` with `a < b` that cannot talk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub cut: BTreeSet<(usize, usize)>,
    /// For people, with node names: `n3 | n1 n2 n4 n5`.
    pub description: String,
}

fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

fn names(nodes: &[usize]) -> String {
    let mut sorted = nodes.to_vec();
    sorted.sort_unstable();
    sorted
        .iter()
        .map(|i| format!("n{}", i + 1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cuts every link between two groups.
fn split(a: &[usize], b: &[usize]) -> BTreeSet<(usize, usize)> {
    a.iter()
        .flat_map(|&x| b.iter().map(move |&y| pair(x, y)))
        .collect()
}

/// One node cut off from every other.
pub fn isolate(n: usize, victim: usize) -> Partition {
    let others: Vec<usize> = (0..n).filter(|&i| i != victim).collect();
    Partition {
        cut: split(&[victim], &others),
        description: format!("{} | {}", names(&[victim]), names(&others)),
    }
}

/// The first ⌊n/2⌋ nodes of `order` (a minority) cut off from the rest (a majority).
pub fn majority_minority(order: &[usize]) -> Partition {
    let (minority, majority) = order.split_at(order.len() / 2);
    Partition {
        cut: split(minority, majority),
        description: format!("{} | {}", names(minority), names(majority)),
    }
}

/// Random halves: `order` cut in two at its middle (rounded up).
pub fn halves(order: &[usize]) -> Partition {
    let (a, b) = order.split_at(order.len().div_ceil(2));
    Partition {
        cut: split(a, b),
        description: format!("{} | {}", names(a), names(b)),
    }
}

/// Nodes on a ring in `order`; each keeps only the links to the nodes within distance `d` on
/// either side, with `d` the least that lets it see a majority (itself included). Every node
/// sees a majority, and no two see the same one. Needs 4 nodes or more: with 3, every node's
/// majority is the whole cluster and nothing is cut.
pub fn majorities_ring(order: &[usize]) -> Partition {
    let n = order.len();
    let majority = n / 2 + 1;
    // 2d + 1 >= majority.
    let d = (majority - 1).div_ceil(2).max(1);
    let mut cut = BTreeSet::new();
    for i in 0..n {
        for j in (i + 1)..n {
            let distance = (j - i).min(n - (j - i));
            if distance > d {
                cut.insert(pair(order[i], order[j]));
            }
        }
    }
    let ring: Vec<String> = order.iter().map(|i| format!("n{}", i + 1)).collect();
    Partition {
        cut,
        description: format!(
            "ring {}: each node sees the {d} on either side",
            ring.join("-")
        ),
    }
}

/// Two halves that cannot talk, joined by one node (`order[0]`) that talks to both.
pub fn bridge(order: &[usize]) -> Partition {
    let (bridge, rest) = order.split_at(1);
    let (a, b) = rest.split_at(rest.len() / 2);
    Partition {
        cut: split(a, b),
        description: format!("{} | {} (bridge) | {}", names(a), names(bridge), names(b)),
    }
}

/// The nodes `node` can still talk to under `partition` (itself included).
pub fn view(partition: &Partition, n: usize, node: usize) -> BTreeSet<usize> {
    (0..n)
        .filter(|&other| other == node || !partition.cut.contains(&pair(node, other)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rotation and reflection of the identity, and a few shuffles, for n = 3..=7.
    fn orders(n: usize) -> Vec<Vec<usize>> {
        let base: Vec<usize> = (0..n).collect();
        let mut out = Vec::new();
        for r in 0..n {
            let mut o = base.clone();
            o.rotate_left(r);
            out.push(o.clone());
            o.reverse();
            out.push(o);
        }
        out.push(vec![2, 0, 1].into_iter().chain(3..n).collect());
        out
    }

    #[test]
    fn isolate_cuts_one_node_from_all_others() {
        for n in 3..=7 {
            for victim in 0..n {
                let p = isolate(n, victim);
                assert_eq!(view(&p, n, victim), [victim].into());
                for other in (0..n).filter(|&o| o != victim) {
                    assert_eq!(view(&p, n, other).len(), n - 1);
                }
            }
        }
        assert_eq!(isolate(5, 2).description, "n3 | n1 n2 n4 n5");
    }

    #[test]
    fn majority_minority_leaves_one_side_with_a_majority() {
        for n in 3..=7 {
            for order in orders(n) {
                let p = majority_minority(&order);
                let sizes: BTreeSet<usize> = (0..n).map(|i| view(&p, n, i).len()).collect();
                assert_eq!(sizes, [n / 2, n - n / 2].into(), "n={n}");
            }
        }
    }

    #[test]
    fn majorities_ring_gives_every_node_a_different_majority() {
        for n in 4..=7 {
            for order in orders(n) {
                let p = majorities_ring(&order);
                let views: Vec<BTreeSet<usize>> = (0..n).map(|i| view(&p, n, i)).collect();
                for v in &views {
                    assert!(v.len() > n / 2, "n={n}: {v:?} is not a majority");
                    assert!(v.len() < n, "n={n}: a node sees everyone");
                }
                let distinct: BTreeSet<&BTreeSet<usize>> = views.iter().collect();
                assert_eq!(distinct.len(), n, "n={n}: two nodes see the same majority");
            }
        }
    }

    #[test]
    fn bridge_talks_to_both_halves_that_cannot_talk() {
        for n in 3..=7 {
            for order in orders(n) {
                let p = bridge(&order);
                assert_eq!(view(&p, n, order[0]).len(), n, "the bridge sees all");
                let rest = &order[1..];
                let (a, b) = rest.split_at(rest.len() / 2);
                for &x in a {
                    for &y in b {
                        assert!(!view(&p, n, x).contains(&y));
                    }
                }
            }
        }
    }

    #[test]
    fn halves_cut_the_cluster_in_two() {
        for n in 3..=7 {
            for order in orders(n) {
                let p = halves(&order);
                assert_eq!(p.cut.len(), n.div_ceil(2) * (n / 2));
            }
        }
    }
}
