//! Shared set-up for the benchmarks: deterministic names, realistic index entries, and a
//! fast bulk fill of an index (setup, never measured).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use git2::{FileMode, Oid, Repository, Signature};
use mission_index::entry::IndexEntry;
use mission_index::layout::entry_path;
use mission_index::name::{collision_key, validate_name};
use mission_index::repo::{IndexConfig, IndexRepo, CONFIG_PATH, KEYS_DIR, MAIN_REF};

pub mod latency;

pub type Error = Box<dyn std::error::Error>;

/// splitmix64: a small deterministic generator, so every run uses the same names.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Names of 4 to 24 characters, spread over the layout's folders like real package names.
pub struct Names {
    pub rng: Rng,
    pub keys: HashSet<String>,
}

impl Names {
    pub fn fresh(&mut self) -> String {
        const FIRST: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
        const REST: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_-";
        loop {
            let len = 4 + self.rng.below(21);
            let mut name = String::with_capacity(len);
            name.push(FIRST[self.rng.below(FIRST.len())] as char);
            for _ in 1..len {
                name.push(REST[self.rng.below(REST.len())] as char);
            }
            if validate_name(&name).is_ok() && self.keys.insert(collision_key(&name)) {
                return name;
            }
        }
    }
}

pub fn config() -> Result<IndexConfig, Error> {
    Ok(serde_json::from_value(serde_json::json!({
        "dl": "https://bench.example/api/v1/missions/{name}/{version}/download",
        "api": "https://bench.example",
        "auth-required": false,
        "node": {"name": "bench", "key": "RWQbenchbenchbenchbenchbenchbenchbenchbenchbenchbenchbenc"},
    }))?)
}

/// An entry of realistic size (about 700 bytes: a full minisign signature, metadata).
pub fn entry(name: &str, vers: &str) -> Result<IndexEntry, Error> {
    Ok(serde_json::from_value(serde_json::json!({
        "v": 1,
        "name": name,
        "vers": vers,
        "deps": [{"name": "rust_toolchain_check", "req": "^1.0"}],
        "cksum": "3f".repeat(32),
        "sig": "untrusted comment: signature from minisign secret key\nRUQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3m6ivW5aYjaEIWmDhnFx3ToODHZ3hiAOXMvMCZQQfAAo=\ntrusted comment: mission=NAME version=VERSION sha256=3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f3f\nmhvqYzHLRPa8o3hRJ2EUn7tJl2sD0p+b0Ev6yk8Vz4JQ8Vb1eDMPWwFh2oYdQWn4Wz+GqzoVjAmZ8RmGA0nbBw==\n",
        "key": "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3",
        "yanked": false,
        "pubtime": "2026-11-25T14:00:00Z",
        "origin": "bench",
        "description": "Finds and fixes compiler errors in a Rust crate",
        "categories": ["build-automation"],
        "keywords": ["rust", "compiler"],
        "license": "MIT",
        "pricing": {"model": "free"},
        "step_types": ["command", "create_file"],
    }))?)
}

/// A folder being assembled for the bulk tree.
enum TreeNode {
    Dir(BTreeMap<String, TreeNode>),
    File(Oid),
}

fn insert(root: &mut BTreeMap<String, TreeNode>, path: &str, blob: Oid) -> Result<(), Error> {
    let mut dir = root;
    let mut parts = path.split('/').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            dir.insert(part.to_owned(), TreeNode::File(blob));
            return Ok(());
        }
        let child = dir
            .entry(part.to_owned())
            .or_insert_with(|| TreeNode::Dir(BTreeMap::new()));
        dir = match child {
            TreeNode::Dir(d) => d,
            TreeNode::File(_) => return Err(format!("`{path}` runs through a file").into()),
        };
    }
    Ok(())
}

fn write_tree(repo: &Repository, dir: &BTreeMap<String, TreeNode>) -> Result<Oid, Error> {
    let mut builder = repo.treebuilder(None)?;
    for (name, node) in dir {
        match node {
            TreeNode::File(oid) => builder.insert(name, *oid, FileMode::Blob.into())?,
            TreeNode::Dir(d) => {
                builder.insert(name, write_tree(repo, d)?, FileMode::Tree.into())?
            }
        };
    }
    Ok(builder.write()?)
}

/// Creates an index at `path` holding `n` names (one version each) in one commit on top of
/// the first one, written as a single pack. Returns the names.
pub fn fill(path: &Path, n: usize, names: &mut Names) -> Result<Vec<String>, Error> {
    drop(IndexRepo::init(
        path,
        &config()?,
        "bench",
        "bench@localhost",
    )?);
    let repo = Repository::open_bare(path)?;
    let odb = repo.odb()?;
    // Objects go to memory first, then into one pack: 200,000 loose files would measure the
    // file system, not the index.
    let mempack = odb.add_new_mempack_backend(1000)?;
    let head = repo.find_reference(MAIN_REF)?.peel_to_commit()?;
    let config_blob = head
        .tree()?
        .get_name(CONFIG_PATH)
        .ok_or("no config.json after init")?
        .id();
    let mut root = BTreeMap::new();
    insert(&mut root, CONFIG_PATH, config_blob)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = names.fresh();
        let line = format!("{}\n", entry(&name, "1.0.0")?.to_line());
        insert(&mut root, &entry_path(&name)?, repo.blob(line.as_bytes())?)?;
        let key = format!("{KEYS_DIR}/{}", entry_path(&collision_key(&name))?);
        insert(&mut root, &key, repo.blob(format!("{name}\n").as_bytes())?)?;
        out.push(name);
    }
    let tree = repo.find_tree(write_tree(&repo, &root)?)?;
    let sig = Signature::now("bench", "bench@localhost")?;
    let commit = repo.commit(
        None,
        &sig,
        &sig,
        &format!("Fill with {n} names"),
        &tree,
        &[&head],
    )?;
    let mut pack = git2::Buf::new();
    mempack.dump(&repo, &mut pack)?;
    let mut writer = odb.packwriter()?;
    writer.write_all(&pack)?;
    writer.commit()?;
    mempack.reset()?;
    repo.reference_matching(MAIN_REF, commit, true, head.id(), "bulk fill")?;
    Ok(out)
}

/// A server process, killed when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The release `mission-node` of this workspace.
pub fn node_bin() -> Result<PathBuf, Error> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/mission-node");
    if !bin.is_file() {
        return Err(
            "target/release/mission-node is missing: cargo build --release -p mission-node".into(),
        );
    }
    Ok(bin)
}

/// The release `mission` client of this workspace.
pub fn mission_bin() -> Result<PathBuf, Error> {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/mission");
    if !bin.is_file() {
        return Err(
            "target/release/mission is missing: cargo build --release -p mission-cli".into(),
        );
    }
    Ok(bin)
}

/// `mission-node admin user add bench --scopes SCOPES` on `data`: the token.
pub fn add_user(data: &Path, scopes: &str) -> Result<String, Error> {
    let out = Command::new(node_bin()?)
        .arg("--data")
        .arg(data)
        .args(["admin", "user", "add", "bench", "--scopes", scopes])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "admin user add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// "N cores, MODEL" from `/proc/cpuinfo` and the available parallelism.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores, {cpu}")
}

/// The 1-minute load average, from `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// Starts `mission-node serve` on `data` at a free loopback port; returns it and its URL.
pub fn start_node(data: &Path) -> Result<(Server, String), Error> {
    let mut child = Command::new(node_bin()?)
        .arg("--data")
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "serve"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("mission-node listening on ")
        .ok_or(format!("unexpected first line from the node: {line:?}"))?
        .to_owned();
    Ok((Server(child), url))
}
