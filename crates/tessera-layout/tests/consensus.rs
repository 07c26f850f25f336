//! Safety of the layout consensus under any interleaving: proposers with different layouts,
//! messages lost, duplicated and reordered at random, acceptors restarted from their persisted
//! state. At most one layout is ever chosen for an epoch, and a proposer told "chosen" always
//! names that one.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use tessera_layout::{Acceptor, Ballot, Layout, LayoutMessage, Proposer, ProposerOutcome};
use tessera_ring::{PartitionScheme, Ring};

fn base() -> Layout {
    let ring = Ring::new(
        PartitionScheme::new(16).unwrap(),
        ["a", "b", "c", "d", "e"].map(String::from),
        3,
    )
    .unwrap();
    Layout::first(ring)
}

fn proposal(newcomer: &str) -> Layout {
    let base = base();
    base.moving_to(
        base.ring().with_node_added(newcomer.into()).unwrap(),
        BTreeSet::new(),
    )
    .unwrap()
}

#[derive(Clone, Debug)]
enum Op {
    /// Deliver the queued message at this index (modulo the queue).
    Deliver(usize),
    /// Deliver it and keep a copy in the queue (a duplicate).
    Duplicate(usize),
    /// Lose it.
    Drop(usize),
    /// A proposer starts again with a higher ballot.
    Retry(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<usize>().prop_map(Op::Deliver),
        1 => any::<usize>().prop_map(Op::Duplicate),
        2 => any::<usize>().prop_map(Op::Drop),
        1 => (0usize..3).prop_map(Op::Retry),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn at_most_one_layout_is_chosen(ops in prop::collection::vec(op(), 1..400)) {
        let names: BTreeSet<String> = ["a", "b", "c", "d", "e"].map(String::from).into();
        let mut acceptors: BTreeMap<String, Acceptor> =
            names.iter().map(|n| (n.clone(), Acceptor::new(1))).collect();
        let newcomers = ["x", "y", "z"];
        let mut proposers = Vec::new();
        // (from proposer index or None for an acceptor's answer, to node, message)
        let mut queue: Vec<(Option<usize>, String, LayoutMessage)> = Vec::new();
        for (i, newcomer) in newcomers.iter().enumerate() {
            let ballot = Ballot { round: 1, node: format!("p{i}") };
            let (proposer, sends) = Proposer::start(names.clone(), proposal(newcomer), ballot);
            proposers.push(proposer);
            queue.extend(sends.into_iter().map(|(to, m)| (Some(i), to, m)));
        }
        let mut rounds = [1u64; 3];
        let mut chosen: Option<Layout> = None;
        for op in ops {
            if let Op::Retry(i) = op {
                rounds[i] += 1;
                let ballot = Ballot { round: rounds[i], node: format!("p{i}") };
                let (proposer, sends) =
                    Proposer::start(names.clone(), proposal(newcomers[i]), ballot);
                proposers[i] = proposer;
                queue.extend(sends.into_iter().map(|(to, m)| (Some(i), to, m)));
                continue;
            }
            if queue.is_empty() {
                continue;
            }
            let (index, keep) = match op {
                Op::Deliver(i) => (i % queue.len(), false),
                Op::Duplicate(i) => (i % queue.len(), true),
                Op::Drop(i) => { queue.remove(i % queue.len()); continue; }
                Op::Retry(_) => unreachable!(),
            };
            let (proposer, to, message) = if keep {
                queue[index].clone()
            } else {
                queue.remove(index)
            };
            match proposer {
                // To an acceptor; its answer goes back to that proposer. An acceptor "restarts"
                // from what it persisted, which is exactly its state here.
                Some(i) => {
                    if let Some(answer) = acceptors.get_mut(&to).and_then(|a| a.handle(&message)) {
                        queue.push((None, format!("{i}:{to}"), answer));
                    }
                }
                // An answer: `to` is "proposer:acceptor".
                None => {
                    let (i, from) = to.split_once(':').unwrap();
                    let i: usize = i.parse().unwrap();
                    match proposers[i].handle(&from.to_owned(), &message) {
                        ProposerOutcome::Send(sends) => {
                            queue.extend(sends.into_iter().map(|(to, m)| (Some(i), to, m)));
                        }
                        ProposerOutcome::Chosen { layout, ours } => {
                            prop_assert_eq!(ours, layout == proposal(newcomers[i]));
                            match &chosen {
                                Some(earlier) => prop_assert_eq!(earlier, &layout, "two layouts chosen"),
                                None => chosen = Some(layout),
                            }
                        }
                        ProposerOutcome::Pending | ProposerOutcome::Failed { .. } => {}
                    }
                }
            }
        }
    }
}

#[test]
fn with_no_loss_some_layout_is_chosen() {
    let names: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
    let mut acceptors: BTreeMap<String, Acceptor> = names
        .iter()
        .map(|n| (n.clone(), Acceptor::new(1)))
        .collect();
    let (mut proposer, mut queue) = Proposer::start(
        names,
        proposal("x"),
        Ballot {
            round: 1,
            node: "p".into(),
        },
    );
    while let Some((to, message)) = queue.pop() {
        let answer = acceptors.get_mut(&to).unwrap().handle(&message).unwrap();
        match proposer.handle(&to, &answer) {
            ProposerOutcome::Send(more) => queue.extend(more),
            ProposerOutcome::Chosen { ours, .. } => {
                assert!(ours);
                return;
            }
            ProposerOutcome::Pending => {}
            other => panic!("{other:?}"),
        }
    }
    panic!("nothing chosen");
}
