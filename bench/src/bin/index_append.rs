//! How much does publishing one version cost as the index grows?
//!
//! `IndexRepo::append` is meant to cost the same at 1,000 names and at 100,000: it reads one
//! file, writes one blob and rebuilds only the trees on that file's path. This benchmark
//! fills an index to each size (setup, not measured: all entries are written as one commit
//! into a single pack, as a long-lived index would be after `git gc`), then times `append`
//! one call at a time:
//!
//! - **new name**: a name the index has never seen (writes the entry file and its `.keys/`
//!   file: two paths);
//! - **new version**: one more version of an existing name (reads and extends its file).
//!
//! Each series runs twice: with `core.fsyncObjectFiles = true` (what `IndexRepo::init`
//! configures, so the figure includes making the commit durable) and without it (the git
//! work alone, which shows the algorithm's cost without the disk's flush latency).
//!
//! ```text
//! cargo run --release -p mission-bench --bin index_append -- [--appends N] [--sizes 1000,10000,100000] [--dir PATH]
//! ```

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use git2::Repository;
use mission_index::entry::IndexEntry;
use mission_index::repo::{IndexRepo, MAIN_REF};

use mission_bench::{entry, fill, Error, Names, Rng};

/// CPU time (user + system) this thread has used: unlike wall time, it does not count the
/// time the thread waited for the disk or for a core another process was using.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we pass, which lives on this stack.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

struct Stats {
    mean: Duration,
    p50: Duration,
    p99: Duration,
    cpu_mean: Duration,
}

fn stats(mut samples: Vec<Duration>, cpu: Duration) -> Stats {
    samples.sort();
    let n = samples.len().max(1);
    let total: Duration = samples.iter().sum();
    // Nearest-rank percentiles.
    let rank = |p: f64| samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    Stats {
        mean: total / n as u32,
        p50: rank(0.50),
        p99: rank(0.99),
        cpu_mean: cpu / n as u32,
    }
}

/// Times one append: wall time and this thread's CPU time.
fn time_append(index: &IndexRepo, e: &IndexEntry) -> Result<(Duration, Duration), Error> {
    let cpu_start = thread_cpu_time();
    let start = Instant::now();
    index.append(e)?;
    let wall = start.elapsed();
    Ok((wall, thread_cpu_time().saturating_sub(cpu_start)))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn set_fsync(path: &Path, on: bool) -> Result<(), Error> {
    Repository::open_bare(path)?
        .config()?
        .set_bool("core.fsyncObjectFiles", on)?;
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

struct Args {
    appends: usize,
    sizes: Vec<usize>,
    dir: Option<String>,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = Args {
        appends: 200,
        sizes: vec![1_000, 10_000, 100_000],
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--appends" => args.appends = value.parse()?,
            "--sizes" => {
                args.sizes = value
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--dir" => args.dir = Some(value),
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    if args.sizes.is_empty() || args.appends == 0 {
        return Err("need at least one size and one append".into());
    }
    Ok(args)
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let command =
        std::iter::once("cargo run --release -p mission-bench --bin index_append --".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" ");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let base = match &args.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    println!("command: {command}");
    println!("machine: {cores} cores (nproc), CPU {}", cpu_model());
    println!("appends timed per series: {}", args.appends);
    println!("work dir: {}", base.path().display());
    println!(
        "load average at the start (1, 5, 15 min): {}",
        load_average()
    );
    println!();

    const SERIES: [&str; 4] = [
        "new name, fsync",
        "new version, fsync",
        "new name, no fsync",
        "new version, no fsync",
    ];
    let mut names = Names {
        rng: Rng(0x5EED),
        keys: HashSet::new(),
    };
    struct Target {
        size: usize,
        path: std::path::PathBuf,
        /// Distinct existing names that get one more version each.
        picked: Vec<String>,
    }
    let mut targets = Vec::new();
    for &size in &args.sizes {
        if args.appends > size {
            return Err(format!("--appends {} is more than the size {size}", args.appends).into());
        }
        let path = base.path().join(format!("index-{size}.git"));
        let started = Instant::now();
        let existing = fill(&path, size, &mut names)?;
        let filled = started.elapsed();
        let listed = IndexRepo::open(&path)?.list_names()?.len();
        if listed != size {
            return Err(format!("filled {size} names but the index lists {listed}").into());
        }
        let root_width = Repository::open_bare(&path)?
            .find_reference(MAIN_REF)?
            .peel_to_tree()?
            .len();
        println!(
            "filled {size} names in {:.1} s (setup, not measured); the root tree has {root_width} entries",
            filled.as_secs_f64()
        );
        let mut rng = Rng(size as u64);
        let mut seen = HashSet::new();
        let mut picked = Vec::new();
        while picked.len() < args.appends {
            let name = &existing[rng.below(existing.len())];
            if seen.insert(name.clone()) {
                picked.push(name.clone());
            }
        }
        targets.push(Target { size, path, picked });
    }

    // samples[target][series]: wall time of each append, and the summed CPU time.
    let mut samples: Vec<Vec<(Vec<Duration>, Duration)>> = targets
        .iter()
        .map(|_| {
            (0..SERIES.len())
                .map(|_| (Vec::new(), Duration::ZERO))
                .collect()
        })
        .collect();
    for (mode, fsync) in [true, false].into_iter().enumerate() {
        let mut handles = Vec::new();
        for t in &targets {
            set_fsync(&t.path, fsync)?;
            // Open after setting: libgit2 reads core.fsyncObjectFiles when it opens a repo.
            handles.push(IndexRepo::open(&t.path)?);
        }
        // Warm the caches the way a running node would be warm.
        for index in &handles {
            for _ in 0..10 {
                index.append(&entry(&names.fresh(), "1.0.0")?)?;
            }
        }
        let vers = format!("{}.0.0", 2 + mode);
        // Round robin over the sizes, one append at a time, so that whatever else the
        // machine is doing (other processes, disk flushes) hits every size alike.
        for i in 0..args.appends {
            for (k, (t, index)) in targets.iter().zip(&handles).enumerate() {
                let jobs = [
                    (2 * mode, entry(&names.fresh(), "1.0.0")?),
                    (2 * mode + 1, entry(&t.picked[i], &vers)?),
                ];
                for (series, e) in jobs {
                    let (wall, cpu) = time_append(index, &e)?;
                    samples[k][series].0.push(wall);
                    samples[k][series].1 += cpu;
                }
            }
        }
    }
    let rows: Vec<(usize, Vec<Stats>)> = targets
        .iter()
        .zip(samples)
        .map(|(t, series)| {
            (
                t.size,
                series
                    .into_iter()
                    .map(|(wall, cpu)| stats(wall, cpu))
                    .collect(),
            )
        })
        .collect();

    println!("load average at the end (1, 5, 15 min): {}", load_average());
    println!();
    println!(
        "| names in index | series | wall mean (µs) | wall p50 (µs) | wall p99 (µs) | CPU mean (µs) |"
    );
    println!("|---:|---|---:|---:|---:|---:|");
    for (size, series) in &rows {
        for (label, s) in SERIES.iter().zip(series) {
            println!(
                "| {size} | {label} | {} | {} | {} | {} |",
                us(s.mean),
                us(s.p50),
                us(s.p99),
                us(s.cpu_mean)
            );
        }
    }
    println!();
    // Each size against the smallest, and against the size before it.
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("| series | sizes compared | wall mean ratio | wall p50 ratio | CPU mean ratio |");
    println!("|---|---|---:|---:|---:|");
    for (i, label) in SERIES.iter().enumerate() {
        for k in 1..rows.len() {
            let mut pairs = vec![(0, k)];
            if k > 1 {
                pairs.push((k - 1, k));
            }
            for (a, b) in pairs {
                let (small, first) = &rows[a];
                let (large, last) = &rows[b];
                println!(
                    "| {label} | {large} / {small} | {:.2} | {:.2} | {:.2} |",
                    ratio(last[i].mean, first[i].mean),
                    ratio(last[i].p50, first[i].p50),
                    ratio(last[i].cpu_mean, first[i].cpu_mean),
                );
            }
        }
    }
    Ok(())
}
