//! What does a sandbox add to each step?
//!
//! Runs `/bin/true` N times in each way, interleaved (one plain spawn, one bwrap run, one
//! built-in run, and again) so whatever else the machine does hits every series alike:
//!
//! - **plain**: `std::process::Command` spawning `/bin/true` and waiting, no sandbox;
//! - **bwrap** and **builtin**: `Sandbox::run` with default limits and no network, which
//!   includes handing the work folder to the sandbox uid, the per-run pids cgroup, building
//!   the mounts, the seccomp filter and output capture;
//! - the same two with host network allowed: no new network namespace, which shows what
//!   creating (and tearing down) one costs.
//!
//! Reports mean, p50 and p99 (nearest rank) wall time per step, and each backend's overhead
//! over plain (difference of means) and ratio.
//!
//! ```text
//! cargo run --release -p mission-bench --bin sandbox_overhead -- [--runs N]
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use mission_executor::sandbox::{choose, Limits, NetworkAccess, ProcessSpec, SandboxChoice};

/// One timed run of a series.
type Step = dyn FnMut() -> Result<(), Box<dyn std::error::Error>>;

fn stats(samples: &mut [Duration]) -> (f64, f64, f64) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64;
    let rank = |p: f64| {
        let i = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
        us(samples[i])
    };
    (mean, rank(0.50), rank(0.99))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut runs = 200usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().ok_or("--runs needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let work = tempfile::tempdir()?;
    let mut series: Vec<(&str, Box<Step>)> = Vec::new();
    series.push((
        "plain",
        Box::new(|| {
            let status = Command::new("/bin/true").status()?;
            if !status.success() {
                return Err("plain /bin/true failed".into());
            }
            Ok(())
        }),
    ));
    let no_net = NetworkAccess::None;
    let net = NetworkAccess::Hosts(vec!["example.org".into()]);
    for (choice, network, label) in [
        (SandboxChoice::Bwrap, &no_net, "bwrap"),
        (SandboxChoice::Builtin, &no_net, "builtin"),
        (SandboxChoice::Bwrap, &net, "bwrap, host network"),
        (SandboxChoice::Builtin, &net, "builtin, host network"),
    ] {
        let sandbox = choose(choice)?;
        let spec = ProcessSpec {
            program: "/bin/true".into(),
            args: vec![],
            workdir: work.path().to_path_buf(),
            env: vec![],
            stdin: None,
            limits: Limits::default(),
            network: network.clone(),
            read_only: vec![],
        };
        let name = label;
        series.push((
            name,
            Box::new(move || {
                let outcome = sandbox.run(&spec)?;
                if !outcome.success() {
                    return Err(format!("{name}: /bin/true failed: {outcome:?}").into());
                }
                Ok(())
            }),
        ));
    }
    // Warm-up (page cache, the filter compilation, the bwrap probe).
    for (_, run) in series.iter_mut() {
        for _ in 0..10 {
            run()?;
        }
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); series.len()];
    for _ in 0..runs {
        for (i, (_, run)) in series.iter_mut().enumerate() {
            let t = Instant::now();
            run()?;
            samples[i].push(t.elapsed());
        }
    }
    let (plain_mean, _, _) = stats(&mut samples[0].clone());
    println!("| series | runs | mean (µs) | p50 (µs) | p99 (µs) | overhead vs plain (µs, mean) | ratio |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (i, (name, _)) in series.iter().enumerate() {
        let (mean, p50, p99) = stats(&mut samples[i]);
        println!(
            "| {name} | {runs} | {mean:.0} | {p50:.0} | {p99:.0} | {:.0} | {:.1} |",
            mean - plain_mean,
            mean / plain_mean
        );
    }
    Ok(())
}
