//! The probing engine the store tests run on is held to the engine contract, through the
//! conformance suite that other crates reach with the `test-support` feature.

mod common;

use common::Probe;

#[test]
fn the_probing_engine_conforms() {
    tessera_storage::conformance::run_all(&mut Probe::default);
}
