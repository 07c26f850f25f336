//! Finds the `tessera` binary under test.
//!
//! `TESSERA_BIN` wins, so CI or a developer can point at any build. Otherwise
//! the test executable lives in `target/debug/deps/`, and the binary that
//! `cargo build --bin tessera` produced sits next to `deps/`, so walking up
//! from the test executable finds it whatever `CARGO_TARGET_DIR` is.

use std::path::PathBuf;

/// Path of the `tessera` executable; panics with how to build it when absent.
pub fn tessera_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TESSERA_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "TESSERA_BIN={} is not a file; unset it or point it at a built `tessera`",
            p.display()
        );
        return p;
    }
    let exe = std::env::current_exe().expect("current_exe of the test binary");
    let name = format!("tessera{}", std::env::consts::EXE_SUFFIX);
    for dir in exe.ancestors().skip(1) {
        let candidate = dir.join(&name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "no `tessera` binary found above {}; run `cargo build --bin tessera` first \
         (`make test` does it), or set TESSERA_BIN",
        exe.display()
    );
}
