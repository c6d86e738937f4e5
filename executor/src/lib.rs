//! # mission-executor: runs one mission
//!
//! Planning comes first: [`plan`] turns a validated mission into waves of steps that may run
//! at the same time (RustChain runs steps in topological order of `depends_on`; we run each
//! wave in parallel up to `config.max_parallel_steps`). The sandboxed runner (bubblewrap and
//! a built-in backend) is built by the executor issue on top of this plan.

pub mod plan;
pub mod sandbox;
