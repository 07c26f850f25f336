//! The `tessera` command line as a user meets it, beyond `serve`.

use std::process::{Command, Stdio};

/// A reader that goes away (`tessera config | head -1`) ends the output quietly: exit 0, no
/// panic. The pipe is closed before the command writes, so its first write fails.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let mut child = Command::new(tessera_tests::binary::tessera_bin())
        .arg("config")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tessera config");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait for tessera config");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
}

/// `tessera config` prints the effective configuration, which a user can feed back with
/// `--config`.
#[test]
fn config_prints_the_effective_settings() {
    let output = Command::new(tessera_tests::binary::tessera_bin())
        .args(["config", "--sync-writes", "true"])
        .output()
        .expect("run tessera config");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("[storage]"), "{text}");
    assert!(text.contains("sync_writes = true"), "{text}");
    assert!(text.contains("memtable_mb = 64"), "{text}");
}
