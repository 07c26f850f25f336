use super::*;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn key(n: &str) -> NodeKey {
    NodeKey::new(n, 1)
}

/// One SYN / SYN-ACK / ACK exchange from `a` to `b`, with `budget` bytes per part.
fn exchange(a: &mut Metadata, b: &mut Metadata, budget: usize, rng: &mut StdRng) {
    let syn = a.digest(budget, rng);
    let to_a = b.delta_for(&syn, budget, rng);
    let b_digest = b.digest(budget, rng);
    a.merge(to_a, |_| true);
    let to_b = a.delta_for(&b_digest, budget, rng);
    b.merge(to_b, |_| true);
}

fn snapshot(m: &Metadata) -> BTreeMap<NodeKey, NodeState> {
    m.nodes().map(|(k, s)| (k.clone(), s.clone())).collect()
}

#[test]
fn writes_take_the_next_version_and_deletes_are_tombstones() {
    let mut m = Metadata::new(key("a"));
    m.set("status", "joining");
    m.set("status", "joining");
    m.set("status", "normal");
    m.set("http", "10.0.0.1:8080");
    m.delete("http");
    let s = m.get(&key("a")).unwrap();
    assert_eq!(
        s.max_version(),
        4,
        "an unchanged write is not a new version"
    );
    assert_eq!(s.get("status"), Some("normal"));
    assert_eq!(s.get("http"), None);
    assert_eq!(s.versioned()["http"].version, 4);
    assert_eq!(s.iter().count(), 1);
}

#[test]
fn one_exchange_reconciles_both_sides() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut a = Metadata::new(key("a"));
    let mut b = Metadata::new(key("b"));
    a.set("x", "1");
    b.set("y", "2");
    b.beat();
    exchange(&mut a, &mut b, 1400, &mut rng);
    assert_eq!(a.get(&key("b")).unwrap().get("y"), Some("2"));
    assert_eq!(a.get(&key("b")).unwrap().heartbeat(), 1);
    assert_eq!(b.get(&key("a")).unwrap().get("x"), Some("1"));
    assert_eq!(snapshot(&a), snapshot(&b));
}

#[test]
fn a_third_party_relays_state() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut a = Metadata::new(key("a"));
    let mut b = Metadata::new(key("b"));
    let mut c = Metadata::new(key("c"));
    a.set("table:t", "{}");
    exchange(&mut a, &mut b, 1400, &mut rng);
    exchange(&mut c, &mut b, 1400, &mut rng);
    assert_eq!(c.get(&key("a")).unwrap().get("table:t"), Some("{}"));
}

#[test]
fn small_budgets_make_progress_oldest_first() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut a = Metadata::new(key("a"));
    let mut b = Metadata::new(key("b"));
    for i in 0..60 {
        a.set(format!("key-{i:03}"), "x".repeat(20));
    }
    let mut rounds = 0;
    let mut last = 0;
    while b.get(&key("a")).map_or(0, |s| s.max_version()) < 60 {
        exchange(&mut b, &mut a, 200, &mut rng);
        let now = b.get(&key("a")).map_or(0, |s| s.max_version());
        assert!(now > last, "round {rounds} made no progress");
        last = now;
        rounds += 1;
        assert!(rounds < 60);
    }
    assert_eq!(a.get(&key("a")), b.get(&key("a")));
}

#[test]
fn cut_digests_are_marked_incomplete() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut m = Metadata::new(key("a"));
    let mut others = Metadata::new(key("z"));
    for i in 0..200 {
        let mut n = Metadata::new(key(&format!("node-{i}")));
        n.beat();
        let all = Digest {
            entries: vec![],
            complete: true,
        };
        others.merge(n.delta_for(&all, 1400, &mut rng), |_| true);
    }
    // A complete empty digest asks for everything.
    let d = others.delta_for(
        &Digest {
            entries: vec![],
            complete: true,
        },
        1400,
        &mut rng,
    );
    assert!(!d.nodes.is_empty());
    m.merge(d, |_| true);
    let digest = others.digest(500, &mut rng);
    assert!(!digest.complete);
    assert!(encoded_size(&digest) <= 500);
    let full = others.digest(100_000, &mut rng);
    assert!(full.complete);
    assert_eq!(full.entries.len(), 201);
    // A cut digest only asks about the nodes it names.
    let delta = others.delta_for(&Digest::default(), 100_000, &mut rng);
    assert!(delta.nodes.is_empty());
}

#[test]
fn merge_rejects_what_the_filter_refuses_and_own_state() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut a = Metadata::new(key("a"));
    a.set("k", "v");
    let mut b = Metadata::new(key("b"));
    let all = Digest {
        entries: vec![],
        complete: true,
    };
    let report = b.merge(a.delta_for(&all, 1400, &mut rng), |n| n.node != "a");
    assert_eq!(report, MergeReport::default());
    assert!(b.get(&key("a")).is_none());
    let mut echo = a.clone();
    let report = echo.merge(a.delta_for(&all, 1400, &mut rng), |_| true);
    assert_eq!(report, MergeReport::default());
    let report = b.merge(a.delta_for(&all, 1400, &mut rng), |_| true);
    assert_eq!(report.changed, vec![(key("a"), vec!["k".to_string()])]);
    b.remove(&key("a"));
    assert!(b.get(&key("a")).is_none());
}

/// A node's history of writes, and the metadata stores of its snapshots.
fn histories() -> impl Strategy<Value = Vec<Vec<(u8, Option<u8>)>>> {
    proptest::collection::vec(
        proptest::collection::vec((0u8..6, proptest::option::of(any::<u8>())), 0..25),
        1..4,
    )
}

proptest! {
    #[test]
    fn wire_sizes_match_postcard(
        node in ".{0,40}",
        key in ".{0,40}",
        value in proptest::option::of(".{0,300}"),
        numbers in proptest::array::uniform5(any::<u64>()),
        shift in 0u32..64,
    ) {
        let [generation, heartbeat, from, to, version] = numbers.map(|n| n >> shift);
        let node = NodeKey::new(node, generation);
        let entry = DigestEntry { node: node.clone(), heartbeat, max_version: version };
        prop_assert_eq!(entry_len(&entry), encoded_size(&entry));
        let digest = Digest { entries: vec![entry.clone(); (heartbeat % 200) as usize], complete: true };
        prop_assert_eq!(digest_len(&digest), encoded_size(&digest));
        let delta = NodeDelta { node, heartbeat, from_version: from, to_version: to, kvs: vec![] };
        prop_assert_eq!(header_len(&delta), encoded_size(&delta));
        let v = VersionedValue { value, version };
        prop_assert_eq!(kv_len(&key, &v), encoded_size(&(key.clone(), v.clone())));
    }

    #[test]
    fn deltas_fit_their_budget(
        writes in proptest::collection::vec((0u16..500, ".{0,60}"), 0..80),
        budget in 40usize..1500,
        their_version in 0u64..80,
        seed in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut m = Metadata::new(key("a"));
        for (k, v) in writes {
            m.set(format!("k{k}"), v);
        }
        let digest = Digest {
            entries: vec![DigestEntry { node: key("a"), heartbeat: 0, max_version: their_version }],
            complete: true,
        };
        let delta = m.delta_for(&digest, budget, &mut rng);
        prop_assert!(encoded_size(&delta) <= budget, "{} > {budget}", encoded_size(&delta));
        prop_assert!(encoded_size(&m.digest(budget, &mut rng)) <= budget.max(4));
    }

    #[test]
    fn merges_are_idempotent_and_commutative(
        histories in histories(),
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), 60usize..400), 1..6),
        seed in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        // Each owner writes its history; snapshots of it at different points are gossiped with
        // different budgets, to a receiver that starts empty.
        let mut deltas = Vec::new();
        for (i, history) in histories.iter().enumerate() {
            let mut owner = Metadata::new(key(&format!("o{i}")));
            let mut snapshots = vec![owner.clone()];
            for (k, v) in history {
                match v {
                    Some(v) => owner.set(format!("k{k}"), v.to_string()),
                    None => owner.delete(format!("k{k}")),
                }
                owner.beat();
                snapshots.push(owner.clone());
            }
            for (at, budget) in &cuts {
                let snap = at.get(&snapshots);
                deltas.push(snap.delta_for(&Digest { entries: vec![], complete: true }, *budget, &mut rng));
            }
        }
        let apply = |order: &[usize]| {
            let mut m = Metadata::new(key("receiver"));
            for &i in order {
                m.merge(deltas[i].clone(), |_| true);
            }
            snapshot(&m)
        };
        let forward: Vec<usize> = (0..deltas.len()).collect();
        let mut shuffled = forward.clone();
        shuffled.shuffle(&mut rng);
        let twice: Vec<usize> = forward.iter().chain(shuffled.iter()).copied().collect();
        let once = apply(&forward);
        prop_assert_eq!(&once, &apply(&shuffled));
        prop_assert_eq!(&once, &apply(&twice));
    }
}
