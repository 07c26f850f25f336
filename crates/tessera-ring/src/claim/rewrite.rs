//! Rewriting a stretch of the ring: the fewest owner changes that make every window in it
//! distinct, by dynamic programming over the last `w − 1` owners.
//!
//! Ejection chains (`settle.rs`) move one partition per node, which is enough wherever a freed or
//! repeated partition has some node outside its window. With few nodes for the window (S up to
//! about 2N), every partition's window may already hold every other node, and a repeat can only
//! end by shifting the owners of a whole stretch. This module finds that shift: the owners of
//! `len` consecutive partitions, with the `w − 1` partitions on each side kept, such that every
//! window distinct and as few owners change as possible (ties to giving partitions to the least
//! loaded nodes and taking them from the most loaded). Loads may change by a few partitions; the
//! caller puts them back into band with chains.

use super::layout::{Layout, Node};

/// Largest DP table (states × positions) a rewrite may use. States are the last `w − 1` owners
/// over an alphabet of A nodes, so `A^(w−1)`; with N = 5 and 8 nodes that is 4096 states, and a
/// whole ring of 1024 partitions fits.
const MAX_CELLS: usize = 1 << 22;

/// The price of one owner left different from the ring before the change. With evenness weight 1
/// (the tie-break), it outweighs the load differences of any stretch the table size allows.
pub(crate) const CHANGE: i64 = 1 << 30;

/// Load differences are clipped to this in prices, so that no sum overflows.
const MAX_LOAD_DIFFERENCE: i64 = 1 << 10;

/// What a rewrite pays besides changed owners.
#[derive(Debug, Clone)]
pub(crate) struct Prices {
    /// Per partition of load difference between a changed partition's new owner and its current
    /// one: 1 only breaks ties, larger trades changes for evenness.
    pub evenness: i64,
    /// Per partition owned in the stretch, by node: raised for nodes the last rewrite left above
    /// the band and lowered for nodes left below it (Lagrangian prices for the load limits that
    /// the table cannot track).
    pub node: Vec<i64>,
}

impl Prices {
    /// Ties broken towards evenness, no node priced.
    pub fn fewest_changes(nodes: usize) -> Prices {
        Prices {
            evenness: 1,
            node: vec![0; nodes],
        }
    }
}

const INFINITE: i64 = i64::MAX;

/// New owners for the `len` partitions from `start` (clockwise, wrapping), keeping the `w − 1`
/// partitions before and after them, such that no window touching the stretch repeats a node:
/// the changes `(partition, node)` that leave the fewest owners different from `base` (the ring
/// before the change, so that a partition the change moved anyway may move again for free),
/// priced by `prices`. `None` if no such owners exist over the nodes
/// the stretch may use, or the table would be too large. With `len + w − 1 == Q` the kept
/// partitions before and after are the same ones, which rewrites the whole ring around them.
pub(crate) fn rewrite(
    layout: &Layout,
    base: &[Node],
    start: usize,
    len: usize,
    prices: &Prices,
) -> Option<Vec<(usize, Node)>> {
    let q = layout.len();
    let keep = layout.window() - 1;
    if keep == 0 || len == 0 || len + keep > q {
        return None;
    }
    let before: Vec<Node> = (0..keep)
        .map(|d| layout.owner(layout.step(start, d as isize - keep as isize)))
        .collect();
    let after: Vec<Node> = (0..keep)
        .map(|d| layout.owner((start + len + d) % q))
        .collect();
    let alphabet = alphabet(layout, start, len, &before, &after);
    let a = alphabet.len();
    let states = a.checked_pow(keep as u32)?;
    if states.checked_mul(len)? > MAX_CELLS || a > usize::from(u8::MAX) {
        return None;
    }
    let letter = |node: Node| alphabet.iter().position(|&x| x == node);
    // A state is the last `keep` owners as letters, the most recent in the lowest digit; the
    // oldest digit has weight `top`.
    let top = a.pow(keep as u32 - 1);
    let digit = |state: usize, back: usize| (state / a.pow(back as u32)) % a;
    // The letters each state holds, as a bit set of `words` words per state, so the inner loop
    // neither divides nor searches.
    let words = a.div_ceil(64);
    let mut holds = vec![0u64; states * words];
    for state in 0..states {
        let mut rest = state;
        for _ in 0..keep {
            let l = rest % a;
            holds[state * words + l / 64] |= 1 << (l % 64);
            rest /= a;
        }
    }
    let mut initial = 0;
    for &node in &before {
        initial = initial * a + letter(node)?;
    }
    let mut cost = vec![INFINITE; states];
    let mut next = vec![INFINITE; states];
    cost[initial] = 0;
    // The states reached so far, in the order they were first reached (which fixes how ties go).
    let mut frontier = vec![initial];
    let mut reached = Vec::new();
    // The letter placed at position i is the lowest digit of the state it reaches; to walk back,
    // keep the oldest digit that fell out.
    let mut dropped = vec![0u8; len * states];
    let mut price = vec![0i64; a];
    for i in 0..len {
        let p = (start + i) % q;
        let (current, was) = (layout.owner(p), base[p]);
        for (l, &node) in alphabet.iter().enumerate() {
            price[l] = i64::from(node != was) * CHANGE + prices.node[node as usize];
            if node != current {
                let heavier = i64::from(layout.load(node)) - i64::from(layout.load(current));
                price[l] +=
                    prices.evenness * heavier.clamp(-MAX_LOAD_DIFFERENCE, MAX_LOAD_DIFFERENCE);
            }
        }
        reached.clear();
        for &s in &frontier {
            let c = cost[s];
            let recent = &holds[s * words..(s + 1) * words];
            for (l, &step) in price.iter().enumerate() {
                if recent[l / 64] >> (l % 64) & 1 == 1 {
                    continue;
                }
                let t = (s % top) * a + l;
                if next[t] == INFINITE {
                    reached.push(t);
                }
                if c + step < next[t] {
                    next[t] = c + step;
                    dropped[i * states + t] = (s / top) as u8;
                }
            }
        }
        for &s in &frontier {
            cost[s] = INFINITE;
        }
        std::mem::swap(&mut cost, &mut next);
        std::mem::swap(&mut frontier, &mut reached);
    }
    // The stretch must also fit the kept partitions after it.
    let mut best: Option<(i64, usize)> = None;
    for (s, &c) in cost.iter().enumerate() {
        if c == INFINITE || best.is_some_and(|(b, _)| b <= c) {
            continue;
        }
        let mut tail: Vec<Node> = (0..keep)
            .rev()
            .map(|back| alphabet[digit(s, back)])
            .collect();
        tail.extend(&after);
        let fits = (0..keep).all(|i| {
            let window = &tail[i..=i + keep];
            (1..window.len()).all(|j| !window[..j].contains(&window[j]))
        });
        if fits {
            best = Some((c, s));
        }
    }
    let (_, mut s) = best?;
    let mut changes = Vec::new();
    for i in (0..len).rev() {
        let node = alphabet[s % a];
        let p = (start + i) % q;
        if node != layout.owner(p) {
            changes.push((p, node));
        }
        s = usize::from(dropped[i * states + s]) * top + s / a;
    }
    changes.reverse();
    Some(changes)
}

/// The nodes a rewrite may use: every node that owns a partition of the stretch or of the kept
/// partitions around it (any other node owns nothing within a window of the stretch, so it could
/// go anywhere in it), plus the two least loaded of the others, in index order.
fn alphabet(
    layout: &Layout,
    start: usize,
    len: usize,
    before: &[Node],
    after: &[Node],
) -> Vec<Node> {
    let q = layout.len();
    let mut present = vec![false; layout.nodes()];
    for i in 0..len {
        present[layout.owner((start + i) % q) as usize] = true;
    }
    for &node in before.iter().chain(after) {
        present[node as usize] = true;
    }
    let mut others: Vec<Node> = (0..layout.nodes() as Node)
        .filter(|&n| !present[n as usize])
        .collect();
    others.sort_by_key(|&n| (layout.load(n), n));
    for &n in others.iter().take(2) {
        present[n as usize] = true;
    }
    (0..layout.nodes() as Node)
        .filter(|&n| present[n as usize])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies `changes` to a copy of `layout`.
    fn applied(layout: &Layout, changes: &[(usize, Node)]) -> Layout {
        let mut out = layout.clone();
        for &(p, node) in changes {
            out.set(p, node);
        }
        out
    }

    #[test]
    fn a_hole_in_a_rotation_is_closed_by_shifting_a_stretch() {
        // Five nodes with windows of 3, node 4 gone: 0 1 2 3 _ 0 1 2 3 _ … Any owner for a hole
        // repeats a neighbour, so a stretch around it must shift.
        let mut owners: Vec<Node> = (0..20).map(|p| (p % 5) as Node).collect();
        owners[4] = 0; // the hole, filled with a repeat
        let layout = Layout::new(owners, 5, 3);
        assert!(layout.conflicts() > 0);
        let changes = rewrite(
            &layout,
            layout.owners(),
            1,
            8,
            &Prices::fewest_changes(layout.nodes()),
        )
        .expect("a stretch of 8 can be rewritten");
        let fixed = applied(&layout, &changes);
        assert_eq!(fixed.conflicts(), 0, "{:?}", fixed.owners());
        assert!(changes.len() <= 4, "{changes:?}");
    }

    #[test]
    fn the_kept_partitions_bound_the_stretch() {
        // Windows of 2 over 2 nodes: 0 1 0 [0 0] 1 0 1. Between 0 and 1 a stretch of 2 takes
        // 1 then 0; between 1 and 0 a stretch of 1 (partition 2) has no owner at all.
        let owners: Vec<Node> = vec![0, 1, 0, 0, 0, 1, 0, 1];
        let layout = Layout::new(owners, 2, 2);
        assert_eq!(
            rewrite(
                &layout,
                layout.owners(),
                3,
                2,
                &Prices::fewest_changes(layout.nodes())
            ),
            Some(vec![(3, 1)])
        );
        assert_eq!(
            rewrite(
                &layout,
                layout.owners(),
                3,
                1,
                &Prices::fewest_changes(layout.nodes())
            ),
            Some(vec![(3, 1)])
        );
        assert_eq!(
            rewrite(
                &layout,
                layout.owners(),
                2,
                1,
                &Prices::fewest_changes(layout.nodes())
            ),
            None
        );
    }

    #[test]
    fn the_whole_ring_around_the_kept_partitions() {
        // 0 0 1 1 0 0 1 1 with windows of 2: keep partition 7 (1), rewrite the other seven.
        let owners: Vec<Node> = vec![0, 0, 1, 1, 0, 0, 1, 1];
        let layout = Layout::new(owners, 2, 2);
        let changes = rewrite(
            &layout,
            layout.owners(),
            0,
            7,
            &Prices::fewest_changes(layout.nodes()),
        )
        .unwrap();
        let fixed = applied(&layout, &changes);
        assert_eq!(fixed.conflicts(), 0);
        assert_eq!(changes.len(), 4);
    }
}
