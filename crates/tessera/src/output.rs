//! What the CLI prints, written so that a closed pipe (`tessera cluster status | head`) ends the
//! output quietly instead of panicking, as `println!` does when stdout goes away.

use std::io::{ErrorKind, Write};

/// Writes `text` to stdout and empties it. A reader that has gone away is not an error: the
/// rest of the output is simply not wanted.
pub fn emit(text: &mut String) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
    text.clear();
    match written {
        Err(error) if error.kind() != ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}
