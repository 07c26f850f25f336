//! The exchange machines against bad input: foreign versions and shapes, misrouted, malformed,
//! out-of-order, duplicated and stale messages, a caller that misuses the scan interface, and
//! arbitrary message sequences. Every one is an error or is ignored, never a panic.

use proptest::prelude::*;
use tessera_merkle::{
    Action, Body, CellDigest, CellId, Digest, ExchangeConfig, ExchangeId, ExchangeState, Initiator,
    MerkleError, MerkleTree, Message, Responder, ScanRequest, TreeShape, MERKLE_FORMAT_VERSION,
};

const TABLE: u32 = 7;

fn shape() -> TreeShape {
    TreeShape::new(4, 4, 8).unwrap()
}

fn exchange(session: u64) -> ExchangeId {
    ExchangeId {
        table: TABLE,
        partition: 1,
        session,
    }
}

fn config() -> ExchangeConfig {
    ExchangeConfig {
        max_segments_per_request: 4,
        max_cells_per_page: 4,
        max_retries: 2,
        ..ExchangeConfig::default()
    }
}

fn d(byte: u8) -> Digest {
    Digest::from_bytes([byte; 16])
}

fn empty_tree() -> MerkleTree {
    MerkleTree::new(shape(), 1).unwrap()
}

/// A cell of segment `segment` of partition 1.
fn cell(segment: u32, n: u8) -> CellDigest {
    let token = shape().segment_range(1, segment).unwrap().0 + u64::from(n);
    CellDigest::of_cell(token, vec![b'k', n], *b"c", &[n])
}

fn sent(actions: &[Action]) -> Vec<Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn failure(actions: &[Action]) -> Option<MerkleError> {
    actions.iter().find_map(|a| match a {
        Action::Failed(e) => Some(e.clone()),
        _ => None,
    })
}

fn scans(actions: &[Action]) -> Vec<ScanRequest> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Scan(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

/// The peer's answer to `request`.
fn answer(request: &Message, body: Body) -> Message {
    Message {
        shape: shape(),
        exchange: request.exchange,
        seq: request.seq,
        body,
    }
}

/// Asserts that `actions` fail the exchange with an error matching `expected`, telling the peer.
fn assert_fails(actions: &[Action], expected: impl Fn(&MerkleError) -> bool) {
    let error = failure(actions).expect("the exchange should fail");
    assert!(expected(&error), "unexpected error: {error}");
    let aborts = sent(actions);
    assert_eq!(aborts.len(), 1, "{actions:?}");
    assert!(matches!(aborts[0].body, Body::Abort { .. }));
}

/// An initiator with an empty tree, led to its first page: the peer's branch 0 and its segment 2
/// differ. Returns the initiator, its `CellsRequest` and its scan request.
fn initiator_at_first_page() -> (Initiator, Message, ScanRequest) {
    let (mut initiator, actions) = Initiator::start(exchange(1), empty_tree(), config()).unwrap();
    let root = sent(&actions).remove(0);
    let mut branches = vec![Digest::ZERO; 4];
    branches[0] = d(1);
    let actions = initiator.on_message(&answer(&root, Body::Branches { digests: branches }));
    let leaves_request = sent(&actions).remove(0);
    assert_eq!(
        leaves_request.body,
        Body::LeavesRequest { branches: vec![0] }
    );
    let mut leaves = vec![Digest::ZERO; 8];
    leaves[2] = d(1);
    let actions = initiator.on_message(&answer(&leaves_request, Body::Leaves { digests: leaves }));
    let cells_request = sent(&actions).remove(0);
    assert_eq!(
        cells_request.body,
        Body::CellsRequest {
            segments: vec![2],
            after: None,
            limit: 4
        }
    );
    let scan = scans(&actions).remove(0);
    assert_eq!((scan.exchange, scan.seq), (exchange(1), cells_request.seq));
    (initiator, cells_request, scan)
}

/// A responder that has taken a root that differs from its own.
fn responder_after_root() -> (Responder, Message) {
    let mut responder = Responder::new(TABLE, empty_tree(), config()).unwrap();
    let root = Message {
        shape: shape(),
        exchange: exchange(1),
        seq: 0,
        body: Body::Root { root: d(1) },
    };
    let actions = responder.on_message(&root);
    assert!(matches!(sent(&actions)[0].body, Body::Branches { .. }));
    (responder, root)
}

fn request(seq: u32, body: Body) -> Message {
    Message {
        shape: shape(),
        exchange: exchange(1),
        seq,
        body,
    }
}

#[test]
fn a_foreign_shape_is_refused_and_the_initiator_hears_why() {
    let other = TreeShape::new(4, 8, 4).unwrap();
    let (mut initiator, actions) =
        Initiator::start(exchange(1), MerkleTree::new(other, 1).unwrap(), config()).unwrap();
    let root = sent(&actions).remove(0);
    let mut responder = Responder::new(TABLE, empty_tree(), config()).unwrap();
    let actions = responder.on_message(&root);
    assert_fails(&actions, |e| {
        *e == MerkleError::ShapeMismatch {
            local: shape(),
            remote: other,
        }
    });
    let abort = sent(&actions).remove(0);
    let actions = initiator.on_message(&abort);
    assert!(matches!(
        failure(&actions),
        Some(MerkleError::PeerAborted { reason }) if reason.contains("shapes differ")
    ));
    assert!(
        sent(&actions).is_empty(),
        "no abort is sent back for an abort"
    );
}

#[test]
fn a_foreign_format_version_is_an_error() {
    let (_, actions) = Initiator::start(exchange(1), empty_tree(), config()).unwrap();
    let mut bytes = sent(&actions)[0].encode();
    // Byte 0 is the envelope's version, byte 1 the shape's format version.
    assert_eq!(bytes[1], MERKLE_FORMAT_VERSION);
    bytes[1] = MERKLE_FORMAT_VERSION + 1;
    let foreign = Message::decode(&bytes).unwrap();
    let mut responder = Responder::new(TABLE, empty_tree(), config()).unwrap();
    assert_fails(&responder.on_message(&foreign), |e| {
        *e == MerkleError::UnsupportedVersion {
            found: MERKLE_FORMAT_VERSION + 1,
            supported: MERKLE_FORMAT_VERSION,
        }
    });

    let (mut initiator, actions) = Initiator::start(exchange(1), empty_tree(), config()).unwrap();
    let mut reply = answer(&sent(&actions)[0], Body::InSync).encode();
    reply[1] = 0;
    let reply = Message::decode(&reply).unwrap();
    assert_fails(&initiator.on_message(&reply), |e| {
        matches!(e, MerkleError::UnsupportedVersion { found: 0, .. })
    });
}

#[test]
fn misrouted_messages_are_errors() {
    let (_, actions) = Initiator::start(exchange(1), empty_tree(), config()).unwrap();
    let root = sent(&actions).remove(0);
    let mut other_table = Responder::new(TABLE + 1, empty_tree(), config()).unwrap();
    assert_fails(&other_table.on_message(&root), |e| {
        *e == MerkleError::TableMismatch {
            local: TABLE + 1,
            remote: TABLE,
        }
    });
    let mut other_partition =
        Responder::new(TABLE, MerkleTree::new(shape(), 2).unwrap(), config()).unwrap();
    assert_fails(&other_partition.on_message(&root), |e| {
        *e == MerkleError::PartitionMismatch {
            local: 2,
            remote: 1,
        }
    });
    assert!(matches!(
        Initiator::start(exchange(1), MerkleTree::new(shape(), 3).unwrap(), config()),
        Err(MerkleError::PartitionMismatch {
            local: 3,
            remote: 1
        })
    ));
    let bad = ExchangeConfig {
        max_cells_per_page: 0,
        ..config()
    };
    assert!(matches!(
        Initiator::start(exchange(1), empty_tree(), bad),
        Err(MerkleError::InvalidConfig {
            field: "max_cells_per_page",
            value: 0
        })
    ));
    assert!(Responder::new(TABLE, empty_tree(), bad).is_err());
}

#[test]
fn malformed_tree_replies_are_errors() {
    let (mut initiator, actions) = Initiator::start(exchange(1), empty_tree(), config()).unwrap();
    let root = sent(&actions).remove(0);
    assert_fails(
        &initiator.on_message(&answer(
            &root,
            Body::Branches {
                digests: vec![d(1); 3],
            },
        )),
        |e| {
            *e == MerkleError::WrongLength {
                what: "peer's branch digests",
                found: 3,
                expected: 4,
            }
        },
    );

    let (mut initiator, actions) = Initiator::start(exchange(1), empty_tree(), config()).unwrap();
    let root = sent(&actions).remove(0);
    let actions = initiator.on_message(&answer(
        &root,
        Body::Branches {
            digests: vec![d(1); 4],
        },
    ));
    let leaves_request = sent(&actions).remove(0);
    assert_fails(
        &initiator.on_message(&answer(
            &leaves_request,
            Body::Leaves {
                digests: vec![d(1); 31],
            },
        )),
        |e| {
            matches!(
                e,
                MerkleError::WrongLength {
                    found: 31,
                    expected: 32,
                    ..
                }
            )
        },
    );
}

#[test]
fn malformed_cell_pages_are_errors() {
    type Check = fn(&MerkleError) -> bool;
    let cases: Vec<(&str, Vec<CellDigest>, bool, Check)> = vec![
        (
            "a cell outside the requested segments",
            vec![cell(2, 0), cell(3, 0)],
            true,
            |e| matches!(e, MerkleError::CellOutOfRange { index: 1, .. }),
        ),
        (
            "a cell of another partition",
            vec![CellDigest::of_cell(0, *b"k", *b"c", b"v")],
            true,
            |e| matches!(e, MerkleError::CellOutOfRange { index: 0, .. }),
        ),
        (
            "cells out of order",
            vec![cell(2, 3), cell(2, 1)],
            true,
            |e| matches!(e, MerkleError::NotSorted { index: 1, .. }),
        ),
        (
            "the same cell twice",
            vec![cell(2, 1), cell(2, 1)],
            true,
            |e| matches!(e, MerkleError::NotSorted { index: 1, .. }),
        ),
        (
            "more cells than the limit",
            (0..5).map(|n| cell(2, n)).collect(),
            true,
            |e| {
                matches!(
                    e,
                    MerkleError::TooMany {
                        found: 5,
                        max: 4,
                        ..
                    }
                )
            },
        ),
        ("an incomplete page without cells", vec![], false, |e| {
            matches!(e, MerkleError::Malformed { .. })
        }),
    ];
    for (case, cells, complete, expected) in cases {
        let (mut initiator, cells_request, _) = initiator_at_first_page();
        let actions =
            initiator.on_message(&answer(&cells_request, Body::Cells { cells, complete }));
        let error = failure(&actions).unwrap_or_else(|| panic!("{case}: accepted"));
        assert!(expected(&error), "{case}: {error}");
    }
}

#[test]
fn a_page_that_does_not_start_after_the_cursor_is_an_error() {
    let (mut initiator, cells_request, scan) = initiator_at_first_page();
    // Both sides return a full page, so the next page starts after the 4th cell.
    let page: Vec<CellDigest> = (0..4).map(|n| cell(2, n)).collect();
    initiator.on_message(&answer(
        &cells_request,
        Body::Cells {
            cells: page.clone(),
            complete: false,
        },
    ));
    let actions = initiator.on_scan(&scan, page);
    let next = sent(&actions).remove(0);
    assert!(matches!(
        &next.body,
        Body::CellsRequest { after: Some(after), .. } if *after == cell(2, 3).id
    ));
    let actions = initiator.on_message(&answer(
        &next,
        Body::Cells {
            cells: vec![cell(2, 3)],
            complete: true,
        },
    ));
    assert!(matches!(
        failure(&actions),
        Some(MerkleError::CellOutOfRange { index: 0, .. })
    ));
}

#[test]
fn unexpected_replies_are_errors() {
    let (mut initiator, actions) = Initiator::start(exchange(1), empty_tree(), config()).unwrap();
    let root = sent(&actions).remove(0);
    assert_fails(
        &initiator.on_message(&answer(&root, Body::Leaves { digests: vec![] })),
        |e| {
            *e == MerkleError::UnexpectedMessage {
                expected: "InSync or Branches",
                found: "Leaves",
                seq: 0,
            }
        },
    );

    let (mut initiator, actions) = Initiator::start(exchange(1), empty_tree(), config()).unwrap();
    let mut future = answer(&sent(&actions)[0], Body::InSync);
    future.seq = 5;
    assert_fails(&initiator.on_message(&future), |e| {
        *e == MerkleError::UnexpectedSequence {
            expected: 0,
            found: 5,
        }
    });
}

#[test]
fn bad_requests_are_errors() {
    type Check = fn(&MerkleError) -> bool;
    let cases: Vec<(Body, Check)> = vec![
        (Body::LeavesRequest { branches: vec![] }, |e| {
            matches!(e, MerkleError::EmptyRequest { .. })
        }),
        (
            Body::LeavesRequest {
                branches: vec![2, 1],
            },
            |e| matches!(e, MerkleError::NotSorted { index: 1, .. }),
        ),
        (
            Body::LeavesRequest {
                branches: vec![1, 4],
            },
            |e| {
                *e == MerkleError::BranchOutOfRange {
                    branch: 4,
                    branches: 4,
                }
            },
        ),
        (
            Body::CellsRequest {
                segments: vec![0, 1, 2, 3, 4],
                after: None,
                limit: 4,
            },
            |e| {
                matches!(
                    e,
                    MerkleError::TooMany {
                        found: 5,
                        max: 4,
                        ..
                    }
                )
            },
        ),
        (
            Body::CellsRequest {
                segments: vec![32],
                after: None,
                limit: 4,
            },
            |e| {
                *e == MerkleError::SegmentOutOfRange {
                    segment: 32,
                    segments: 32,
                }
            },
        ),
        (
            Body::CellsRequest {
                segments: vec![1],
                after: None,
                limit: 0,
            },
            |e| matches!(e, MerkleError::Malformed { .. }),
        ),
        (
            Body::CellsRequest {
                segments: vec![1],
                after: Some(CellId::new(0, *b"k", *b"c")),
                limit: 4,
            },
            |e| matches!(e, MerkleError::TokenOutsidePartition { token: 0, .. }),
        ),
        (Body::InSync, |e| {
            matches!(
                e,
                MerkleError::UnexpectedMessage {
                    found: "InSync",
                    ..
                }
            )
        }),
        (
            Body::Cells {
                cells: vec![],
                complete: true,
            },
            |e| matches!(e, MerkleError::UnexpectedMessage { found: "Cells", .. }),
        ),
        (Body::Root { root: d(1) }, |e| {
            matches!(e, MerkleError::UnexpectedMessage { found: "Root", .. })
        }),
    ];
    for (body, expected) in cases {
        let (mut responder, _) = responder_after_root();
        let name = body.name();
        let actions = responder.on_message(&request(1, body));
        let error = failure(&actions).unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(expected(&error), "{name}: {error}");
        assert_eq!(sent(&actions).len(), 1, "{name}: the initiator is told");
    }

    let (mut responder, _) = responder_after_root();
    assert_fails(
        &responder.on_message(&request(3, Body::LeavesRequest { branches: vec![0] })),
        |e| {
            *e == MerkleError::UnexpectedSequence {
                expected: 1,
                found: 3,
            }
        },
    );
}

#[test]
fn duplicates_and_other_sessions_are_ignored() {
    let (mut initiator, actions) = Initiator::start(exchange(1), empty_tree(), config()).unwrap();
    let root = sent(&actions).remove(0);
    let branches = answer(
        &root,
        Body::Branches {
            digests: vec![d(1); 4],
        },
    );
    assert_eq!(sent(&initiator.on_message(&branches)).len(), 1);
    assert!(initiator.on_message(&branches).is_empty());
    let mut other_session = branches.clone();
    other_session.exchange.session = 2;
    other_session.seq = 1;
    assert!(initiator.on_message(&other_session).is_empty());
    assert_eq!(initiator.stats().ignored, 2);
    assert_eq!(*initiator.state(), ExchangeState::Running);

    // The responder answers a repeated request from its cache, and ignores older ones.
    let (mut responder, root) = responder_after_root();
    let again = responder.on_message(&root);
    assert!(matches!(sent(&again)[0].body, Body::Branches { .. }));
    assert_eq!(responder.stats().retransmits, 1);
    let cells_request = request(
        1,
        Body::CellsRequest {
            segments: vec![2],
            after: None,
            limit: 10,
        },
    );
    let actions = responder.on_message(&cells_request);
    let scan = scans(&actions).remove(0);
    assert_eq!(scan.limit, 4, "the responder's own page limit wins");
    // Repeated while the scan is pending: nothing to send yet.
    assert!(responder.on_message(&cells_request).is_empty());
    assert!(responder.on_message(&root).is_empty());
    let actions = responder.on_scan(&scan, vec![cell(2, 0)]);
    assert_eq!(
        sent(&actions)[0].body,
        Body::Cells {
            cells: vec![cell(2, 0)],
            complete: true
        }
    );
    assert_eq!(responder.stats().ignored, 2);
}

#[test]
fn scan_results_must_answer_the_pending_scan() {
    // A result for another exchange (an abandoned one) is ignored.
    let (mut initiator, _, scan) = initiator_at_first_page();
    let mut stale = scan.clone();
    stale.exchange.session = 99;
    assert!(initiator.on_scan(&stale, vec![cell(2, 0)]).is_empty());
    assert_eq!(initiator.stats().ignored, 1);
    // A result for another request of this exchange is a caller bug.
    let mut wrong = scan.clone();
    wrong.seq += 1;
    assert!(matches!(
        failure(&initiator.on_scan(&wrong, vec![])),
        Some(MerkleError::UnexpectedScan)
    ));

    // Cells the scan did not ask for.
    let (mut initiator, _, scan) = initiator_at_first_page();
    assert!(matches!(
        failure(&initiator.on_scan(&scan, vec![cell(5, 0)])),
        Some(MerkleError::CellOutOfRange {
            what: "local scan",
            ..
        })
    ));

    // A scan result without a pending scan.
    let (mut responder, _) = responder_after_root();
    let (_, _, scan) = initiator_at_first_page();
    assert!(matches!(
        failure(&responder.on_scan(&scan, vec![])),
        Some(MerkleError::UnexpectedScan)
    ));
}

#[test]
fn abandoning_tells_the_peer_and_ends_both_sides() {
    let (mut initiator, _, _) = initiator_at_first_page();
    let actions = initiator.abandon();
    assert_fails(&actions, |e| *e == MerkleError::Abandoned);
    assert!(initiator.abandon().is_empty());
    assert!(initiator.on_timeout().is_empty());

    let (mut responder, _) = responder_after_root();
    let abort = sent(&actions).remove(0);
    let abort = Message { seq: 1, ..abort };
    let actions = responder.on_message(&abort);
    assert!(matches!(
        failure(&actions),
        Some(MerkleError::PeerAborted { .. })
    ));
    assert!(responder
        .on_message(&request(1, Body::LeavesRequest { branches: vec![0] }))
        .is_empty());

    let (mut responder, _) = responder_after_root();
    let actions = responder.abandon();
    assert_fails(&actions, |e| *e == MerkleError::Abandoned);
    assert_eq!(sent(&actions)[0].exchange, exchange(1));
}

#[test]
fn a_finished_responder_ignores_a_late_abort() {
    let mut responder = Responder::new(TABLE, empty_tree(), config()).unwrap();
    let root = request(0, Body::Root { root: Digest::ZERO });
    let actions = responder.on_message(&root);
    assert_eq!(sent(&actions)[0].body, Body::InSync);
    assert!(matches!(actions.last(), Some(Action::Finished(r)) if r.in_sync));
    // The InSync was lost; the initiator retries, then gives up.
    assert_eq!(sent(&responder.on_message(&root))[0].body, Body::InSync);
    let abort = request(
        0,
        Body::Abort {
            reason: "timed out".into(),
        },
    );
    assert!(responder.on_message(&abort).is_empty());
    assert_eq!(*responder.state(), ExchangeState::Finished);
}

/// Every message of a whole exchange goes through `encode` and `decode`, and the byte counts
/// equal the encoded sizes.
#[test]
fn a_whole_exchange_over_bytes() {
    let mut local_tree = empty_tree();
    let mut remote_tree = empty_tree();
    let local_cells: Vec<CellDigest> = vec![cell(2, 0), cell(2, 1), cell(9, 0)];
    let remote_cells: Vec<CellDigest> = vec![cell(2, 1), cell(20, 4)];
    for c in &local_cells {
        local_tree.update(c.id.token, None, Some(c.digest)).unwrap();
    }
    for c in &remote_cells {
        remote_tree
            .update(c.id.token, None, Some(c.digest))
            .unwrap();
    }
    let scan = |cells: &[CellDigest], r: &ScanRequest| -> Vec<CellDigest> {
        cells
            .iter()
            .filter(|c| r.segments.contains(&shape().segment_of(c.id.token)))
            .filter(|c| r.after.as_ref().is_none_or(|a| c.id > *a))
            .take(r.limit as usize)
            .cloned()
            .collect()
    };
    let (mut initiator, mut to_responder) =
        Initiator::start(exchange(1), local_tree, config()).unwrap();
    let mut responder = Responder::new(TABLE, remote_tree, config()).unwrap();
    let mut bytes_to_responder = 0;
    let mut bytes_to_initiator = 0;
    let mut repairs = Vec::new();
    for _ in 0..100 {
        let mut to_initiator = Vec::new();
        for action in std::mem::take(&mut to_responder) {
            match action {
                Action::Send(m) => {
                    let bytes = m.encode();
                    bytes_to_responder += bytes.len() as u64;
                    let actions = responder.on_message(&Message::decode(&bytes).unwrap());
                    for a in actions {
                        match a {
                            Action::Scan(r) => {
                                to_initiator.extend(responder.on_scan(&r, scan(&remote_cells, &r)))
                            }
                            other => to_initiator.push(other),
                        }
                    }
                }
                Action::Scan(r) => {
                    let actions = initiator.on_scan(&r, scan(&local_cells, &r));
                    to_responder.extend(actions);
                }
                Action::Repair(diff) => repairs.push(diff),
                Action::Finished(_) | Action::Failed(_) => {}
            }
        }
        for action in to_initiator {
            if let Action::Send(m) = action {
                let bytes = m.encode();
                bytes_to_initiator += bytes.len() as u64;
                to_responder.extend(initiator.on_message(&Message::decode(&bytes).unwrap()));
            }
        }
        if initiator.is_over() && to_responder.is_empty() {
            break;
        }
    }
    assert_eq!(*initiator.state(), ExchangeState::Finished);
    assert_eq!(*responder.state(), ExchangeState::Finished);
    let pull: Vec<CellId> = repairs.iter().flat_map(|r| r.pull.clone()).collect();
    let push: Vec<CellId> = repairs.iter().flat_map(|r| r.push.clone()).collect();
    assert_eq!(pull, vec![cell(20, 4).id]);
    assert_eq!(push, vec![cell(2, 0).id, cell(9, 0).id]);
    let stats = initiator.stats();
    assert_eq!(stats.bytes_sent, bytes_to_responder);
    assert_eq!(stats.bytes_received, bytes_to_initiator);
    assert_eq!(responder.stats().bytes_received, bytes_to_responder);
    assert_eq!(responder.stats().bytes_sent, bytes_to_initiator);
}

fn arb_body() -> impl Strategy<Value = Body> {
    let digests = proptest::collection::vec(any::<[u8; 16]>().prop_map(Digest::from_bytes), 0..40);
    let ids = proptest::collection::vec(0u32..40, 0..6);
    let cell_strategy = (0u32..34, any::<u8>()).prop_map(|(s, n)| cell(s % 32, n));
    prop_oneof![
        any::<[u8; 16]>().prop_map(|r| Body::Root {
            root: Digest::from_bytes(r)
        }),
        Just(Body::InSync),
        digests
            .clone()
            .prop_map(|digests| Body::Branches { digests }),
        ids.clone()
            .prop_map(|branches| Body::LeavesRequest { branches }),
        digests.prop_map(|digests| Body::Leaves { digests }),
        (ids, 0u32..6).prop_map(|(segments, limit)| Body::CellsRequest {
            segments,
            after: None,
            limit
        }),
        (
            proptest::collection::vec(cell_strategy, 0..6),
            any::<bool>()
        )
            .prop_map(|(cells, complete)| Body::Cells { cells, complete }),
        Just(Body::Done),
        Just(Body::Abort { reason: "x".into() }),
    ]
}

#[derive(Debug, Clone)]
enum Input {
    Message(u32, u64, Body),
    Scan(u8),
    Timeout,
}

fn arb_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        6 => (0u32..4, 1u64..3, arb_body()).prop_map(|(seq, session, body)| Input::Message(seq, session, body)),
        1 => (0u8..4).prop_map(Input::Scan),
        1 => Just(Input::Timeout),
    ]
}

proptest! {
    /// Arbitrary messages, scan results and timeouts, in any order, to both machines: no panic,
    /// and nothing at all once a machine is over, except a responder's cached replies.
    #[test]
    fn arbitrary_inputs_never_panic(inputs in proptest::collection::vec(arb_input(), 0..40)) {
        let mut tree = empty_tree();
        tree.update(cell(2, 0).id.token, None, Some(cell(2, 0).digest)).unwrap();
        let (mut initiator, _) = Initiator::start(exchange(1), tree.clone(), config()).unwrap();
        let mut responder = Responder::new(TABLE, tree, config()).unwrap();
        let mut initiator_scan: Option<ScanRequest> = None;
        let mut responder_scan: Option<ScanRequest> = None;
        for input in inputs {
            let (initiator_over, responder_over) = (initiator.is_over(), responder.is_over());
            let (i_actions, r_actions) = match input {
                Input::Message(seq, session, body) => {
                    let msg = Message { shape: shape(), exchange: ExchangeId { session, ..exchange(1) }, seq, body };
                    (initiator.on_message(&msg), responder.on_message(&msg))
                }
                Input::Scan(n) => {
                    let cells: Vec<CellDigest> = (0..n).map(|k| cell(2, k)).collect();
                    let i = match &initiator_scan { Some(r) => initiator.on_scan(r, cells.clone()), None => vec![] };
                    let r = match &responder_scan { Some(r) => responder.on_scan(r, cells), None => vec![] };
                    (i, r)
                }
                Input::Timeout => (initiator.on_timeout(), vec![]),
            };
            if let Some(r) = scans(&i_actions).pop() { initiator_scan = Some(r); }
            if let Some(r) = scans(&r_actions).pop() { responder_scan = Some(r); }
            for actions in [&i_actions, &r_actions] {
                let ends = actions.iter().filter(|a| matches!(a, Action::Failed(_) | Action::Finished(_))).count();
                prop_assert!(ends <= 1, "{:?}", actions);
            }
            prop_assert!(r_actions.iter().all(|a| !matches!(a, Action::Repair(_))));
            if initiator_over {
                prop_assert!(i_actions.is_empty(), "{:?}", i_actions);
            }
            if responder_over {
                // At most the cached reply to a repeated request.
                prop_assert!(r_actions.iter().all(|a| matches!(a, Action::Send(_))), "{:?}", r_actions);
                prop_assert!(r_actions.len() <= 1);
            }
        }
    }
}
