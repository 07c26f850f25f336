//! One chaos run, phase by phase:
//!
//! 1. **Preflight:** only loopback addresses of the run's own nodes; iptables usable if the
//!    schedule partitions; netem probed if it slows links (skipped with a note if absent); a
//!    lock per address range, and leftovers of a crashed run removed.
//! 2. **Cluster:** start the nodes (or attach to `--target`), and wait until every node reports
//!    the same ring and sees every member alive. Create the tables, give every register and
//!    batch row a first value at `all`.
//! 3. **Chaos:** clients run while the seeded schedule applies and heals one fault at a time.
//! 4. **Heal and recovery:** every process running and every link whole (the heal); then wait
//!    until members are alive, rings agree and no node holds hints (the recovery). Reads that
//!    start from here on are judged for staleness.
//! 5. **Healthy:** clients keep running for `--healthy-secs`, then stop.
//! 6. **Settle:** wait until no node has hints or background work; read every replica's own copy;
//!    poll the copies that differ until they agree or `--converge-timeout` passes.
//! 7. **Read-back** of every key at `all` (which repairs), then every replica's copy again.
//! 8. Stop the nodes, undo every rule, judge the history and write the report.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::check::{self, Verdict};
use crate::cleanup;
use crate::client::Api;
use crate::cluster::{node_address, Cluster, LaunchConfig, NodeSpec};
use crate::error::ChaosError;
use crate::health::{self, RingView};
use crate::history::{
    read_history, Event, Fault, LocalRound, Meta, NodeInfo, Phase, PhaseName, Workload,
    HISTORY_FORMAT,
};
use crate::nemesis::Nemeses;
use crate::net::iptables::{self, Firewall};
use crate::net::{netem, Owned};
use crate::readback;
use crate::report;
use crate::schedule::{self, NemesisKind, ScheduleConfig};
use crate::workload::{self, Client, Recorder, Settings};

/// Everything a run is given.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub seed: u64,
    pub nodes: usize,
    pub base_ip: Ipv4Addr,
    pub port: u16,
    /// Nodes of a running cluster to use instead of starting a cluster.
    pub target: Option<Vec<SocketAddrV4>>,
    pub bin: PathBuf,
    pub secret: String,
    pub out: PathBuf,
    pub schedule: ScheduleConfig,
    pub healthy: Duration,
    pub workloads: Vec<Workload>,
    pub replication: u32,
    pub read_level: String,
    pub write_level: String,
    /// Clients per workload.
    pub clients: usize,
    /// Operations per second, all clients together.
    pub rate: f64,
    pub registers: usize,
    pub set_rows: usize,
    pub batch_rows: usize,
    pub client_timeout: Duration,
    pub converge_timeout: Duration,
    pub converge_within: Option<u64>,
    /// How long to wait, after the heal, for the recovery.
    pub recover_within: Duration,
    pub keep_data: bool,
    pub route: workload::Route,
    /// Extra environment of every node the harness starts.
    pub node_env: Vec<(String, String)>,
    /// The command that replays this run.
    pub command: String,
}

/// A level as a number of replicas, for `replication` replicas.
pub fn level_count(level: &str, replication: u32) -> Result<u32, ChaosError> {
    let n = match level {
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "quorum" => replication / 2 + 1,
        "all" => replication,
        number => number.parse().map_err(|_| {
            ChaosError::Usage(format!(
                "unknown consistency level {number:?}: one, two, three, quorum, all or a number"
            ))
        })?,
    };
    if n == 0 || n > replication {
        return Err(ChaosError::Usage(format!(
            "level {level} needs {n} replicas, but the tables have {replication}"
        )));
    }
    Ok(n)
}

/// An exclusive lock on the run's address range, held for the whole run.
fn lock(chain: &str, range: &str) -> Result<File, ChaosError> {
    let path = std::env::temp_dir().join(format!("tessera-chaos-{chain}.lock"));
    let file = File::create(&path)
        .map_err(|e| ChaosError::io(format!("creating {}", path.display()), e))?;
    // SAFETY: flock on a file descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        return Err(ChaosError::Busy {
            range: range.to_owned(),
            lock: path.display().to_string(),
        });
    }
    Ok(file)
}

/// What a finished run hands back.
pub struct RunOutcome {
    pub verdict: Verdict,
    pub report_dir: PathBuf,
    pub notes: Vec<String>,
}

fn log(message: impl AsRef<str>) {
    eprintln!("[chaos] {}", message.as_ref());
}

/// Logs a note and records it in the history.
fn note(recorder: &Recorder, notes: &mut Vec<String>, text: String) {
    log(&text);
    recorder.record(Event::Note(crate::history::Note {
        t_us: recorder.now_us(),
        text: text.clone(),
    }));
    notes.push(text);
}

/// Runs one chaos run and writes its report.
pub async fn run(mut config: RunConfig) -> Result<RunOutcome, ChaosError> {
    std::fs::create_dir_all(&config.out)
        .map_err(|e| ChaosError::io(format!("creating {}", config.out.display()), e))?;
    let mut notes: Vec<String> = Vec::new();
    let read_quorum = level_count(&config.read_level, config.replication)?;
    let write_quorum = level_count(&config.write_level, config.replication)?;
    for (k, v) in &config.node_env {
        notes.push(format!("the nodes ran with {k}={v}"));
    }
    if read_quorum + write_quorum <= config.replication {
        notes.push(format!(
            "R+W = {} is not above N = {}: reads are not judged for staleness",
            read_quorum + write_quorum,
            config.replication
        ));
    }

    // The nodes and the addresses the run may touch.
    let specs: Vec<NodeSpec> = match &config.target {
        Some(targets) => targets
            .iter()
            .enumerate()
            .map(|(i, a)| NodeSpec {
                id: format!("n{}", i + 1),
                address: *a,
            })
            .collect(),
        None => (0..config.nodes)
            .map(|i| {
                Ok(NodeSpec {
                    id: format!("n{}", i + 1),
                    address: node_address(config.base_ip, config.port, i)?,
                })
            })
            .collect::<Result<_, ChaosError>>()?,
    };
    let ips: Vec<Ipv4Addr> = specs.iter().map(|s| s.ip()).collect();
    let owned = Owned::new(ips.clone())?;
    let range = format!(
        "{} ({} nodes)",
        specs
            .iter()
            .map(|s| s.host())
            .collect::<Vec<_>>()
            .join(", "),
        specs.len()
    );

    // What the schedule needs.
    let kinds = config.schedule.kinds.clone();
    if kinds.contains(&NemesisKind::Wipe) && config.target.is_some() {
        return Err(ChaosError::Usage(
            "--nemesis wipe deletes data dirs, so it only runs on the harness's own nodes, not \
             with --target"
                .into(),
        ));
    }
    let needs_iptables = kinds
        .iter()
        .any(|k| k.is_partition() || *k == NemesisKind::Lossy);
    if needs_iptables {
        Firewall::preflight()?;
    }
    let chain = iptables::chain_name(ips[0]);
    let _lock = lock(&chain, &range)?;
    if needs_iptables {
        iptables::remove_chain(&chain);
    }
    netem::remove_leftover();
    let mut netem_ok = false;
    if kinds.contains(&NemesisKind::Slow) {
        match netem::probe() {
            Ok(()) => netem_ok = true,
            Err(why) => {
                let note = format!("the slow-link nemesis (tc netem) was skipped: {why}");
                log(&note);
                notes.push(note);
                config.schedule.kinds.retain(|k| *k != NemesisKind::Slow);
            }
        }
    }
    config.schedule.nodes = specs.len();
    let plan = schedule::plan(&config.schedule, config.seed);

    let nodes_dir = config.out.join("nodes");
    let mut cluster = match &config.target {
        None => {
            if nodes_dir.exists() {
                std::fs::remove_dir_all(&nodes_dir)
                    .map_err(|e| ChaosError::io(format!("clearing {}", nodes_dir.display()), e))?;
            }
            std::fs::create_dir_all(&nodes_dir)
                .map_err(|e| ChaosError::io(format!("creating {}", nodes_dir.display()), e))?;
            log(format!("starting {} nodes: {range}", specs.len()));
            Cluster::launch(&LaunchConfig {
                bin: config.bin.clone(),
                secret: config.secret.clone(),
                dir: nodes_dir.clone(),
                first: config.base_ip,
                port: config.port,
                nodes: specs.len(),
                env: config.node_env.clone(),
            })
            .await?
        }
        Some(_) => Cluster::attach(specs.clone(), &config.out),
    };
    if !cluster.managed {
        for (i, spec) in specs.iter().enumerate() {
            if !cluster.controllable(i) {
                notes.push(format!(
                    "no local process listens on {}: process nemeses cannot act on it",
                    spec.host()
                ));
            }
        }
    }

    let firewall = if needs_iptables {
        let firewall = Firewall::new(ips[0], owned.clone());
        firewall.install()?;
        cleanup::chain_installed(firewall.chain());
        Some(firewall)
    } else {
        None
    };
    let nemeses = Nemeses {
        firewall,
        netem: netem_ok.then(|| netem::Netem::new(owned.clone())),
        ips: ips.clone(),
    };

    let result = drive(&config, &specs, &mut cluster, &nemeses, &plan, &mut notes).await;

    // Whatever happened: stop our nodes, undo every rule.
    if cluster.managed {
        cluster.stop().await;
    } else {
        let _ = cluster.revive_all().await;
    }
    if let Some(firewall) = &nemeses.firewall {
        firewall.remove();
    }
    if let Some(netem) = &nemeses.netem {
        netem.heal();
    }
    cleanup::undo_all();
    result?;

    if cluster.managed && !config.keep_data {
        for i in 0..cluster.len() {
            if let Some(dir) = cluster.data_dir(i) {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
    let history_path = config.out.join("history.jsonl");
    let events = read_history(&history_path)?;
    let verdict = check::check(&events)?;
    report::write(&config.out, &events, &verdict)?;
    Ok(RunOutcome {
        verdict,
        report_dir: config.out.clone(),
        notes,
    })
}

/// Recovered: every node reports the same ring and sees every member alive, and no node
/// holds hints.
async fn recovered(api: &Api, hosts: &[String], ids: &[String]) -> Result<RingView, String> {
    let ring = health::settled(api, hosts, ids).await?;
    let (hints, _) = health::pending(api, hosts).await?;
    if hints > 0 {
        return Err(format!("{hints} hints still pending"));
    }
    Ok(ring)
}

/// Phases 2 to 7, between the cluster's start and its stop.
async fn drive(
    config: &RunConfig,
    specs: &[NodeSpec],
    cluster: &mut Cluster,
    nemeses: &Nemeses,
    plan: &[schedule::Planned],
    notes: &mut Vec<String>,
) -> Result<(), ChaosError> {
    let api = Api::new(config.client_timeout, &config.secret)
        .map_err(|e| ChaosError::Cluster(format!("building the HTTP client: {e}")))?;
    let hosts: Vec<String> = specs.iter().map(|s| s.host()).collect();
    let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();

    log("waiting until every node reports the same ring and sees every member alive");
    let (_, first_ring) =
        health::wait_for(Duration::from_secs(120), Duration::from_millis(500), || {
            health::settled(&api, &hosts, &ids)
        })
        .await
        .map_err(|why| {
            ChaosError::Cluster(format!("the cluster did not come together in 120 s: {why}"))
        })?;
    // The nodes name themselves; a target cluster's names may not be n1..nN.
    let mut specs = specs.to_vec();
    for spec in &mut specs {
        if let Some(health) = api.get_json(&spec.host(), "/health").await {
            if let Some(name) = health["node"].as_str() {
                spec.id = name.to_owned();
            }
        }
    }
    let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
    log(format!(
        "ring epoch {} agreed by all {} nodes",
        first_ring.epoch,
        specs.len()
    ));

    // Tables, on every node.
    let settings_json = serde_json::json!({
        "replication": config.replication,
        "read": config.read_level,
        "write": config.write_level,
    });
    for &w in &config.workloads {
        let t = workload::table(w);
        api.create_table(&hosts[0], t, &settings_json)
            .await
            .map_err(|e| {
                ChaosError::Cluster(format!(
                    "creating table {t}: {e} (a table of that name with other settings exists?)"
                ))
            })?;
        for host in &hosts {
            health::wait_for(
                Duration::from_secs(30),
                Duration::from_millis(200),
                || async {
                    api.get_json(host, &format!("/v1/tables/{t}"))
                        .await
                        .map(|_| ())
                        .ok_or_else(|| format!("{host} does not know table {t}"))
                },
            )
            .await
            .map_err(ChaosError::Cluster)?;
        }
    }

    let recorder = Recorder::create(&config.out.join("history.jsonl"))?;
    let run_id = format!(
        "{}{}",
        config.seed,
        if config.target.is_some() {
            format!("-{}", std::process::id())
        } else {
            String::new()
        }
    );
    let total_clients = (config.clients * config.workloads.len()).max(1);
    let mut settings = Settings {
        run: format!("k{run_id}"),
        read_level: config.read_level.clone(),
        write_level: config.write_level.clone(),
        registers: config.registers.max(1),
        set_rows: config.set_rows.max(1),
        batch_rows: config.batch_rows.max(1),
        batch_columns: 4,
        interval: Duration::from_secs_f64(total_clients as f64 / config.rate.max(0.1)),
        elements: Mutex::new(Default::default()),
        route: config.route,
        replicas: Default::default(),
    };
    if config.route == workload::Route::Replica {
        let by_id: BTreeMap<&str, &NodeSpec> = specs.iter().map(|s| (s.id.as_str(), s)).collect();
        for &w in &config.workloads {
            for key in settings.keys(w) {
                let replicas = first_ring
                    .replicas(&key, config.replication as usize)
                    .iter()
                    .filter_map(|id| by_id.get(id.as_str()).map(|s| (*s).clone()))
                    .collect();
                settings.replicas.insert(key, replicas);
            }
        }
        notes.push(
            "clients sent each request to a replica of its key (--route replica), so no write \
             was forwarded"
                .to_string(),
        );
    }
    let settings = Arc::new(settings);
    notes.push(
        "reads at R+W>N are judged only if they start after the recovery (cluster healed, \
         every member alive, rings agreed, no hints left on any node); writes acknowledged \
         after it count only if no ack was a hint (X-Hinted)"
            .to_string(),
    );
    let meta = Meta {
        format: HISTORY_FORMAT,
        seed: config.seed,
        command: config.command.clone(),
        nodes: specs
            .iter()
            .map(|s| NodeInfo {
                id: s.id.clone(),
                address: s.host(),
            })
            .collect(),
        replication: config.replication,
        read_level: config.read_level.clone(),
        write_level: config.write_level.clone(),
        read_quorum: level_count(&config.read_level, config.replication)?,
        write_quorum: level_count(&config.write_level, config.replication)?,
        workloads: config.workloads.clone(),
        started_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        converge_within_secs: config.converge_within,
        notes: notes.clone(),
    };
    recorder.record(Event::Meta(meta));
    let phase = |name: PhaseName, t: Instant, detail: String| {
        recorder.record(Event::Phase(Phase {
            name,
            t_us: recorder.at_us(t),
            detail,
        }));
    };

    workload::initialise(
        &api,
        &specs,
        &recorder,
        &settings,
        &config.workloads,
        Duration::from_secs(60),
    )
    .await?;

    // Clients.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut clients = Vec::new();
    let mut next_id = 1u32;
    for &w in &config.workloads {
        for c in 0..config.clients {
            let node = specs[c % specs.len()].clone();
            let client = Client::new(
                next_id,
                w,
                node,
                api.clone(),
                recorder.clone(),
                settings.clone(),
                config.seed,
            );
            next_id += 1;
            clients.push(tokio::spawn(client.run(stop_rx.clone())));
        }
    }
    let start = Instant::now();
    phase(PhaseName::WorkloadStart, start, String::new());
    log(format!(
        "seed {}: {} clients at {:.0} ops/s; {} faults over {} s",
        config.seed,
        total_clients,
        config.rate,
        plan.len(),
        config.schedule.chaos.as_secs()
    ));

    // The schedule.
    let mut failure: Option<ChaosError> = None;
    for planned in plan {
        tokio::time::sleep_until((start + planned.at).into()).await;
        let description = planned.action.description();
        log(format!(
            "fault {} at {:.1} s: {} ({description}) for {:.1} s",
            planned.index,
            planned.at.as_secs_f64(),
            planned.kind.name(),
            planned.length.as_secs_f64()
        ));
        let victim = match &planned.action {
            schedule::Action::Kill { node }
            | schedule::Action::Pause { node }
            | schedule::Action::Wipe { node } => Some(*node),
            _ => None,
        };
        if let Some(node) = victim.filter(|&i| !cluster.controllable(i)) {
            let text = format!(
                "fault {} ({description}) skipped: no local process of {} to signal",
                planned.index, specs[node].id
            );
            note(&recorder, notes, text);
            continue;
        }
        let began = Instant::now();
        if let Err(e) = nemeses.start(cluster, &planned.action).await {
            failure = Some(e);
            break;
        }
        tokio::time::sleep_until((began + planned.length).into()).await;
        let stopped = nemeses.stop(cluster, &planned.action).await;
        let ended = Instant::now();
        let names = |v: Vec<usize>| {
            v.into_iter()
                .map(|i| specs[i].id.clone())
                .collect::<Vec<_>>()
        };
        let links = match &planned.action {
            schedule::Action::Cut { pairs, .. }
            | schedule::Action::Lossy { pairs, .. }
            | schedule::Action::Slow { pairs, .. } => pairs
                .iter()
                .map(|&(a, b)| (specs[a].id.clone(), specs[b].id.clone()))
                .collect(),
            _ => vec![],
        };
        // How long the cluster takes to recover from this fault: polled until the next fault
        // is due (the last fault's recovery is the final one, measured after the heal below).
        let last = planned.index as usize == plan.len();
        let mut recovered_us = None;
        if stopped.is_ok() && !last {
            let next = plan
                .get(planned.index as usize)
                .map(|p| start + p.at)
                .unwrap_or(ended);
            let budget = next.saturating_duration_since(Instant::now());
            if let Ok((round, _)) = health::wait_for(budget, Duration::from_millis(500), || {
                recovered(&api, &hosts, &ids)
            })
            .await
            {
                recovered_us = Some(recorder.at_us(round));
            }
        }
        recorder.record(Event::Fault(Fault {
            id: planned.index,
            kind: planned.kind.name().to_owned(),
            start_us: recorder.at_us(began),
            end_us: recorder.at_us(ended),
            description,
            nodes: names(planned.action.nodes(specs.len())),
            links,
            recovered_us,
        }));
        if let Err(e) = stopped {
            failure = Some(e);
            break;
        }
        for crash in cluster.crashed() {
            note(&recorder, notes, crash);
        }
    }
    // The chaos phase ends with the last fault's heal, so that the recovery measured below is
    // the recovery from that fault; without faults, it lasts its whole length.
    if failure.is_none() && plan.is_empty() {
        tokio::time::sleep_until((start + config.schedule.chaos).into()).await;
    }

    // The final heal.
    let healed = nemeses.heal_links();
    let revived = cluster.revive_all().await;
    let heal = Instant::now();
    phase(PhaseName::Heal, heal, String::new());
    if let Some(e) = failure.or(healed.err()).or(revived.err()) {
        let _ = stop_tx.send(true);
        for c in clients {
            let _ = c.await;
        }
        let _ = recorder.close();
        return Err(e);
    }
    log("healed; waiting for the recovery (members alive, rings agreed, no hints)");
    let recovered = health::wait_for(config.recover_within, Duration::from_millis(500), || {
        recovered(&api, &hosts, &ids)
    })
    .await;
    let healthy_from = match recovered {
        Ok((round, ring)) => {
            phase(
                PhaseName::Recovered,
                round,
                format!("ring epoch {}", ring.epoch),
            );
            log(format!(
                "recovered {:.1} s after the heal",
                round.duration_since(heal).as_secs_f64()
            ));
            round
        }
        Err(why) => {
            let text = format!(
                "the cluster did not recover within {} s of the heal: {why}",
                config.recover_within.as_secs()
            );
            note(&recorder, notes, text.clone());
            phase(PhaseName::NotRecovered, Instant::now(), text);
            Instant::now()
        }
    };
    tokio::time::sleep_until((healthy_from + config.healthy).into()).await;
    let _ = stop_tx.send(true);
    for c in clients {
        let _ = c.await;
    }
    phase(PhaseName::WorkloadStop, Instant::now(), String::new());
    let stopped_at = Instant::now();

    // Settle.
    log("clients stopped; waiting until no node has hints or background work");
    let quiet = || async {
        let (hints, background) = health::pending(&api, &hosts).await?;
        if hints + background > 0 {
            return Err(format!("{hints} hints, {background} background tasks"));
        }
        Ok(())
    };
    match health::wait_for(Duration::from_secs(90), Duration::from_millis(250), quiet).await {
        Ok((t, ())) => phase(PhaseName::Quiesced, t, String::new()),
        Err(why) => note(
            &recorder,
            notes,
            format!("the nodes did not quiesce within 90 s: {why}"),
        ),
    }
    let ring: RingView = match health::settled(&api, &hosts, &ids).await {
        Ok(ring) => ring,
        Err(why) => {
            note(
                &recorder,
                notes,
                format!("the ring was not agreed at the end ({why}); using n1's"),
            );
            api.get_json(&hosts[0], "/v1/cluster/ring")
                .await
                .and_then(|j| RingView::parse(&j))
                .unwrap_or(first_ring)
        }
    };
    let placements = readback::placements(
        &ring,
        config.replication as usize,
        &settings,
        &config.workloads,
    );
    for p in &placements {
        recorder.record(Event::Placement(p.clone()));
    }
    let by_id: BTreeMap<String, String> = specs.iter().map(|s| (s.id.clone(), s.host())).collect();
    log("reading every replica's own copy");
    let before =
        readback::local_snapshot(&api, &by_id, &placements, &settings, LocalRound::Before).await;
    let mut differing = readback::divergent(&before);
    for read in before {
        recorder.record(Event::Local(read));
    }
    let converge_end = Instant::now() + config.converge_timeout;
    while !differing.is_empty() && Instant::now() < converge_end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let again: Vec<_> = placements
            .iter()
            .filter(|p| differing.contains(&(p.workload, p.key.clone())))
            .cloned()
            .collect();
        let reads =
            readback::local_snapshot(&api, &by_id, &again, &settings, LocalRound::Before).await;
        differing = readback::divergent(&reads);
    }
    if differing.is_empty() {
        phase(
            PhaseName::Converged,
            Instant::now(),
            format!(
                "{:.1} s after the clients stopped",
                stopped_at.elapsed().as_secs_f64()
            ),
        );
    } else {
        note(
            &recorder,
            notes,
            format!(
                "{} keys still differed between replicas {} s after the first look, before the read-back",
                differing.len(),
                config.converge_timeout.as_secs()
            ),
        );
    }

    log("reading every key back at `all`");
    let finals = readback::read_back(&api, &hosts, &settings, &config.workloads, 10, || {
        recorder.now_us()
    })
    .await;
    for f in finals {
        recorder.record(Event::Final(f));
    }
    phase(PhaseName::ReadBack, Instant::now(), String::new());
    let _ = health::wait_for(Duration::from_secs(30), Duration::from_millis(250), quiet).await;
    let after =
        readback::local_snapshot(&api, &by_id, &placements, &settings, LocalRound::After).await;
    for read in after {
        recorder.record(Event::Local(read));
    }
    for crash in cluster.crashed() {
        note(&recorder, notes, crash);
    }
    recorder.close()
}
