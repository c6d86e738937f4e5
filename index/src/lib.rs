//! # mission-index: the formats and rules every Mission Registry part shares
//!
//! The node (`mission-node`) and the client (`mission`) never define a format of their own:
//! everything that crosses a wire or lands on disk is defined here, once.
//!
//! ## What is a mission?
//!
//! A *mission* is a RustChain workflow: a YAML (or JSON) file with a `name`, a `version` and
//! a list of `steps` (create a file, run a command, call an LLM, ...). [`mission`] parses
//! and validates a mission exactly as RustChain v0.1.0 does, so a file we accept runs under
//! RustChain unchanged, and every error names the file, the field path and the line.
//!
//! ## What is a package?
//!
//! A *package* is a folder whose `mission.yaml` also carries a `package:` block (name,
//! version, licence, dependencies, pricing, permissions; RustChain ignores it). [`manifest`]
//! holds its types and rules, [`name`] the crates.io-style name rules, and [`lint`] checks
//! that the declared permissions cover what the steps actually do. [`package`] puts the
//! three together, as `mission validate` and the node's publish pipeline both judge a package.
//!
//! ## From a folder to a signed archive
//!
//! [`archive`] builds the canonical `.mission` file (a gzip'd tar that is byte-identical for
//! the same tree, whatever the disk says about order, times, modes or owners) and unpacks
//! one safely, refusing anything the builder would not produce. [`signing`] signs archives
//! with minisign keys; the trusted comment binds the signature to the mission's name,
//! version and checksum.
//!
//! ## The index
//!
//! Like crates.io, every node keeps an index in git: one file per mission name
//! ([`layout`]) holding one JSON line per published version ([`entry`]). [`repo`] reads and
//! writes that git repository, [`snapshot`] signs its head so clients can detect rollback
//! and freeze attacks, [`certification`] holds the signed certification lines, and
//! [`rotation`] the signed statements that hand a mission over to a new author key.
//!
//! ## Installing
//!
//! [`resolve`] picks versions (highest compatible, never yanked unless locked) over any
//! [`resolve::IndexReader`], and [`lockfile`] reads and writes `missions.lock`.
//!
//! [`atomic_file`] replaces a file whole (through a temporary file and a rename), for the
//! node's snapshot and every file the client keeps.

pub mod archive;
pub mod archive_signature;
pub mod atomic_file;
pub mod certification;
pub mod diagnostic;
pub mod entry;
pub mod index_file_signature;
mod inflate;
pub mod layout;
pub mod lint;
pub mod lockfile;
pub mod manifest;
pub mod mission;
pub mod name;
pub mod package;
pub mod repo;
pub mod resolve;
pub mod rotation;
pub mod signing;
pub mod snapshot;
pub mod wire;
