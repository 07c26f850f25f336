//! The nodes under test: processes the harness starts (a local cluster of its own, started the
//! way `scripts/run-local.sh` starts one), or the nodes of a running cluster it was pointed at
//! (`--target`), found by their `--listen` address in `/proc`.
//!
//! Process nemeses act here: `kill -9` and restart (with the same command line, plus a seed so
//! a node that started the cluster finds it again), `SIGSTOP` and `SIGCONT`, and the wipe of a
//! data dir. A node of a foreign cluster is restarted detached, so it outlives the harness.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::cleanup::{self, ForeignRestart};
use crate::error::ChaosError;

/// The text the server prints on stdout once it listens.
const LISTENING: &str = "tessera listening on";

/// How long a node may take to print that line.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// One node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub id: String,
    pub address: SocketAddrV4,
}

impl NodeSpec {
    pub fn ip(&self) -> Ipv4Addr {
        *self.address.ip()
    }

    /// `IP:PORT`, as requests name it.
    pub fn host(&self) -> String {
        self.address.to_string()
    }
}

/// How to start the harness's own nodes.
#[derive(Debug, Clone)]
pub struct LaunchConfig {
    pub bin: PathBuf,
    pub secret: String,
    /// Data dirs and logs go under here (`nI/`, `nI.log`).
    pub dir: PathBuf,
    pub first: Ipv4Addr,
    pub port: u16,
    pub nodes: usize,
    /// Extra environment of every node (`--node-env`), e.g. `TESSERA_FAULT=drop-replication`.
    pub env: Vec<(String, String)>,
}

/// The address of node `i` (0-based) of a run whose first node is `first`.
pub fn node_address(first: Ipv4Addr, port: u16, i: usize) -> Result<SocketAddrV4, ChaosError> {
    let [a, b, c, d] = first.octets();
    let last = usize::from(d) + i;
    if last > 254 {
        return Err(ChaosError::Usage(format!(
            "{first} plus {i} is past the end of its /24; choose a lower --base-ip"
        )));
    }
    Ok(SocketAddrV4::new(Ipv4Addr::new(a, b, c, last as u8), port))
}

#[derive(Debug)]
struct Managed {
    bin: PathBuf,
    secret: String,
    data_dir: PathBuf,
    stdout: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    child: Option<tokio::process::Child>,
}

#[derive(Debug)]
struct Foreign {
    pid: Option<i32>,
    /// Captured before a kill, to start it again.
    restart: Option<ForeignRestart>,
    log: PathBuf,
}

#[derive(Debug)]
enum Process {
    Managed(Box<Managed>),
    Foreign(Foreign),
}

/// A node and its process.
#[derive(Debug)]
pub struct Node {
    pub spec: NodeSpec,
    process: Process,
    paused: bool,
}

/// The nodes under test.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    /// Whether the harness started them (and may wipe and stop them).
    pub managed: bool,
}

fn signal(pid: i32, sig: i32) -> Result<(), ChaosError> {
    // SAFETY: kill has no memory preconditions.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc == 0 {
        Ok(())
    } else {
        Err(ChaosError::Cluster(format!(
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        )))
    }
}

impl Managed {
    /// Starts the node and waits (bounded) for its listening line.
    async fn spawn(&mut self, spec: &NodeSpec, seed: Option<&str>) -> Result<(), ChaosError> {
        std::fs::create_dir_all(&self.data_dir)
            .map_err(|e| ChaosError::io(format!("creating {}", self.data_dir.display()), e))?;
        let open = |path: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| ChaosError::io(format!("opening {}", path.display()), e))
        };
        let stdout = open(&self.stdout)?;
        let offset = stdout.metadata().map(|m| m.len()).unwrap_or(0);
        let mut command = tokio::process::Command::new(&self.bin);
        command
            .arg("serve")
            .args(["--node-id", &spec.id])
            .args(["--listen", &spec.host()])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--cluster-secret", &self.secret]);
        if let Some(seed) = seed {
            // It adds itself to the ring (a committed layout epoch), as `make run`'s nodes do.
            command.args(["--seed", seed, "--auto-join"]);
        }
        command.envs(self.env.iter().cloned());
        command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(open(&self.log)?)
            .kill_on_drop(true);
        // SAFETY: prctl and setpgid are async-signal-safe, as pre_exec requires.
        unsafe {
            command.pre_exec(|| {
                // Die with the harness, even if it is SIGKILLed.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                // A group of its own: a terminal's Ctrl-C reaches the harness, which stops the
                // nodes itself, rather than every node at once.
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| {
            ChaosError::Cluster(format!(
                "starting {} ({}): {e}",
                spec.id,
                self.bin.display()
            ))
        })?;
        if let Some(pid) = child.id() {
            cleanup::child_started(pid as i32);
        }
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let printed = std::fs::read(&self.stdout).unwrap_or_default();
            if printed
                .get(offset as usize..)
                .is_some_and(|new| String::from_utf8_lossy(new).contains(LISTENING))
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let tail = tail(&self.log, 10);
                    return Err(ChaosError::Cluster(format!(
                        "{} exited ({status}) while starting; the end of {}:\n{tail}",
                        spec.id,
                        self.log.display()
                    )));
                }
            }
            if Instant::now() > deadline {
                return Err(ChaosError::Cluster(format!(
                    "{} did not print its listening line within {}s; see {}",
                    spec.id,
                    START_DEADLINE.as_secs(),
                    self.log.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(|c| c.id()).map(|p| p as i32)
    }

    async fn kill(&mut self) -> Result<(), ChaosError> {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let pid = pid as i32;
                let _ = signal(pid, libc::SIGCONT);
                signal(pid, libc::SIGKILL)?;
                cleanup::child_gone(pid);
            }
            let _ = child.wait().await;
        }
        Ok(())
    }
}

/// The last `lines` lines of a file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The pid and command line of the process whose command line says `--listen ADDRESS`.
fn find_listener(address: &str) -> Option<(i32, Vec<String>)> {
    let entries = std::fs::read_dir("/proc").ok()?;
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let listens = argv
            .windows(2)
            .any(|w| w[0] == "--listen" && w[1] == address)
            || argv.iter().any(|a| *a == format!("--listen={address}"));
        if listens && argv.iter().any(|a| a == "serve") {
            return Some((pid, argv));
        }
    }
    None
}

/// What it takes to start process `pid` again: its command line, directory and environment.
fn capture(pid: i32, argv: Vec<String>, log: &Path) -> Option<ForeignRestart> {
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let env = environ
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let text = String::from_utf8_lossy(kv);
            let (k, v) = text.split_once('=')?;
            Some((k.to_owned(), v.to_owned()))
        })
        .collect();
    Some(ForeignRestart {
        argv,
        cwd,
        env,
        log: log.to_owned(),
    })
}

impl Cluster {
    /// Starts `config.nodes` nodes: n1 starts the cluster, the others join it through n1.
    pub async fn launch(config: &LaunchConfig) -> Result<Cluster, ChaosError> {
        let mut nodes = Vec::with_capacity(config.nodes);
        for i in 0..config.nodes {
            let spec = NodeSpec {
                id: format!("n{}", i + 1),
                address: node_address(config.first, config.port, i)?,
            };
            let managed = Managed {
                bin: config.bin.clone(),
                secret: config.secret.clone(),
                data_dir: config.dir.join(&spec.id),
                stdout: config.dir.join(format!("{}.out", spec.id)),
                log: config.dir.join(format!("{}.log", spec.id)),
                env: config.env.clone(),
                child: None,
            };
            nodes.push(Node {
                spec,
                process: Process::Managed(Box::new(managed)),
                paused: false,
            });
        }
        let seed = nodes[0].spec.host();
        let mut cluster = Cluster {
            nodes,
            managed: true,
        };
        for i in 0..cluster.nodes.len() {
            let seed = (i > 0).then_some(seed.as_str());
            let node = &mut cluster.nodes[i];
            if let Process::Managed(m) = &mut node.process {
                m.spawn(&node.spec, seed).await?;
            }
        }
        Ok(cluster)
    }

    /// The nodes of a running cluster, named as they name themselves (`/health`).
    pub fn attach(nodes: Vec<NodeSpec>, log_dir: &Path) -> Cluster {
        let nodes = nodes
            .into_iter()
            .map(|spec| {
                let pid = find_listener(&spec.host()).map(|(pid, _)| pid);
                let log = log_dir.join(format!("{}.restarted.log", spec.id));
                Node {
                    spec,
                    process: Process::Foreign(Foreign {
                        pid,
                        restart: None,
                        log,
                    }),
                    paused: false,
                }
            })
            .collect();
        Cluster {
            nodes,
            managed: false,
        }
    }

    /// Whether process nemeses can act on node `i` (a foreign node whose process is not on
    /// this machine cannot be killed or paused).
    pub fn controllable(&self, i: usize) -> bool {
        match &self.nodes[i].process {
            Process::Managed(_) => true,
            Process::Foreign(f) => f.pid.is_some() || f.restart.is_some(),
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn hosts(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.spec.host()).collect()
    }

    /// A live seed for node `i` to rejoin through: the next node.
    fn seed_for(&self, i: usize) -> String {
        self.nodes[(i + 1) % self.nodes.len()].spec.host()
    }

    /// `kill -9` node `i`.
    pub async fn kill(&mut self, i: usize) -> Result<(), ChaosError> {
        let node = &mut self.nodes[i];
        node.paused = false;
        match &mut node.process {
            Process::Managed(m) => m.kill().await,
            Process::Foreign(f) => {
                let Some(pid) = f.pid.take() else {
                    return Err(ChaosError::Cluster(format!(
                        "{}: no local process listens on {}",
                        node.spec.id,
                        node.spec.host()
                    )));
                };
                let argv = find_listener(&node.spec.host())
                    .map(|(_, argv)| argv)
                    .unwrap_or_default();
                let restart = capture(pid, argv, &f.log).ok_or_else(|| {
                    ChaosError::Cluster(format!(
                        "{}: cannot read /proc/{pid} to restart it later; not killing it",
                        node.spec.id
                    ))
                })?;
                let _ = signal(pid, libc::SIGCONT);
                cleanup::foreign_paused(pid, false);
                signal(pid, libc::SIGKILL)?;
                cleanup::foreign_killed(restart.clone());
                f.restart = Some(restart);
                Ok(())
            }
        }
    }

    /// Starts node `i` again after a kill, on the same data dir, joining through a peer.
    pub async fn restart(&mut self, i: usize) -> Result<(), ChaosError> {
        let seed = self.seed_for(i);
        let node = &mut self.nodes[i];
        match &mut node.process {
            Process::Managed(m) => {
                if m.child.is_none() {
                    m.spawn(&node.spec, Some(&seed)).await?;
                }
                Ok(())
            }
            Process::Foreign(f) => {
                let Some(restart) = f.restart.take() else {
                    return Ok(());
                };
                let pid = cleanup::restart_foreign(&restart).map_err(|e| {
                    ChaosError::Cluster(format!("restarting {}: {e}", node.spec.id))
                })?;
                cleanup::foreign_restarted(&restart.argv);
                f.pid = Some(pid as i32);
                Ok(())
            }
        }
    }

    /// `kill -9` node `i` and delete its data dir; [`Cluster::restart`] starts it again empty.
    pub async fn wipe(&mut self, i: usize) -> Result<(), ChaosError> {
        if !self.managed {
            return Err(ChaosError::Usage(
                "the wipe nemesis only runs on the harness's own nodes: it never deletes the \
                 data of a cluster it was pointed at"
                    .into(),
            ));
        }
        self.kill(i).await?;
        if let Process::Managed(m) = &self.nodes[i].process {
            std::fs::remove_dir_all(&m.data_dir)
                .map_err(|e| ChaosError::io(format!("wiping {}", m.data_dir.display()), e))?;
        }
        Ok(())
    }

    fn pid(&self, i: usize) -> Option<i32> {
        match &self.nodes[i].process {
            Process::Managed(m) => m.pid(),
            Process::Foreign(f) => f.pid,
        }
    }

    /// `SIGSTOP` node `i`.
    pub fn pause(&mut self, i: usize) -> Result<(), ChaosError> {
        let pid = self.pid(i).ok_or_else(|| {
            ChaosError::Cluster(format!("{}: no process to pause", self.nodes[i].spec.id))
        })?;
        if !self.managed {
            cleanup::foreign_paused(pid, true);
        }
        signal(pid, libc::SIGSTOP)?;
        self.nodes[i].paused = true;
        Ok(())
    }

    /// `SIGCONT` node `i`.
    pub fn resume(&mut self, i: usize) -> Result<(), ChaosError> {
        if let Some(pid) = self.pid(i) {
            signal(pid, libc::SIGCONT)?;
            if !self.managed {
                cleanup::foreign_paused(pid, false);
            }
        }
        self.nodes[i].paused = false;
        Ok(())
    }

    /// Makes sure every node runs and none is paused (the final heal).
    pub async fn revive_all(&mut self) -> Result<(), ChaosError> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused {
                self.resume(i)?;
            }
            let down = match &mut self.nodes[i].process {
                Process::Managed(m) => match m.child.as_mut() {
                    None => true,
                    Some(child) => matches!(child.try_wait(), Ok(Some(_))),
                },
                Process::Foreign(f) => f.restart.is_some(),
            };
            if down {
                if let Process::Managed(m) = &mut self.nodes[i].process {
                    m.child = None;
                }
                self.restart(i).await?;
            }
        }
        Ok(())
    }

    /// Nodes that exited on their own (not by a nemesis): crashes worth reporting.
    pub fn crashed(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for node in &mut self.nodes {
            if let Process::Managed(m) = &mut node.process {
                if let Some(child) = m.child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        out.push(format!(
                            "{} exited by itself ({status}); see {}",
                            node.spec.id,
                            m.log.display()
                        ));
                    }
                }
            }
        }
        out
    }

    /// Stops the harness's own nodes: SIGCONT, SIGTERM, and SIGKILL after 15 s.
    pub async fn stop(&mut self) {
        for node in &mut self.nodes {
            let Process::Managed(m) = &mut node.process else {
                continue;
            };
            if let Some(pid) = m.pid() {
                let _ = signal(pid, libc::SIGCONT);
                let _ = signal(pid, libc::SIGTERM);
            }
        }
        for node in &mut self.nodes {
            let Process::Managed(m) = &mut node.process else {
                continue;
            };
            if let Some(mut child) = m.child.take() {
                let pid = child.id();
                if tokio::time::timeout(Duration::from_secs(15), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                }
                if let Some(pid) = pid {
                    cleanup::child_gone(pid as i32);
                }
            }
        }
    }

    /// The data dir of node `i`, for the harness's own nodes.
    pub fn data_dir(&self, i: usize) -> Option<&Path> {
        match &self.nodes[i].process {
            Process::Managed(m) => Some(&m.data_dir),
            Process::Foreign(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_stay_in_their_slash_24() {
        let first: Ipv4Addr = "127.0.0.101".parse().unwrap();
        assert_eq!(
            node_address(first, 7000, 4).unwrap().to_string(),
            "127.0.0.105:7000"
        );
        assert!(node_address("127.0.0.250".parse().unwrap(), 7000, 6).is_err());
    }
}
