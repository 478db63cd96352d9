//! Criterion benches live in benches/*.rs; this crate has no code of its own.
