//! Causality tracking for Tessera cells.
//!
//! Every cell is versioned on its own with a dotted version vector set
//! ([`DvvSet`]), a faithful port of Riak's `dvvset.erl` (Almeida, Baquero et
//! al., "Scalable and Accurate Causality Tracking for Eventually Consistent
//! Stores"). A DVVSet keeps concurrent writes as siblings and lets a write that
//! carries the causal context of a read supersede exactly the versions that read
//! saw, while naming only the replicas (not the clients) as actors.
//!
//! The causal context handed to clients is a [`VersionVector`] (the
//! [`DvvSet::join`] of a clock), serialised into an opaque, URL- and header-safe
//! token by [`encode_context`] and parsed back, defensively, by
//! [`decode_context`].
//!
//! The crate is pure: no I/O, no clocks, no randomness, so that its laws can be
//! checked exhaustively by property tests.

mod context;
mod dvvset;
mod entry;
mod invalid;
mod version_vector;

pub use context::{
    decode_context, encode_context, ContextError, CONTEXT_FORMAT_VERSION, MAX_CONTEXT_TOKEN_LEN,
};
pub use dvvset::DvvSet;
pub use version_vector::VersionVector;

/// A per-actor event counter. Dots are `(actor, counter)` with counters starting at 1.
pub type Counter = u64;
