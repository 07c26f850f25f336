//! Streaming partitions on the simulated network, in virtual time: a transfer copies a partition
//! exactly and merges it with what the receiver holds, survives a restart of either side, gathers
//! from several sources, keeps to `max_concurrent` and to its byte rate, and can be cancelled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_cluster::transfer::{
    TransferConfig, TransferKey, TransferState, TransferStatus, Transfers,
};
use tessera_cluster::{
    BoxFuture, Handler, NodeId, Replica, Request, Response, RowWriter, SimNetwork, SimTransport,
    StorageRunner, Transfer, Transport, TransportError,
};
use tessera_storage::{
    cell_key, partition_range, Cell, CellStore, CellValue, CellWrite, ColumnFamily, Context,
    EngineRead, HintStore, MemoryEngine, RowKey, StoreOptions,
};
use tessera_worker::{Runner, WorkerOptions};
use tokio::time::Instant;

const TABLE: u32 = 1;

/// A node of the test: its engine (which outlives restarts), store and replica.
struct Node {
    id: NodeId,
    engine: MemoryEngine,
    store: Arc<CellStore<MemoryEngine>>,
}

impl Node {
    /// A node with an empty store, serving peers on `net` (through `wrap`, to observe them).
    fn new(net: &SimNetwork, id: &str, actor: u64) -> Self {
        let node = Self::on(id, actor, MemoryEngine::new());
        node.serve(net, |replica| replica);
        node
    }

    /// A node over `engine` (a restart when the engine held a node's data), not yet serving.
    fn on(id: &str, actor: u64, engine: MemoryEngine) -> Self {
        let store = Arc::new(CellStore::new(engine.clone(), StoreOptions::new(actor)));
        Self {
            id: id.to_owned(),
            engine,
            store,
        }
    }

    /// Registers this node's replica on `net`, wrapped by `wrap`.
    fn serve(&self, net: &SimNetwork, wrap: impl FnOnce(Arc<dyn Handler>) -> Arc<dyn Handler>) {
        let hints = Arc::new(HintStore::new(self.engine.clone()));
        let replica = Arc::new(Replica::new(
            self.id.clone(),
            RowWriter::inline(self.store.clone()),
            hints,
            StorageRunner::Inline,
        ));
        net.register(self.id.clone(), wrap(replica));
    }

    /// Writes `value` into `column` of `row` as a client write coordinated here.
    fn write(&self, row: &RowKey, column: &str, value: &[u8]) {
        self.store
            .write_row(
                row,
                &[CellWrite::Set {
                    column: column.as_bytes().to_vec(),
                    value: value.to_vec(),
                    context: Context::new(),
                }],
                1,
            )
            .unwrap();
    }

    /// Every cell of `partition`, by data key.
    fn partition(&self, partition: u16) -> BTreeMap<Vec<u8>, Cell> {
        let (start, end) = partition_range(TABLE, partition);
        self.store
            .engine()
            .scan(ColumnFamily::Data, &start, Some(&end), usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(key, value)| {
                let cell = tessera_storage::cell::decode_cell(&key, &value).unwrap();
                (key, cell)
            })
            .collect()
    }
}

fn row(partition: u16, i: u64) -> RowKey {
    RowKey::new(
        TABLE,
        partition,
        (u64::from(partition) << 48) | i,
        format!("key-{i}").into_bytes(),
    )
}

/// Fills `partition` on `node` with `rows` rows of two columns, values of `size` bytes.
fn fill(node: &Node, partition: u16, rows: std::ops::Range<u64>, size: usize) {
    for i in rows {
        let row = row(partition, i);
        for column in ["a", "b"] {
            let value: Vec<u8> = (0..size).map(|j| (i as usize + j) as u8).collect();
            node.write(&row, column, &value);
        }
    }
}

/// The receiving side of a test: its transfers and the runner that runs their worker.
struct Receiver {
    transfers: Transfers<Counting<SimTransport>, MemoryEngine>,
    runner: Runner,
    calls: Arc<Calls>,
}

fn config(chunk_bytes: u32, max_concurrent: usize) -> TransferConfig {
    TransferConfig {
        max_concurrent,
        chunk_bytes,
        chunk_cells: 10_000,
        call_timeout: Duration::from_secs(2),
        backoff_base: Duration::from_millis(500),
        backoff_cap: Duration::from_secs(5),
        storage: StorageRunner::Inline,
    }
}

impl Receiver {
    fn start(net: &SimNetwork, node: &Node, config: TransferConfig, max_rate: Option<u64>) -> Self {
        let calls = Arc::new(Calls::default());
        let transport = Counting {
            inner: net.transport(node.id.clone()),
            calls: calls.clone(),
        };
        let transfers =
            Transfers::open(node.id.clone(), node.store.clone(), transport, config).unwrap();
        let runner = Runner::new();
        runner
            .spawn_with(
                transfers.worker().unwrap(),
                WorkerOptions {
                    max_rate,
                    ..WorkerOptions::default()
                },
            )
            .unwrap();
        Self {
            transfers,
            runner,
            calls,
        }
    }

    async fn stop(self) {
        self.runner.shutdown(Duration::from_secs(5)).await;
    }

    fn status(&self, key: &TransferKey) -> TransferStatus {
        self.transfers
            .report()
            .transfers
            .into_iter()
            .find(|t| t.epoch == key.epoch && t.table == key.table && t.partition == key.partition)
            .expect("a known transfer")
    }

    /// Waits (in virtual time) until every one of `keys` completed.
    async fn until_done(&self, keys: &[TransferKey]) {
        let mut completions = self.transfers.completions();
        let deadline = Instant::now() + Duration::from_secs(3600);
        while !keys.iter().all(|k| self.transfers.is_completed(k)) {
            assert!(
                tokio::time::timeout_at(deadline, completions.changed())
                    .await
                    .is_ok(),
                "not done within an hour of virtual time: {:#?}",
                self.transfers.report()
            );
        }
    }

    /// Waits until `ready` holds, polling every 10 ms of virtual time.
    async fn until(&self, what: &str, ready: impl Fn(&Self) -> bool) {
        for _ in 0..360_000 {
            if ready(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never {what}: {:#?}", self.transfers.report());
    }
}

fn transfer(epoch: u64, partition: u16, sources: &[&str]) -> Transfer {
    Transfer {
        epoch,
        table: TABLE,
        partition,
        sources: sources.iter().map(|s| s.to_string()).collect(),
    }
}

/// Chunk requests the receiver made: every position asked per (partition, source), and how many
/// were in flight at once.
#[derive(Default)]
struct Calls {
    inner: Mutex<CallLog>,
}

#[derive(Default)]
struct CallLog {
    asked: Vec<(u16, NodeId, Option<Vec<u8>>)>,
    in_flight: BTreeMap<u16, u32>,
    max_partitions_in_flight: usize,
}

impl Calls {
    fn log(&self) -> std::sync::MutexGuard<'_, CallLog> {
        self.inner.lock().unwrap()
    }

    /// Positions asked more than once.
    fn repeated(&self) -> usize {
        let log = self.log();
        let distinct: BTreeSet<_> = log.asked.iter().collect();
        log.asked.len() - distinct.len()
    }
}

/// A transport that logs the chunk requests going through it.
struct Counting<T> {
    inner: T,
    calls: Arc<Calls>,
}

impl<T: Transport> Transport for Counting<T> {
    fn call(
        &self,
        to: &NodeId,
        request: Request,
    ) -> BoxFuture<'static, Result<Response, TransportError>> {
        let partition = match &request {
            Request::PartitionChunk {
                partition, after, ..
            } => {
                let mut log = self.calls.log();
                log.asked.push((*partition, to.clone(), after.clone()));
                *log.in_flight.entry(*partition).or_default() += 1;
                let busy = log.in_flight.values().filter(|n| **n > 0).count();
                log.max_partitions_in_flight = log.max_partitions_in_flight.max(busy);
                Some(*partition)
            }
            _ => None,
        };
        let call = self.inner.call(to, request);
        let calls = self.calls.clone();
        Box::pin(async move {
            let answer = call.await;
            if let Some(partition) = partition {
                if let Some(n) = calls.log().in_flight.get_mut(&partition) {
                    *n -= 1;
                }
            }
            answer
        })
    }
}

/// What `receiver` must hold for `partition` after merging every cell of `sources` into what it
/// held `before`.
fn merged(
    before: &BTreeMap<Vec<u8>, Cell>,
    sources: &[&Node],
    partition: u16,
) -> BTreeMap<Vec<u8>, Cell> {
    let mut expected = before.clone();
    for source in sources {
        for (key, cell) in source.partition(partition) {
            let held = expected.remove(&key).unwrap_or_default();
            expected.insert(key, held.sync(&cell));
        }
    }
    expected
}

#[tokio::test(start_paused = true)]
async fn a_transfer_copies_a_partition_and_merges_it_with_what_the_receiver_holds() {
    let net = SimNetwork::new(1);
    let source = Node::new(&net, "n1", 1);
    let receiver_node = Node::new(&net, "n2", 2);
    fill(&source, 7, 0..300, 100);
    fill(&source, 6, 0..20, 100);
    fill(&source, 8, 0..20, 100);
    // The receiver already took some writes for the partition: one cell that supersedes the
    // source's (it saw it, then was written), and one written concurrently.
    let newer = row(7, 10);
    let seen = source.store.read_cell(&newer, b"a").unwrap().unwrap();
    receiver_node
        .store
        .merge_row(&newer, &[(b"a".to_vec(), seen.clone())])
        .unwrap();
    receiver_node
        .store
        .write_row(
            &newer,
            &[CellWrite::Set {
                column: b"a".to_vec(),
                value: b"newer".to_vec(),
                context: seen.join(),
            }],
            2,
        )
        .unwrap();
    receiver_node.write(&row(7, 20), "b", b"concurrent");
    let before = receiver_node.partition(7);

    let receiver = Receiver::start(&net, &receiver_node, config(4 << 10, 2), None);
    let key = transfer(1, 7, &["n1"]).key();
    let report = receiver.transfers.enqueue(vec![transfer(1, 7, &["n1"])]);
    assert_eq!(report.queued, vec![key]);
    receiver.until_done(&[key]).await;

    assert_eq!(receiver_node.partition(7), merged(&before, &[&source], 7));
    let newest = receiver_node
        .store
        .read_cell(&newer, b"a")
        .unwrap()
        .unwrap();
    let values: Vec<Option<Vec<u8>>> = newest
        .values()
        .into_iter()
        .map(|v| v.data.clone())
        .collect();
    assert_eq!(
        values,
        vec![Some(b"newer".to_vec())],
        "the newer cell stays"
    );
    assert_eq!(
        receiver_node
            .store
            .read_cell(&row(7, 20), b"b")
            .unwrap()
            .unwrap()
            .sibling_count(),
        2,
        "concurrent versions both stay"
    );
    assert!(receiver_node.partition(6).is_empty() && receiver_node.partition(8).is_empty());
    assert_eq!(receiver.transfers.take_completed(), vec![key]);

    let status = receiver.status(&key);
    assert_eq!(status.state, TransferState::Done);
    assert_eq!(status.keys_done, 600);
    assert_eq!(status.keys_estimated, Some(600));
    assert!(status.chunks >= 10, "{status:?}");
    assert_eq!(status.resent_chunks, 0);
    assert_eq!(receiver.calls.repeated(), 0);
    assert_eq!(status.bytes_done, status.bytes_estimated.unwrap());

    // Given again for the same epoch, it is not redone, and is reported complete again.
    let asked = receiver.calls.log().asked.len();
    let report = receiver.transfers.enqueue(vec![transfer(1, 7, &["n1"])]);
    assert_eq!(report.already_done, vec![key]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(receiver.calls.log().asked.len(), asked);
    assert_eq!(receiver.transfers.take_completed(), vec![key]);
    receiver.stop().await;

    // After a restart too.
    let restarted = Receiver::start(&net, &receiver_node, config(4 << 10, 2), None);
    assert!(restarted.transfers.is_completed(&key));
    let report = restarted.transfers.enqueue(vec![transfer(1, 7, &["n1"])]);
    assert_eq!(report.already_done, vec![key]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(restarted.calls.log().asked.is_empty());
    restarted.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_transfer_gets_through_loss_and_writes_made_while_it_runs() {
    let net = SimNetwork::new(7);
    let source = Node::new(&net, "n1", 1);
    let receiver_node = Node::new(&net, "n2", 2);
    fill(&source, 3, 0..200, 200);
    net.set_default_link(tessera_cluster::LinkConfig::new(
        0.2,
        Duration::from_millis(1),
        Duration::from_millis(20),
    ));
    let receiver = Receiver::start(&net, &receiver_node, config(8 << 10, 2), None);
    let key = transfer(4, 3, &["n1"]).key();
    receiver.transfers.enqueue(vec![transfer(4, 3, &["n1"])]);
    // Writes keep coming while it runs; as in a ring change, they reach both nodes.
    for i in 0..40u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let row = row(3, i * 5);
        source.write(&row, "a", format!("during-{i}").as_bytes());
        let cell = source.store.read_cell(&row, b"a").unwrap().unwrap();
        receiver_node
            .store
            .merge_row(&row, &[(b"a".to_vec(), cell)])
            .unwrap();
    }
    receiver.until_done(&[key]).await;
    assert_eq!(receiver_node.partition(3), source.partition(3));
    let status = receiver.status(&key);
    assert!(
        status.resent_chunks > 0,
        "20% loss re-sends some: {status:?}"
    );
    assert!(status.last_error.is_some());
    receiver.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_receiver_resumes_after_its_last_merged_chunk() {
    let net = SimNetwork::new(2);
    let source = Node::new(&net, "n1", 1);
    let receiver_node = Node::new(&net, "n2", 2);
    fill(&source, 5, 0..500, 100);
    net.set_default_link(tessera_cluster::LinkConfig::new(
        0.0,
        Duration::from_millis(5),
        Duration::from_millis(5),
    ));
    let key = transfer(2, 5, &["n1"]).key();
    let receiver = Receiver::start(&net, &receiver_node, config(2 << 10, 2), None);
    receiver.transfers.enqueue(vec![transfer(2, 5, &["n1"])]);
    receiver
        .until("ten chunks in", |r| {
            r.transfers
                .stats()
                .chunks
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 10
        })
        .await;
    let calls_before = receiver.calls.clone();
    receiver.stop().await;
    let merged_before = receiver_node.partition(5).len();
    assert!(merged_before > 0 && merged_before < 1000);

    // The node restarts: a new store (empty cache) over the same engine, and new transfers,
    // which find the unfinished one in `meta` and resume it without being told.
    let restarted_node = Node::on("n2", 2, receiver_node.engine.clone());
    restarted_node.serve(&net, |replica| replica);
    let restarted = Receiver::start(&net, &restarted_node, config(2 << 10, 2), None);
    let status = restarted.status(&key);
    assert_ne!(status.state, TransferState::Done);
    assert_eq!(status.keys_done as usize, merged_before);
    restarted.until_done(&[key]).await;
    assert_eq!(restarted_node.partition(5), source.partition(5));

    // Only the chunk that was in flight when it stopped was asked for twice.
    let before: BTreeSet<_> = calls_before.log().asked.iter().cloned().collect();
    let after: Vec<_> = restarted.calls.log().asked.clone();
    let again = after.iter().filter(|a| before.contains(*a)).count();
    assert_eq!(again, 1, "re-sent chunks");
    assert_eq!(restarted.status(&key).resent_chunks, 1);
    assert_eq!(
        restarted
            .transfers
            .stats()
            .resent_chunks
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    restarted.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_restarted_source_fails_the_transfer_for_a_while_then_it_resumes() {
    let net = SimNetwork::new(3);
    let source = Node::new(&net, "n1", 1);
    let receiver_node = Node::new(&net, "n2", 2);
    fill(&source, 9, 0..400, 100);
    net.set_default_link(tessera_cluster::LinkConfig::new(
        0.0,
        Duration::from_millis(5),
        Duration::from_millis(5),
    ));
    let key = transfer(3, 9, &["n1"]).key();
    let receiver = Receiver::start(&net, &receiver_node, config(2 << 10, 2), None);
    receiver.transfers.enqueue(vec![transfer(3, 9, &["n1"])]);
    receiver
        .until("five chunks in", |r| r.status(&key).chunks >= 5)
        .await;
    // The source goes down.
    net.unregister("n1");
    receiver
        .until("backing off", |r| {
            r.status(&key).state == TransferState::Backoff
        })
        .await;
    let status = receiver.status(&key);
    assert!(
        status.last_error.as_deref().unwrap_or("").contains("n1"),
        "{status:?}"
    );
    assert!(status.retry_in_ms.is_some());
    let worker = receiver.runner.handle("transfers").unwrap().info();
    assert!(
        worker.errors > 0 && worker.last_error.is_some(),
        "{worker:?}"
    );
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_ne!(receiver.status(&key).state, TransferState::Done);

    // It restarts on the same data and serves again.
    let restarted = Node::on("n1", 1, source.engine.clone());
    restarted.serve(&net, |replica| replica);
    receiver.until_done(&[key]).await;
    assert_eq!(receiver_node.partition(9), source.partition(9));
    let status = receiver.status(&key);
    assert_eq!(status.keys_done, 800);
    assert!(status.resent_chunks >= 1);
    receiver.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_transfer_gathers_a_partition_from_every_source() {
    let net = SimNetwork::new(4);
    let n1 = Node::new(&net, "n1", 1);
    let n2 = Node::new(&net, "n2", 2);
    let n3 = Node::new(&net, "n3", 3);
    let receiver_node = Node::new(&net, "n4", 4);
    // Each surviving replica missed some writes the others took, and some keys were written on
    // two of them concurrently.
    fill(&n1, 2, 0..100, 50);
    fill(&n2, 2, 50..150, 60);
    fill(&n3, 2, 100..200, 70);
    let before = receiver_node.partition(2);
    // n3 is down at first: the transfer reads the others, then n3 once it is back.
    net.unregister("n3");
    let receiver = Receiver::start(&net, &receiver_node, config(4 << 10, 2), None);
    let key = transfer(5, 2, &["n3", "n1", "n2"]).key();
    receiver
        .transfers
        .enqueue(vec![transfer(5, 2, &["n3", "n1", "n2", "n4"])]);
    receiver
        .until("n1 and n2 read", |r| {
            let status = r.status(&key);
            status.sources.iter().filter(|s| s.finished).count() == 2
        })
        .await;
    assert_ne!(receiver.status(&key).state, TransferState::Done);
    n3.serve(&net, |replica| replica);
    receiver.until_done(&[key]).await;
    assert_eq!(
        receiver_node.partition(2),
        merged(&before, &[&n1, &n2, &n3], 2)
    );
    let status = receiver.status(&key);
    let sources: Vec<&str> = status.sources.iter().map(|s| s.node.as_str()).collect();
    assert_eq!(
        sources,
        ["n3", "n1", "n2"],
        "the receiver is never its own source"
    );
    assert!(status.sources.iter().all(|s| s.finished && s.keys > 0));
    assert!(status.sources[0].consecutive_failures == 0);
    // Cells written on two sources concurrently hold both versions.
    let both = receiver_node
        .store
        .read_cell(&row(2, 60), b"a")
        .unwrap()
        .unwrap();
    assert_eq!(both.sibling_count(), 2);
    receiver.stop().await;
}

#[tokio::test(start_paused = true)]
async fn transfers_run_at_most_max_concurrent_at_once() {
    let net = SimNetwork::new(5);
    let source = Node::new(&net, "n1", 1);
    let receiver_node = Node::new(&net, "n2", 2);
    for partition in 0..6 {
        fill(&source, partition, 0..60, 100);
    }
    net.set_default_link(tessera_cluster::LinkConfig::new(
        0.0,
        Duration::from_millis(3),
        Duration::from_millis(3),
    ));
    let receiver = Receiver::start(&net, &receiver_node, config(1 << 10, 2), None);
    let all: Vec<Transfer> = (0..6).map(|p| transfer(6, p, &["n1"])).collect();
    let keys: Vec<TransferKey> = all.iter().map(Transfer::key).collect();
    receiver.transfers.enqueue(all);
    receiver
        .until("two finished", |r| {
            keys.iter().filter(|k| r.transfers.is_completed(k)).count() >= 2
        })
        .await;
    {
        let report = receiver.transfers.report();
        assert!(report.running <= 2, "{report:?}");
        assert_eq!(receiver.calls.log().max_partitions_in_flight, 2);
    }
    // More at once, from the next step on.
    receiver.transfers.set_max_concurrent(3);
    receiver.until_done(&keys).await;
    assert_eq!(receiver.calls.log().max_partitions_in_flight, 3);
    for partition in 0..6 {
        assert_eq!(
            receiver_node.partition(partition),
            source.partition(partition)
        );
    }
    // First come, first served.
    assert_eq!(
        receiver.transfers.take_completed()[..2],
        keys[..2],
        "completion order"
    );
    receiver.stop().await;
}

#[tokio::test(start_paused = true)]
async fn transfers_keep_to_their_byte_rate() {
    let net = SimNetwork::new(6);
    let source = Node::new(&net, "n1", 1);
    let receiver_node = Node::new(&net, "n2", 2);
    fill(&source, 4, 0..1000, 300);
    let rate = 64 << 10;
    let receiver = Receiver::start(&net, &receiver_node, config(16 << 10, 2), Some(rate));
    let key = transfer(7, 4, &["n1"]).key();
    let started = Instant::now();
    receiver.transfers.enqueue(vec![transfer(7, 4, &["n1"])]);
    receiver.until_done(&[key]).await;
    let took = started.elapsed().as_secs_f64();
    let bytes = receiver.status(&key).bytes_done;
    assert!(bytes > 600_000, "{bytes}");
    // Paced chunk by chunk: the last chunk's rest comes after it, so allow one chunk.
    let least = (bytes - (16 << 10)) as f64 / rate as f64;
    assert!(took >= least, "{bytes} bytes in {took:.1} s at {rate} B/s");
    assert!(
        took <= least * 1.5 + 2.0,
        "{bytes} bytes in {took:.1} s at {rate} B/s"
    );
    assert_eq!(receiver_node.partition(4), source.partition(4));
    receiver.stop().await;

    // Unthrottled, the same data takes a fraction of that.
    let other = Node::new(&net, "n3", 3);
    let fast = Receiver::start(&net, &other, config(16 << 10, 2), None);
    let started = Instant::now();
    fast.transfers.enqueue(vec![transfer(7, 4, &["n1"])]);
    fast.until_done(&[key]).await;
    assert!(started.elapsed().as_secs_f64() < least / 4.0);
    fast.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_epoch_stops_and_is_forgotten() {
    let net = SimNetwork::new(8);
    let source = Node::new(&net, "n1", 1);
    let receiver_node = Node::new(&net, "n2", 2);
    for partition in 0..3 {
        fill(&source, partition, 0..200, 100);
    }
    net.set_default_link(tessera_cluster::LinkConfig::new(
        0.0,
        Duration::from_millis(5),
        Duration::from_millis(5),
    ));
    let receiver = Receiver::start(&net, &receiver_node, config(1 << 10, 1), None);
    receiver.transfers.enqueue(vec![
        transfer(8, 0, &["n1"]),
        transfer(8, 1, &["n1"]),
        transfer(9, 2, &["n1"]),
    ]);
    receiver
        .until("started", |r| r.transfers.report().running == 1)
        .await;
    assert_eq!(receiver.transfers.cancel_epoch(8), 2);
    let keys: Vec<TransferKey> = receiver
        .transfers
        .report()
        .transfers
        .iter()
        .map(|t| TransferKey {
            epoch: t.epoch,
            table: t.table,
            partition: t.partition,
        })
        .collect();
    assert_eq!(keys, vec![transfer(9, 2, &["n1"]).key()]);
    receiver.until_done(&[transfer(9, 2, &["n1"]).key()]).await;
    let asked_for_8 = receiver
        .calls
        .log()
        .asked
        .iter()
        .filter(|(p, _, _)| *p < 2)
        .count();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let again = receiver
        .calls
        .log()
        .asked
        .iter()
        .filter(|(p, _, _)| *p < 2)
        .count();
    assert_eq!(asked_for_8, again, "nothing asked for a cancelled transfer");
    receiver.stop().await;
    // The records went with them: a restart resumes nothing of epoch 8.
    let restarted = Receiver::start(&net, &receiver_node, config(1 << 10, 1), None);
    let report = restarted.transfers.report();
    assert_eq!(report.pending, 0, "{report:?}");
    assert_eq!(report.transfers.len(), 1);
    assert_eq!(restarted.transfers.forget_epochs_before(10), 1);
    restarted.stop().await;
    let again = Receiver::start(&net, &receiver_node, config(1 << 10, 1), None);
    assert!(again.transfers.report().transfers.is_empty());
    again.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_transfer_with_no_other_source_is_refused_and_sources_can_be_replaced() {
    let net = SimNetwork::new(9);
    let n1 = Node::new(&net, "n1", 1);
    let _n3 = Node::new(&net, "n3", 3);
    let receiver_node = Node::new(&net, "n2", 2);
    fill(&n1, 1, 0..100, 100);
    let receiver = Receiver::start(&net, &receiver_node, config(2 << 10, 1), None);
    let report = receiver
        .transfers
        .enqueue(vec![transfer(1, 1, &["n2"]), transfer(1, 2, &[])]);
    assert_eq!(report.refused.len(), 2);
    assert!(receiver.transfers.report().transfers.is_empty());

    // A source that is gone for good is replaced by the layout: progress of the sources kept.
    net.unregister("n1");
    let key = transfer(2, 1, &["n1"]).key();
    receiver.transfers.enqueue(vec![transfer(2, 1, &["n1"])]);
    receiver
        .until("failing", |r| r.status(&key).last_error.is_some())
        .await;
    n1.serve(&net, |replica| replica);
    let report = receiver.transfers.enqueue(vec![transfer(2, 1, &["n1"])]);
    assert_eq!(report.unchanged, vec![key]);
    let report = receiver
        .transfers
        .enqueue(vec![transfer(2, 1, &["n3", "n1"])]);
    assert_eq!(report.updated, vec![key]);
    receiver.until_done(&[key]).await;
    assert_eq!(receiver_node.partition(1), n1.partition(1));
    let sources: Vec<String> = receiver
        .status(&key)
        .sources
        .into_iter()
        .map(|s| s.node)
        .collect();
    assert_eq!(sources, ["n3", "n1"]);
    receiver.stop().await;
}

/// A source that lies (a cell of another partition) is a failed source, and nothing it sent is
/// stored.
#[tokio::test(start_paused = true)]
async fn a_bad_chunk_is_refused_and_the_next_source_tried() {
    struct Liar;
    impl Handler for Liar {
        fn handle(&self, _from: &NodeId, _request: Request) -> BoxFuture<'static, Response> {
            Box::pin(async {
                let elsewhere = RowKey::new(TABLE, 99, 1, b"x".to_vec());
                Response::PartitionChunk {
                    cells: vec![(
                        cell_key(&elsewhere, b"c").unwrap(),
                        Cell::from_value(CellValue::value(b"lie".to_vec(), 1)),
                    )],
                    next: None,
                    bytes: 10,
                    estimate: None,
                }
            })
        }
    }
    let net = SimNetwork::new(10);
    let honest = Node::new(&net, "n1", 1);
    net.register("liar", Arc::new(Liar));
    let receiver_node = Node::new(&net, "n2", 2);
    fill(&honest, 6, 0..50, 100);
    let receiver = Receiver::start(&net, &receiver_node, config(4 << 10, 1), None);
    let key = transfer(1, 6, &["liar", "n1"]).key();
    receiver
        .transfers
        .enqueue(vec![transfer(1, 6, &["liar", "n1"])]);
    receiver
        .until("n1 read", |r| r.status(&key).sources[1].finished)
        .await;
    let status = receiver.status(&key);
    assert!(!status.sources[0].finished);
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("bad chunk"),
        "{status:?}"
    );
    assert!(receiver_node.partition(99).is_empty());
    assert_eq!(receiver_node.partition(6), honest.partition(6));
    assert_ne!(status.state, TransferState::Done);
    receiver.stop().await;
}
