//! Carbon League's game rules, pure: no I/O, no async, no database or Redis types.
//!
//! Time and randomness come in as arguments, so every rule can be tested with plain values
//! and proptest. The server (and later the load generator) call these functions; nothing here
//! knows how it is stored or transported.

pub mod catalogue;
pub mod challenge;
pub mod join_code;
pub mod nickname;
pub mod ranking;
pub mod scoring;
pub mod season;
pub mod station;
pub mod verification;
pub mod window;
