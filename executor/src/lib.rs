//! # mission-executor: runs one mission
//!
//! A run goes: [`policy::grant`] decides what the mission may do (its package permissions
//! intersected with the user's policy) and refuses it up front when its steps need more;
//! [`engine::run`] then runs the steps in dependency order, independent ones in parallel,
//! each through a handler in [`steps`] that reads RustChain's parameters and works only
//! inside the work folder, through the [`sandbox`] and through the network guard; the result
//! is a [`report::Report`]. [`plan`] groups steps into waves (for display and planning; the
//! engine itself feeds a ready queue so a step starts as soon as its dependencies end).

pub mod engine;
pub mod plan;
pub mod policy;
pub mod report;
pub mod sandbox;
pub mod steps;
pub mod toolchains;
