//! One `tessera serve` child process, owned by a test.
//!
//! [`TestNode::start`] spawns the binary with `--listen 127.0.0.1:0` and a
//! fresh temporary data directory, and reads the one line the server prints
//! on stdout once it listens (`tessera listening on http://IP:PORT`) to learn
//! the port. Stderr (the logs) goes to `stderr.log` in the node's temporary
//! directory; when a test panics, the tail of that file is printed so the
//! failure shows what the server said.
//!
//! After the first start the node keeps its address: [`TestNode::restart`]
//! listens on the same IP:PORT with the same data directory, as a real
//! restarted node would, so multi-node tests can keep their peer lists.
//!
//! `Drop` SIGKILLs the process, so a panicking test never leaves a server
//! running. All methods block (they wait for a process); calling them from an
//! async test is fine because the server is another process.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::binary::tessera_bin;
use crate::client::Client;
use crate::DEADLINE;

/// The prefix of the single stdout line the server prints once it listens.
const LISTENING_PREFIX: &str = "tessera listening on http://";

/// How a node is started. Every field maps to one CLI flag.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// `--node-id`.
    pub node_id: String,
    /// `--data-dir`; `None` means a fresh directory inside the node's temp dir.
    pub data_dir: Option<PathBuf>,
    /// `--config FILE`.
    pub config: Option<PathBuf>,
    /// `--listen`; `None` means `127.0.0.1:0` (a free port).
    pub listen: Option<String>,
    /// `--max-value-bytes`.
    pub max_value_bytes: Option<u64>,
    /// `--max-batch-bytes`.
    pub max_batch_bytes: Option<u64>,
    /// `--max-siblings`.
    pub max_siblings: Option<u64>,
    /// `--sync-writes`.
    pub sync_writes: bool,
    /// `--request-timeout-ms`.
    pub request_timeout_ms: Option<u64>,
    /// Further arguments appended after `serve ...`.
    pub extra_args: Vec<String>,
    /// Environment variables for the child (after the harness cleared every
    /// inherited `TESSERA_*` variable, so the caller's shell cannot leak in).
    pub env: Vec<(String, String)>,
    /// How long to wait for the listening line.
    pub start_deadline: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            node_id: "n1".to_string(),
            data_dir: None,
            config: None,
            listen: None,
            max_value_bytes: None,
            max_batch_bytes: None,
            max_siblings: None,
            sync_writes: false,
            request_timeout_ms: None,
            extra_args: Vec::new(),
            env: Vec::new(),
            start_deadline: DEADLINE,
        }
    }
}

impl NodeOptions {
    pub fn node_id(mut self, id: &str) -> Self {
        self.node_id = id.to_string();
        self
    }
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }
    pub fn max_value_bytes(mut self, n: u64) -> Self {
        self.max_value_bytes = Some(n);
        self
    }
    pub fn max_batch_bytes(mut self, n: u64) -> Self {
        self.max_batch_bytes = Some(n);
        self
    }
    pub fn max_siblings(mut self, n: u64) -> Self {
        self.max_siblings = Some(n);
        self
    }
    pub fn sync_writes(mut self) -> Self {
        self.sync_writes = true;
        self
    }
    pub fn request_timeout_ms(mut self, n: u64) -> Self {
        self.request_timeout_ms = Some(n);
        self
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.extra_args.push(a.to_string());
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
}

/// A running (or stopped) `tessera serve` process.
pub struct TestNode {
    opts: NodeOptions,
    /// Holds the logs and, unless the caller gave one, the data directory.
    root: TempDir,
    data_dir: PathBuf,
    addr: SocketAddr,
    child: Option<Child>,
    client: Client,
}

impl TestNode {
    /// Starts a node and waits until it listens. Panics (with the server's
    /// stderr) when it exits or stays silent past `opts.start_deadline`.
    pub fn start(opts: NodeOptions) -> TestNode {
        let root = tempfile::Builder::new()
            .prefix("tessera-test-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = match &opts.data_dir {
            Some(d) => d.clone(),
            None => root.path().join("data"),
        };
        let listen = opts
            .listen
            .clone()
            .unwrap_or_else(|| "127.0.0.1:0".to_string());
        let (child, addr) = match spawn(&opts, &data_dir, &listen, root.path()) {
            Ok(v) => v,
            Err(e) => panic!("{e}\n{}", log_tail(&root.path().join("stderr.log"), 60)),
        };
        TestNode {
            client: Client::new(addr),
            opts,
            root,
            data_dir,
            addr,
            child: Some(child),
        }
    }

    /// Starts a node with default options.
    pub fn start_default() -> TestNode {
        TestNode::start(NodeOptions::default())
    }

    /// `http://IP:PORT` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The address the node listens on (kept across restarts).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An API client for this node. After [`restart`](Self::restart) call it
    /// again: the old client's pooled connections point at the dead process.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The data directory the node uses.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The node's temporary directory (holds `stderr.log`, and `data/` unless
    /// a data directory was given).
    pub fn root_dir(&self) -> &Path {
        self.root.path()
    }

    /// Path of the file that receives the server's stderr.
    pub fn stderr_path(&self) -> PathBuf {
        self.root.path().join("stderr.log")
    }

    /// The last `lines` lines the server wrote to stderr.
    pub fn stderr_tail(&self, lines: usize) -> String {
        log_tail(&self.stderr_path(), lines)
    }

    /// The child's pid, when running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// True when the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL, then reap. A crash with no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP: the process freezes with its sockets open, like a long GC pause.
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`TestNode::pause`].
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&mut self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("signal: node is not running");
        // SAFETY: plain kill(2) on our own child's pid, not yet reaped, so not reused.
        unsafe {
            libc::kill(child.id() as libc::pid_t, signal);
        }
    }

    /// SIGTERM, then wait (up to the deadline) and return the exit status.
    /// Panics if the process does not exit in time (after SIGKILLing it).
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("terminate: node is not running");
        let pid = c.id() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child's pid; the child is not reaped
        // yet, so the pid cannot have been reused.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            match c.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if start.elapsed() < DEADLINE => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!(
                        "node did not exit within {DEADLINE:?} of SIGTERM\n{}",
                        self.stderr_tail(60)
                    );
                }
            }
        }
    }

    /// Starts the process again on the same data directory and the same
    /// IP:PORT. Kills it first if it still runs. Retries a few times if the
    /// new process exits early (e.g. the port is briefly not bindable).
    pub fn restart(&mut self) {
        self.kill9();
        let listen = self.addr.to_string();
        let mut last_err = String::new();
        for _ in 0..20 {
            match spawn(&self.opts, &self.data_dir, &listen, self.root.path()) {
                Ok((child, addr)) => {
                    assert_eq!(addr, self.addr, "restarted node listens elsewhere");
                    self.child = Some(child);
                    self.client = Client::new(addr);
                    return;
                }
                Err(e) => {
                    last_err = e;
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
        panic!("restart failed: {last_err}\n{}", self.stderr_tail(60));
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- tessera node {} ({}) stderr tail ----\n{}\n---- end of stderr ----",
                self.opts.node_id,
                self.addr,
                self.stderr_tail(60)
            );
        }
        self.kill9();
    }
}

/// Spawns `tessera serve` and waits for its listening line.
fn spawn(
    opts: &NodeOptions,
    data_dir: &Path,
    listen: &str,
    log_dir: &Path,
) -> Result<(Child, SocketAddr), String> {
    let bin = tessera_bin();
    let stderr = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join("stderr.log"))
        .map_err(|e| format!("open stderr.log: {e}"))?;
    let mut cmd = Command::new(&bin);
    cmd.arg("serve")
        .arg("--listen")
        .arg(listen)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--node-id")
        .arg(&opts.node_id);
    if let Some(c) = &opts.config {
        cmd.arg("--config").arg(c);
    }
    for (flag, v) in [
        ("--max-value-bytes", opts.max_value_bytes),
        ("--max-batch-bytes", opts.max_batch_bytes),
        ("--max-siblings", opts.max_siblings),
        ("--request-timeout-ms", opts.request_timeout_ms),
    ] {
        if let Some(v) = v {
            cmd.arg(flag).arg(v.to_string());
        }
    }
    if opts.sync_writes {
        cmd.arg("--sync-writes");
    }
    cmd.args(&opts.extra_args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TESSERA_") {
            cmd.env_remove(&k);
        }
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr));
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;

    // A thread reads stdout for the whole life of the process: it hands the
    // listening line over, and then keeps draining so the server never
    // blocks (or dies of SIGPIPE) writing to a full pipe.
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stdout_log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_dir.join("stdout.log"))
        .map_err(|e| format!("open stdout.log: {e}"))?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(stdout_log, "{line}");
            if line.starts_with(LISTENING_PREFIX) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(line);
                }
            }
        }
    });

    let start = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let hostport = line[LISTENING_PREFIX.len()..].trim().trim_end_matches('/');
                return match hostport.parse::<SocketAddr>() {
                    Ok(addr) => Ok((child, addr)),
                    Err(e) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        Err(format!("cannot parse listening line {line:?}: {e}"))
                    }
                };
            }
            Err(mpsc::RecvTimeoutError::Timeout) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "tessera serve (listen {listen}) exited with {status} before listening"
                    ));
                }
                if start.elapsed() > opts.start_deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "tessera serve (listen {listen}) printed no `{LISTENING_PREFIX}...` line \
                         within {:?}",
                        opts.start_deadline
                    ));
                }
                // After a disconnect, recv_timeout returns at once: pace the loop.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The last `lines` lines of a log file (reads at most the last 64 KiB).
fn log_tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
