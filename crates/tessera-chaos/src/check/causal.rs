//! The causal graph of a key's values, built from the history alone.
//!
//! Every register write and every batch carries the context of a read, and the history records
//! which values that read saw (`parents`). Tessera's contexts supersede exactly what the read
//! saw and what that superseded, so "v was superseded by x" is "v is an ancestor of x" in this
//! graph. Values are unique per run, so a value names its write.
//!
//! A delete is a node of the graph too, but no read can name it (a tombstone carries no value):
//! a write after a delete lists no parent for it, so paths through a delete are cut. The checks
//! that need such a path say so and skip the values concerned.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use crate::history::{Op, OpKind, Outcome};

/// A node of the graph: a written value, or a delete (by op id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    Value(String),
    Delete(u64),
}

/// The writes of one key and who read whom.
#[derive(Debug, Default)]
pub struct CausalGraph {
    parents: HashMap<Node, Vec<String>>,
    children: HashMap<String, Vec<Node>>,
}

impl CausalGraph {
    /// Builds the graph of `ops` (the writes, deletes and batches of one key). Writes that
    /// certainly failed are left out: they superseded nothing.
    pub fn new<'a>(ops: impl IntoIterator<Item = &'a Op>) -> Self {
        let mut graph = CausalGraph::default();
        for op in ops {
            if op.outcome == Outcome::Fail {
                continue;
            }
            let node = match (op.f, &op.value) {
                (OpKind::Delete, _) => Node::Delete(op.id),
                (OpKind::Write | OpKind::Batch | OpKind::Add, Some(value)) => {
                    Node::Value(value.clone())
                }
                _ => continue,
            };
            for parent in &op.parents {
                graph
                    .children
                    .entry(parent.clone())
                    .or_default()
                    .push(node.clone());
            }
            graph.parents.insert(node, op.parents.clone());
        }
        graph
    }

    /// Every value `node` superseded, directly or not.
    pub fn ancestors(&self, node: &Node) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut queue: VecDeque<&String> = self
            .parents
            .get(node)
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        while let Some(value) = queue.pop_front() {
            if seen.insert(value.clone()) {
                if let Some(parents) = self.parents.get(&Node::Value(value.clone())) {
                    queue.extend(parents.iter());
                }
            }
        }
        seen
    }

    /// Every node that superseded `value`, directly or not (through known edges only).
    pub fn descendants(&self, value: &str) -> HashSet<Node> {
        let mut seen = HashSet::new();
        let mut queue: VecDeque<Node> = self
            .children
            .get(value)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default();
        while let Some(node) = queue.pop_front() {
            if !seen.insert(node.clone()) {
                continue;
            }
            if let Node::Value(v) = &node {
                if let Some(children) = self.children.get(v) {
                    queue.extend(children.iter().cloned());
                }
            }
        }
        seen
    }

    /// Whether `value` was superseded through a delete: then what replaced it cannot be named,
    /// and checks that need a named successor skip it.
    pub fn deleted_downstream(&self, value: &str) -> bool {
        self.descendants(value)
            .iter()
            .any(|n| matches!(n, Node::Delete(_)))
    }

    /// Pairs (older, newer) in `values` where one supersedes the other: such a pair must never
    /// be siblings.
    pub fn related_pairs(&self, values: &[String]) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for newer in values {
            let ancestors = self.ancestors(&Node::Value(newer.clone()));
            for older in values {
                if older != newer && ancestors.contains(older) {
                    pairs.push((older.clone(), newer.clone()));
                }
            }
        }
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Workload;

    fn write(id: u64, value: &str, parents: &[&str], outcome: Outcome) -> Op {
        Op {
            id,
            client: 1,
            node: "n1".into(),
            workload: Workload::Register,
            f: OpKind::Write,
            key: "k".into(),
            start_us: id * 10,
            end_us: id * 10 + 5,
            outcome,
            status: None,
            error: None,
            value: Some(value.into()),
            parents: parents.iter().map(|p| p.to_string()).collect(),
            observed: None,
            hinted: None,
        }
    }

    #[test]
    fn ancestry_is_transitive_and_failed_writes_supersede_nothing() {
        let ops = vec![
            write(1, "a", &[], Outcome::Ok),
            write(2, "b", &["a"], Outcome::Ok),
            write(3, "c", &["b"], Outcome::Info),
            write(4, "d", &["a"], Outcome::Fail),
        ];
        let graph = CausalGraph::new(&ops);
        let c = graph.ancestors(&Node::Value("c".into()));
        assert_eq!(c, ["a", "b"].iter().map(|s| s.to_string()).collect());
        let below_a = graph.descendants("a");
        assert!(below_a.contains(&Node::Value("c".into())));
        assert!(!below_a.contains(&Node::Value("d".into())));
        assert_eq!(
            graph.related_pairs(&["a".into(), "c".into(), "x".into()]),
            vec![("a".to_string(), "c".to_string())]
        );
    }
}
