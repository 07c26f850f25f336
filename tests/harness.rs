//! Checks the harness itself against the real binary: start, the raw client,
//! restart on the same address, SIGTERM and SIGKILL. If these fail, every
//! other test's failure is suspect.

use tessera_tests::{raw, TestNode};

#[tokio::test]
async fn lifecycle_and_raw_client() {
    let mut node = TestNode::start_default();
    let addr = node.addr();
    assert!(addr.ip().is_loopback());
    assert!(node.is_running());
    node.client().health().await.expect(200);
    let r = raw::request(addr, "GET", "/health", &[], b"").await;
    r.expect(200);
    assert_eq!(r.json()["status"], "ok");
    assert_eq!(node.url("/health"), format!("http://{addr}/health"));

    // SIGKILL, then restart on the same address and data dir.
    node.kill9();
    assert!(!node.is_running());
    node.restart();
    assert_eq!(node.addr(), addr);
    node.client().health().await.expect(200);

    // SIGTERM is a clean exit.
    let status = node.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM: {status}\n{}",
        node.stderr_tail(20)
    );
    node.restart();
    node.client().health().await.expect(200);
    assert!(node.data_dir().exists());
    let pid = node.pid().expect("running");
    drop(node);
    // Drop SIGKILLed and reaped the child: the pid no longer exists.
    // SAFETY: kill(pid, 0) only checks for existence.
    let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    assert!(!alive, "Drop left process {pid} running");
}
