//! Minimum-cost flow with lexicographic costs, for handing a leaving node's partitions out.
//!
//! Giving each freed partition to a node, when each (partition, node) pair has a price (repeats in
//! its window) and each node's k-th extra partition has a convex price (load band, squared load),
//! is a transportation problem; successive shortest paths solve it exactly. Costs are vectors
//! compared field by field, so "band first, then repeats, then evenness" needs no magic weights
//! that could overflow. Bellman-Ford (queue-based) tolerates the negative prices of filling a node
//! that is below the band.

/// A cost: compared field by field.
pub(crate) type Cost = [i64; 4];

const ZERO: Cost = [0; 4];

fn add(a: Cost, b: Cost) -> Cost {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]]
}

fn neg(a: Cost) -> Cost {
    [-a[0], -a[1], -a[2], -a[3]]
}

struct Edge {
    to: usize,
    cap: u32,
    cost: Cost,
}

/// A flow network; edges come in pairs (forward, residual backward).
pub(crate) struct Network {
    adjacent: Vec<Vec<usize>>,
    edges: Vec<Edge>,
}

impl Network {
    pub fn new(vertices: usize) -> Network {
        Network {
            adjacent: vec![Vec::new(); vertices],
            edges: Vec::new(),
        }
    }

    /// Adds an edge and returns its id, for [`Network::flow`].
    pub fn add_edge(&mut self, from: usize, to: usize, cap: u32, cost: Cost) -> usize {
        let id = self.edges.len();
        self.adjacent[from].push(id);
        self.edges.push(Edge { to, cap, cost });
        self.adjacent[to].push(id + 1);
        self.edges.push(Edge {
            to: from,
            cap: 0,
            cost: neg(cost),
        });
        id
    }

    /// The flow on edge `id` (what the residual edge has taken back).
    pub fn flow(&self, id: usize) -> u32 {
        self.edges[id + 1].cap
    }

    /// Sends up to `amount` units from `source` to `sink` along cheapest paths; returns how many
    /// were sent. The network must have no negative cycle to start with (ours are acyclic).
    pub fn send(&mut self, source: usize, sink: usize, amount: u32) -> u32 {
        let n = self.adjacent.len();
        let mut sent = 0;
        while sent < amount {
            let mut dist: Vec<Option<Cost>> = vec![None; n];
            let mut via = vec![usize::MAX; n];
            let mut queued = vec![false; n];
            let mut queue = std::collections::VecDeque::from([source]);
            dist[source] = Some(ZERO);
            queued[source] = true;
            while let Some(u) = queue.pop_front() {
                queued[u] = false;
                let Some(du) = dist[u] else { continue };
                for &id in &self.adjacent[u] {
                    let e = &self.edges[id];
                    if e.cap == 0 {
                        continue;
                    }
                    let candidate = add(du, e.cost);
                    if dist[e.to].is_none_or(|d| candidate < d) {
                        dist[e.to] = Some(candidate);
                        via[e.to] = id;
                        if !queued[e.to] {
                            queued[e.to] = true;
                            queue.push_back(e.to);
                        }
                    }
                }
            }
            if dist[sink].is_none() {
                break;
            }
            let mut v = sink;
            while v != source {
                let id = via[v];
                self.edges[id].cap -= 1;
                self.edges[id ^ 1].cap += 1;
                v = self.edges[id ^ 1].to;
            }
            sent += 1;
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_cheaper_assignment_overall() {
        // Two items, two bins of capacity one: item 0 is cheap anywhere, item 1 only in bin 0.
        let mut net = Network::new(6);
        let (s, t) = (0, 5);
        net.add_edge(s, 1, 1, ZERO);
        net.add_edge(s, 2, 1, ZERO);
        let a = net.add_edge(1, 3, 1, [0, 0, 0, 0]);
        let b = net.add_edge(1, 4, 1, [0, 0, 0, 1]);
        let c = net.add_edge(2, 3, 1, [0, 0, 0, 0]);
        let d = net.add_edge(2, 4, 1, [0, 1, 0, 0]);
        net.add_edge(3, t, 1, ZERO);
        net.add_edge(4, t, 1, ZERO);
        assert_eq!(net.send(s, t, 2), 2);
        assert_eq!(
            [net.flow(a), net.flow(b), net.flow(c), net.flow(d)],
            [0, 1, 1, 0]
        );
    }
}
