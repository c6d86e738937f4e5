//! `mission install` of a mission with 50 transitive dependencies, against plain parallel
//! HTTP downloads of the same files.
//!
//! Starts a release `mission-node` on a fresh data folder, publishes 51 signed missions over
//! HTTP (a tree of 31 with branching 3, a chain of 20 below it, and a few diamonds; archives
//! of 2 to 40 KiB), then, for each round, times the real release `mission` binary:
//!
//! - **cold**: `mission install bench_app` with an empty `MISSION_HOME` (no cache, no pinned
//!   keys) into a fresh project folder;
//! - **warm**: the same again with the cache the cold install left, into a fresh project
//!   folder (the index files are revalidated with ETags, the archives come from the cache);
//! - **locked**: `mission install --locked` with that cache and the lock the warm install
//!   wrote, into a fresh project folder; the node's `http_requests_total` (from `/metrics`,
//!   not counting `/metrics` itself) must not move, or the benchmark fails;
//! - **plain**: the lower bound, in this process: the 51 index files and the 51 archives
//!   fetched with `ureq` by as many threads as `mission` has requests in flight at most
//!   (`PARALLEL_REQUESTS`, 8, index files and archives together), every URL known up front,
//!   each body written to a file;
//! - **plain + checks**: the same downloads, plus the work any installer must do with the
//!   bytes, also in this process with every URL known up front: each index file's
//!   signature by the node prepared (for the head of the snapshot, fetched before timing)
//!   and the file parsed, each archive's SHA-256 compared with its entry, its signature
//!   prepared, all signatures verified (in one batch for the archives, as `mission` batches
//!   them, and one for the index files), and each archive unpacked into its own folder. No
//!   resolution, cache, lockfile or trust store, and no process start.
//! - **curl --parallel**: the same 102 downloads by a plain downloader program, one `curl
//!   --parallel --parallel-max 8` process (when curl 7.66 or later is installed): like
//!   `mission install`, and unlike the two above, it pays for starting a process.
//!
//! The order inside a round is plain, plain + checks, curl, cold, warm, locked, so machine
//! noise hits all alike. Prints each round, the medians, and the ratios to the plain median
//! (goal: cold <= 2x), to the plain + checks median and to the curl median.
//!
//! `--rtt-ms N` puts a [latency relay](mission_bench::latency) between every client and
//! the node (and makes the node's `dl` template point through it): N ms round trips, as
//! from a user to a registry across a network instead of on the same machine. On the
//! loopback alone (the default, 0) the cost of every request is CPU, which the client and
//! the node share on a small machine; across a network it is mostly waiting, and how many
//! requests must wait for one another matters more.
//!
//! `--readme-bytes MIN..MAX` sets the size range of each mission's README of random hex
//! (the default, 4096..81920, makes archives of 2 to 40 KiB; the library's real missions
//! are 2 to 6 KiB).
//!
//! ```text
//! cargo build --release -p mission-node -p mission-cli
//! cargo run --release -p mission-bench --bin install_deps -- [--rounds 7] [--parallel 8] [--rtt-ms 0] [--readme-bytes 4096..81920] [--baseline-client PATH]
//! ```
//!
//! `--baseline-client PATH` also times, in every round right after the cold install, a
//! cold install by another `mission` binary (say, a copy built before a change): a
//! comparison within one run, as this noisy machine needs.
//!
//! `--hold SECONDS` publishes, prints the node's URL and a client home, and keeps the node
//! up that long without measuring: for profiling an install by hand.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mission_bench::latency::LatencyRelay;
use mission_bench::{add_user, load_average, machine, mission_bin, start_node, Error, Rng, Server};
use mission_index::archive::{self, ArchiveLimits, SourceFile};
use mission_index::archive_signature::{self, ArchiveSignature};
use mission_index::entry::IndexEntry;
use mission_index::index_file_signature::{self, IndexFileSignature};
use mission_index::layout::entry_path;
use mission_index::signing::{self, PublicKey, SecretKey};
use mission_index::snapshot::Snapshot;
use mission_index::wire::{PublishBody, PublishMetadata};

/// How many missions: the root and its 50 transitive dependencies.
const MISSIONS: usize = 51;

struct Args {
    rounds: usize,
    parallel: usize,
    /// Round-trip time added between clients and the node, in ms (0: none).
    rtt_ms: u64,
    /// The range of README sizes, in bytes.
    readme: std::ops::Range<usize>,
    /// Keep the node up this many seconds after publishing, printing how to reach it (for
    /// profiling `mission install` by hand), instead of measuring.
    hold: Option<u64>,
    /// Another `mission` binary whose cold install is timed in every round too, right after
    /// this one's (a same-run comparison of a change).
    baseline: Option<PathBuf>,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = Args {
        rounds: 7,
        parallel: 8,
        rtt_ms: 0,
        readme: 4096..81920,
        hold: None,
        baseline: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rounds" => args.rounds = value.parse()?,
            "--parallel" => args.parallel = value.parse()?,
            "--hold" => args.hold = Some(value.parse()?),
            "--baseline-client" => {
                let path = PathBuf::from(value);
                if !path.is_file() {
                    return Err(
                        format!("--baseline-client: {} is not a file", path.display()).into(),
                    );
                }
                args.baseline = Some(path);
            }
            "--rtt-ms" => args.rtt_ms = value.parse()?,
            "--readme-bytes" => {
                let (min, max) = value
                    .split_once("..")
                    .ok_or("--readme-bytes takes MIN..MAX")?;
                args.readme = min.parse()?..max.parse()?;
                if args.readme.is_empty() {
                    return Err("--readme-bytes: MIN must be below MAX".into());
                }
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    if args.rounds == 0 || args.parallel == 0 {
        return Err("--rounds and --parallel must be at least 1".into());
    }
    Ok(args)
}

fn name(i: usize) -> String {
    if i == 0 {
        "bench_app".to_owned()
    } else {
        format!("bench_dep_{i:02}")
    }
}

/// The dependencies of mission `i`: a tree of 0..=30 with branching 3, a chain 30 -> 31 ->
/// ... -> 50, and diamonds (4, 11, 18 and 25 also need 50).
fn deps(i: usize) -> Vec<usize> {
    let mut out: Vec<usize> = (1..MISSIONS)
        .filter(|&c| {
            if c <= 30 {
                (c - 1) / 3 == i
            } else {
                c - 1 == i
            }
        })
        .collect();
    if [4, 11, 18, 25].contains(&i) {
        out.push(MISSIONS - 1);
    }
    out
}

/// The canonical archive of mission `i`, with a README of `readme` pseudo-random hex bytes.
fn build(i: usize, readme: usize, rng: &mut Rng) -> Result<Vec<u8>, Error> {
    let n = name(i);
    let dep_lines: Vec<String> = deps(i)
        .into_iter()
        .map(|d| format!("{}: \"^1\"", name(d)))
        .collect();
    let deps_yaml = if dep_lines.is_empty() {
        String::new()
    } else {
        format!("  dependencies: {{ {} }}\n", dep_lines.join(", "))
    };
    let yaml = format!(
        "version: '1.0'\nname: {n}\nsteps:\n  - id: hello\n    name: Say hello\n    step_type: command\n    parameters: {{command: echo, args: [hi]}}\npackage:\n  name: {n}\n  version: 1.0.0\n  description: Benchmark mission {i}\n  license: MIT\n{deps_yaml}  permissions: {{commands: [echo]}}\n"
    );
    let mut text = format!("# {n}\n");
    while text.len() < readme {
        text.push_str(&format!("{:016x}\n", rng.next_u64()));
    }
    let files = vec![
        SourceFile {
            path: "mission.yaml".into(),
            executable: false,
            data: yaml.into_bytes(),
        },
        SourceFile {
            path: "README.md".into(),
            executable: false,
            data: text.into_bytes(),
        },
    ];
    Ok(archive::build_archive_from_files(
        files,
        &ArchiveLimits::default(),
    )?)
}

fn publish(
    agent: &ureq::Agent,
    url: &str,
    token: &str,
    public: &PublicKey,
    secret: &SecretKey,
    name: &str,
    bytes: Vec<u8>,
) -> Result<(), Error> {
    let sig = signing::sign_archive(secret, public, &bytes, name, "1.0.0")?;
    let body = PublishBody {
        metadata: PublishMetadata {
            name: name.to_owned(),
            vers: "1.0.0".into(),
            cksum: archive::cksum(&bytes),
            key: public.to_base64(),
            sig,
        },
        archive: bytes,
    }
    .encode();
    let mut response = agent
        .post(format!("{url}/api/v1/missions/publish"))
        .header("Authorization", format!("Bearer {token}"))
        .send(&body[..])
        .map_err(|e| format!("publishing {name}: {e}"))?;
    if response.status() != 200 {
        let text = response.body_mut().read_to_string().unwrap_or_default();
        return Err(format!("publishing {name}: {} {text}", response.status()).into());
    }
    Ok(())
}

/// A `mission` user: its home (config, trust store, cache).
fn new_home(dir: &Path, url: &str) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "[registry]\ndefault = \"bench\"\n\n[registries.bench]\nindex = \"sparse+{url}/index/\"\n"
        ),
    )?;
    Ok(dir.to_owned())
}

/// Runs `mission ARGS` in `project` with `home`; returns the wall time and stderr.
fn mission(home: &Path, project: &Path, args: &[&str]) -> Result<(Duration, String), Error> {
    run_client(&mission_bin()?, home, project, args)
}

/// Runs the `mission` binary `bin` with ARGS in `project` with `home`; returns the wall time
/// and stderr.
fn run_client(
    bin: &Path,
    home: &Path,
    project: &Path,
    args: &[&str],
) -> Result<(Duration, String), Error> {
    std::fs::create_dir_all(project)?;
    let started = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .current_dir(project)
        .env("MISSION_HOME", home)
        .env_remove("RUST_LOG")
        .env_remove("MISSION_TOKEN")
        .output()?;
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(format!(
            "mission {args:?} failed: {}{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
        .into());
    }
    Ok((elapsed, stderr))
}

/// A fresh HTTP agent keeping `parallel` connections (a new process would start without
/// pooled connections too).
fn fresh_agent(parallel: usize) -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_idle_connections_per_host(parallel)
        .build()
        .into()
}

/// The whole body of a GET of `url`.
fn get_body(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>, String> {
    agent
        .get(url)
        .call()
        .map_err(|e| e.to_string())?
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .map_err(|e| e.to_string())
}

/// The plain lower bound: every URL fetched by `parallel` threads over one fresh agent
/// (a new process would start without pooled connections too), each body written to a
/// file in `out`. Returns the wall time and the bytes fetched.
fn plain(urls: &[String], parallel: usize, out: &Path) -> Result<(Duration, u64), Error> {
    std::fs::create_dir_all(out)?;
    let started = Instant::now();
    let agent = fresh_agent(parallel);
    let queue = Mutex::new(urls.iter().enumerate().collect::<Vec<_>>());
    let failures = Mutex::new(Vec::new());
    let bytes = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some((i, url)) = next else { break };
                let result = get_body(&agent, url).and_then(|body| {
                    bytes.fetch_add(body.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    std::fs::write(out.join(i.to_string()), body).map_err(|e| e.to_string())
                });
                if let Err(e) = result {
                    if let Ok(mut f) = failures.lock() {
                        f.push(format!("{url}: {e}"));
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let failures = failures
        .into_inner()
        .map_err(|_| "a download thread panicked")?;
    if !failures.is_empty() {
        return Err(format!("plain downloads failed: {}", failures.join("; ")).into());
    }
    Ok((elapsed, bytes.into_inner()))
}

/// Whether `curl` (7.66 or later, for `--parallel`) can be run here.
fn curl_available() -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
        && Command::new("curl")
            .args(["--parallel", "--version"])
            .output()
            .is_ok_and(|out| out.status.success())
}

/// The same downloads as [`plain`] by a plain downloader *program*: one `curl --parallel
/// --parallel-max PARALLEL` process for every URL, each body written to a file in `out`.
/// Unlike [`plain`], it pays for starting a process, as `mission install` does. Returns
/// the wall time, from spawning curl to its exit.
fn curl_plain(urls: &[String], parallel: usize, out: &Path) -> Result<Duration, Error> {
    std::fs::create_dir_all(out)?;
    // A curl config file: one `url` and `output` pair per download.
    let mut config = String::new();
    for (i, url) in urls.iter().enumerate() {
        let file = out.join(i.to_string());
        config.push_str(&format!(
            "url = \"{url}\"\noutput = \"{}\"\n",
            file.display()
        ));
    }
    let config_path = out.join("curl.config");
    std::fs::write(&config_path, config)?;
    let started = Instant::now();
    // `--no-progress-meter`: with --parallel, --silent alone still draws one.
    let run = Command::new("curl")
        .args([
            "--no-progress-meter",
            "--fail",
            "--parallel",
            "--parallel-max",
        ])
        .arg(parallel.to_string())
        .arg("--config")
        .arg(&config_path)
        .stdout(std::process::Stdio::null())
        .output()?;
    let elapsed = started.elapsed();
    if !run.status.success() {
        return Err(format!(
            "curl --parallel failed: {}: {}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        )
        .into());
    }
    let fetched = (0..urls.len())
        .filter(|i| out.join(i.to_string()).is_file())
        .count();
    if fetched != urls.len() {
        return Err(format!("curl fetched {fetched} of {} files", urls.len()).into());
    }
    Ok(elapsed)
}

/// The plain download with the checks and unpacking any installer needs (see the module
/// documentation): `pairs` holds each mission's index-file URL and archive URL. Returns
/// the wall time.
fn plain_checked(
    pairs: &[(String, String)],
    node: &Snapshot,
    parallel: usize,
    out: &Path,
) -> Result<Duration, Error> {
    std::fs::create_dir_all(out)?;
    let node_key = PublicKey::parse(&node.key)?;
    let started = Instant::now();
    let agent = fresh_agent(parallel);
    let get = |url: &str| get_body(&agent, url).map_err(|e| format!("{url}: {e}"));
    // One mission: its entry (its index file's signature by the node prepared), its archive
    // checked and unpacked, its signature prepared.
    let one = |(index_url, archive_url): &(String, String)| -> Result<
        (IndexFileSignature, ArchiveSignature),
        String,
    > {
        let mut reply = agent
            .get(index_url)
            .call()
            .map_err(|e| format!("{index_url}: {e}"))?;
        let header = reply
            .headers()
            .get(index_file_signature::HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = reply
            .body_mut()
            .read_to_vec()
            .map_err(|e| format!("{index_url}: {e}"))?;
        let path = index_url
            .split_once("/index/")
            .map(|(_, path)| path)
            .ok_or(format!("{index_url} is not an index URL"))?;
        let file_signature = IndexFileSignature::prepare(
            &node_key,
            header.as_deref(),
            &body,
            &node.node,
            &node.head,
            path,
        )
        .map_err(|e| format!("{index_url}: {e}"))?;
        let text = String::from_utf8(body).map_err(|e| e.to_string())?;
        let entry: IndexEntry = IndexEntry::parse_file(&text)
            .map_err(|e| e.to_string())?
            .pop()
            .ok_or(format!("{index_url} has no entry"))?;
        let bytes = get(archive_url)?;
        let sha256 = archive::cksum(&bytes);
        if sha256 != entry.cksum {
            return Err(format!("{archive_url}: checksum mismatch"));
        }
        let key = PublicKey::parse(&entry.key).map_err(|e| e.to_string())?;
        let signature =
            ArchiveSignature::prepare(&key, &entry.sig, &bytes, &sha256, &entry.name, &entry.vers)
                .map_err(|e| e.to_string())?;
        archive::unpack_archive_to_new_dir(
            &bytes,
            &out.join(&entry.name),
            &ArchiveLimits::default(),
        )
        .map_err(|e| e.to_string())?;
        Ok((file_signature, signature))
    };
    let queue = Mutex::new(pairs.iter().collect::<Vec<_>>());
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..parallel {
            scope.spawn(|| loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(pair) = next else { break };
                let result = one(pair);
                if let Ok(mut r) = results.lock() {
                    r.push(result);
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| "a download thread panicked")?;
    let (mut files, mut signatures) = (Vec::new(), Vec::new());
    for result in results {
        let (file, archive) = result.map_err(|e| format!("plain + checks failed: {e}"))?;
        files.push(file);
        signatures.push(archive);
    }
    index_file_signature::verify_batch(&files.iter().collect::<Vec<_>>())?;
    archive_signature::verify_batch(&signatures.iter().collect::<Vec<_>>())?;
    Ok(started.elapsed())
}

/// Requests the node answered so far, `/metrics` itself not counted.
fn node_requests(agent: &ureq::Agent, url: &str) -> Result<u64, Error> {
    let text = agent
        .get(format!("{url}/metrics"))
        .call()?
        .body_mut()
        .read_to_string()?;
    let mut total = 0.0;
    for line in text.lines() {
        if line.starts_with("http_requests_total{") && !line.contains("route=\"/metrics\"") {
            let value = line
                .split_whitespace()
                .last()
                .ok_or(format!("a /metrics line without a value: {line}"))?;
            total += value.parse::<f64>()?;
        }
    }
    Ok(total as u64)
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let n = sorted.len();
    if n == 0 {
        return Duration::ZERO;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data)?;
    // Clients reach the node through the relay, archives included (`public_url` makes
    // `dl` point there); publishing and /metrics go straight to it.
    let relay = if args.rtt_ms > 0 {
        Some(LatencyRelay::start(Duration::from_millis(args.rtt_ms))?)
    } else {
        None
    };
    let public_url = relay
        .as_ref()
        .map(|r| format!("public_url = \"{}\"\n", r.url))
        .unwrap_or_default();
    std::fs::write(
        data.join("node.toml"),
        format!("name = \"bench\"\nseed_library = false\n{public_url}"),
    )?;
    let (node, node_url): (Server, String) = start_node(&data)?;
    let url = match &relay {
        Some(relay) => {
            relay.forward_to(&node_url)?;
            relay.url.clone()
        }
        None => node_url.clone(),
    };
    let token = add_user(&data, "publish").map_err(|e| format!("adding a user: {e}"))?;
    let key = signing::generate_keypair(None)?;
    let public = PublicKey::parse(&key.public_key_text)?;
    let secret = SecretKey::parse(&key.secret_key_text, None)?;

    // Dependencies first: every mission needs only higher-numbered ones.
    let agent = ureq::Agent::new_with_defaults();
    let mut rng = Rng(51);
    let mut archive_bytes = 0usize;
    let mut sizes = Vec::new();
    for i in (0..MISSIONS).rev() {
        let readme = args.readme.start + rng.below(args.readme.len());
        let bytes = build(i, readme, &mut rng)?;
        archive_bytes += bytes.len();
        sizes.push(bytes.len());
        publish(&agent, &node_url, &token, &public, &secret, &name(i), bytes)?;
    }
    sizes.sort();
    if let Some(seconds) = args.hold {
        let home = new_home(&tmp.path().join("hold-home"), &url)?;
        println!(
            "node at {url} for {seconds} s; try: MISSION_HOME={} mission install bench_app (with a fresh MISSION_HOME/cache for a cold install)",
            home.display()
        );
        std::thread::sleep(Duration::from_secs(seconds));
        return Ok(());
    }
    // The node's name, key and head, which the index files' signatures must name (the
    // head does not move while the benchmark runs: nothing is published).
    let snapshot: Snapshot = agent
        .get(format!("{url}/index/snapshot.json"))
        .call()
        .and_then(|mut r| r.body_mut().read_json())
        .map_err(|e| format!("fetching {url}/index/snapshot.json: {e}"))?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    for i in 0..MISSIONS {
        pairs.push((
            format!("{url}/index/{}", entry_path(&name(i))?),
            format!("{url}/api/v1/missions/{}/1.0.0/download", name(i)),
        ));
    }
    let urls: Vec<String> = pairs
        .iter()
        .flat_map(|(index, archive)| [index.clone(), archive.clone()])
        .collect();

    println!(
        "install_deps: 1 mission + 50 transitive dependencies, archives {} bytes in all ({} to {} bytes, median {}); {} rounds, plain HTTP with {} threads; {}; machine: {}; load average {} at the start",
        archive_bytes,
        sizes[0],
        sizes[sizes.len() - 1],
        sizes[sizes.len() / 2],
        args.rounds,
        args.parallel,
        if args.rtt_ms > 0 {
            format!("{} ms round trips through a latency relay", args.rtt_ms)
        } else {
            "loopback".to_owned()
        },
        machine(),
        load_average()
    );
    let curl = curl_available();
    if !curl {
        println!("curl (7.66 or later) not found: no `curl --parallel` series");
    }
    println!("| round | plain ms | plain + checks ms | curl --parallel ms | cold install ms | warm install ms | warm --locked ms | node requests during --locked |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (mut plains, mut checkeds, mut colds, mut warms, mut lockeds) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut curls = vec![];
    let mut baselines = vec![];
    for round in 1..=args.rounds {
        let dir = tmp.path().join(format!("round{round}"));
        let (plain_time, plain_bytes) = plain(&urls, args.parallel, &dir.join("plain"))?;
        if plain_bytes < archive_bytes as u64 {
            return Err(format!(
                "plain fetched {plain_bytes} bytes, fewer than the archives' {archive_bytes}"
            )
            .into());
        }

        let checked = plain_checked(&pairs, &snapshot, args.parallel, &dir.join("checked"))?;
        let curl_time = if curl {
            Some(curl_plain(&urls, args.parallel, &dir.join("curl"))?)
        } else {
            None
        };

        let home = new_home(&dir.join("home"), &url)?;
        let (cold, _) = mission(&home, &dir.join("cold"), &["install", "bench_app"])?;
        let installed = std::fs::read_dir(dir.join("cold/missions"))?
            .filter(|e| {
                e.as_ref()
                    .map(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .unwrap_or(false)
            })
            .count();
        if installed != MISSIONS {
            return Err(format!(
                "the cold install put {installed} missions in place, not {MISSIONS}"
            )
            .into());
        }
        // Alternating which client goes first would be fairer still; right after this
        // one's cold install, both meet the same node state.
        if let Some(bin) = &args.baseline {
            let home = new_home(&dir.join("baseline-home"), &url)?;
            let (baseline, _) = run_client(
                bin,
                &home,
                &dir.join("baseline-cold"),
                &["install", "bench_app"],
            )?;
            baselines.push(baseline);
        }
        let (warm, _) = mission(&home, &dir.join("warm"), &["install", "bench_app"])?;

        let locked_project = dir.join("locked");
        std::fs::create_dir_all(&locked_project)?;
        std::fs::copy(
            dir.join("warm/missions.lock"),
            locked_project.join("missions.lock"),
        )?;
        let before = node_requests(&agent, &node_url)?;
        let (locked, stderr) = mission(&home, &locked_project, &["install", "--locked"])?;
        let requests = node_requests(&agent, &node_url)? - before;
        if requests != 0 || !stderr.contains("nothing to fetch") {
            return Err(format!(
                "the warm --locked install made {requests} request(s) to the node: {stderr}"
            )
            .into());
        }
        println!(
            "| {round} | {:.1} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {requests} |",
            ms(plain_time),
            ms(checked),
            curl_time.map_or("-".to_owned(), |t| format!("{:.1}", ms(t))),
            ms(cold),
            ms(warm),
            ms(locked)
        );
        plains.push(plain_time);
        checkeds.push(checked);
        curls.extend(curl_time);
        colds.push(cold);
        warms.push(warm);
        lockeds.push(locked);
        // Round folders stay until the end: deleting some 600 files here would make the
        // file system's inode allocator slower for the next round's measurements.
    }
    let base = median(&plains).as_secs_f64().max(1e-9);
    let checked_base = median(&checkeds).as_secs_f64().max(1e-9);
    println!("\nload average {} at the end", load_average());
    let curl_base = curl.then(|| median(&curls).as_secs_f64().max(1e-9));
    println!("| series | median ms | ratio to plain | ratio to plain + checks | ratio to curl --parallel |");
    println!("|---|---:|---:|---:|---:|");
    let mut series = vec![
        ("plain HTTP (102 files)", &plains),
        ("plain HTTP + checks and unpacking", &checkeds),
        ("cold install", &colds),
        ("warm install", &warms),
        ("warm install --locked", &lockeds),
    ];
    if curl {
        series.insert(2, ("curl --parallel, one process (102 files)", &curls));
    }
    if args.baseline.is_some() {
        series.push(("cold install, --baseline-client", &baselines));
    }
    for (label, samples) in series {
        let m = median(samples).as_secs_f64();
        println!(
            "| {label} | {:.1} | {:.2} | {:.2} | {} |",
            m * 1e3,
            m / base,
            m / checked_base,
            curl_base.map_or("-".to_owned(), |c| format!("{:.2}", m / c))
        );
    }
    drop(node);
    Ok(())
}
