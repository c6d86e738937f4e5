//! Benchmarks and load tests for Mission Registry. Each benchmark is a binary in
//! `src/bin/`, run in release mode (`cargo run --release -p mission-bench --bin NAME`);
//! results are recorded in `docs/benchmarks.md`. Nothing here runs under `cargo test`.
