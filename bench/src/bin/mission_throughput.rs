//! How many 10-step missions per second does the engine finish, per sandbox backend?
//!
//! The mission is ten steps: five `create_file` (run by the engine itself) and five
//! `command` steps starting `/bin/true` (each through the sandbox), in two shapes:
//!
//! - **chain**: every step depends on the one before (`max_parallel_steps: 1`);
//! - **fan-out**: the five commands are independent, each after its own `create_file`
//!   (`max_parallel_steps: 4`).
//!
//! The baseline (**plain**) is the same work without the engine or a sandbox: five files
//! written and `/bin/true` started five times, one after another. Series are interleaved
//! (one mission of each, then again) so background load hits all alike. Each mission runs
//! in a fresh work folder, which includes lending it to the sandbox uid and giving it back.
//!
//! ```text
//! cargo run --release -p mission-bench --bin mission_throughput -- [--runs N]
//! ```

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mission_executor::engine::{run, RunOptions};
use mission_executor::report::RunStatus;
use mission_executor::sandbox::{choose, Sandbox, SandboxChoice};
use mission_index::diagnostic::SourceFormat;
use mission_index::mission::{parse_mission, Mission};

type Error = Box<dyn std::error::Error>;

fn mission_yaml(fan_out: bool) -> String {
    let mut yaml = format!(
        "version: \"1.0\"\nname: ten-steps\nconfig: {{ max_parallel_steps: {} }}\nsteps:\n",
        if fan_out { 4 } else { 1 }
    );
    let mut previous: Option<String> = None;
    for i in 0..5 {
        let file = format!("file{i}");
        let cmd = format!("cmd{i}");
        let after = |p: &Option<String>| {
            p.as_ref()
                .map(|p| format!(", depends_on: [{p}]"))
                .unwrap_or_default()
        };
        yaml.push_str(&format!(
            "  - {{ id: {file}, name: {file}, step_type: create_file{}, parameters: {{ path: out{i}.txt, content: hello }} }}\n",
            if fan_out { String::new() } else { after(&previous) }
        ));
        yaml.push_str(&format!(
            "  - {{ id: {cmd}, name: {cmd}, step_type: command, depends_on: [{file}], parameters: {{ command: \"true\" }} }}\n"
        ));
        previous = Some(cmd);
    }
    yaml
}

fn plain(dir: &Path) -> Result<(), Error> {
    for i in 0..5 {
        std::fs::write(dir.join(format!("out{i}.txt")), "hello")?;
        if !Command::new("/bin/true")
            .current_dir(dir)
            .status()?
            .success()
        {
            return Err("/bin/true failed".into());
        }
    }
    Ok(())
}

fn engine_run(mission: &Mission, sandbox: &Arc<dyn Sandbox>, dir: &Path) -> Result<(), Error> {
    let report = run(mission, None, sandbox.clone(), &RunOptions::new(dir), &())?;
    if report.status != RunStatus::Success {
        return Err(format!("the mission failed: {report:?}").into());
    }
    Ok(())
}

fn main() -> Result<(), Error> {
    let mut runs = 50usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().ok_or("--runs needs a number")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let chain = parse_mission(&mission_yaml(false), SourceFormat::Yaml, Path::new("chain"))?;
    let fan = parse_mission(&mission_yaml(true), SourceFormat::Yaml, Path::new("fan"))?;
    let bwrap: Arc<dyn Sandbox> = Arc::from(choose(SandboxChoice::Bwrap)?);
    let builtin: Arc<dyn Sandbox> = Arc::from(choose(SandboxChoice::Builtin)?);
    type Series<'a> = (&'a str, Box<dyn Fn(&Path) -> Result<(), Error> + 'a>);
    let series: Vec<Series> = vec![
        ("plain (no engine, no sandbox)", Box::new(plain)),
        ("bwrap, chain", Box::new(|d| engine_run(&chain, &bwrap, d))),
        ("bwrap, fan-out", Box::new(|d| engine_run(&fan, &bwrap, d))),
        (
            "builtin, chain",
            Box::new(|d| engine_run(&chain, &builtin, d)),
        ),
        (
            "builtin, fan-out",
            Box::new(|d| engine_run(&fan, &builtin, d)),
        ),
    ];
    let root = tempfile::tempdir()?;
    let mut n = 0usize;
    let mut fresh = || -> Result<std::path::PathBuf, Error> {
        n += 1;
        let dir = root.path().join(format!("w{n}"));
        std::fs::create_dir(&dir)?;
        Ok(dir)
    };
    for (_, f) in &series {
        for _ in 0..3 {
            f(&fresh()?)?;
        }
    }
    let mut totals = vec![Duration::ZERO; series.len()];
    for _ in 0..runs {
        for (i, (_, f)) in series.iter().enumerate() {
            let dir = fresh()?;
            let t = Instant::now();
            f(&dir)?;
            totals[i] += t.elapsed();
        }
    }
    let plain_rate = runs as f64 / totals[0].as_secs_f64();
    println!("| series | missions | missions/s | ms per mission | vs plain |");
    println!("|---|---:|---:|---:|---:|");
    for (i, (name, _)) in series.iter().enumerate() {
        let rate = runs as f64 / totals[i].as_secs_f64();
        println!(
            "| {name} | {runs} | {rate:.1} | {:.1} | {:.2} |",
            1000.0 / rate,
            rate / plain_rate
        );
    }
    Ok(())
}
