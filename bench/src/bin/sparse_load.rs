//! Sparse-index throughput: `mission-node` against nginx serving the same files from disk.
//!
//! Fills an index with `--names` missions (default 10,000), starts a release `mission-node`
//! on it, checks the same index out into a folder that nginx serves, and runs `wrk` against
//! each in turn (node, nginx, node, nginx, ...) with every request fetching a random
//! name's index file. Prints requests per second and latency percentiles of each run, and
//! the ratio node/nginx of the mean throughputs.
//!
//! ```text
//! apt-get install -y wrk nginx
//! cargo build --release -p mission-node
//! cargo run --release -p mission-bench --bin sparse_load -- [--names 10000] [--seconds 10] [--connections 64] [--rounds 2]
//! ```

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use mission_bench::{fill, start_node, Error, Names, Rng, Server};
use mission_index::layout::entry_path;

struct Args {
    names: usize,
    seconds: u64,
    connections: usize,
    rounds: usize,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = Args {
        names: 10_000,
        seconds: 10,
        connections: 64,
        rounds: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--names" => args.names = value.parse()?,
            "--seconds" => args.seconds = value.parse()?,
            "--connections" => args.connections = value.parse()?,
            "--rounds" => args.rounds = value.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(args)
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_nginx(root: &Path, dir: &Path) -> Result<(Server, String), Error> {
    let port = free_port()?;
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes auto;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  etag on;\n  default_type text/plain;\n\
             client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;\n\
             server {{ listen 127.0.0.1:{port}; root {root}; location / {{ }} }}\n}}\n",
            dir = dir.display(),
            root = root.display(),
        ),
    )?;
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting nginx (apt-get install nginx): {e}"))?;
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((Server(child), url));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err("nginx did not start".into())
}

struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

fn parse_latency(value: &str) -> Option<f64> {
    let value = value.trim();
    if let Some(v) = value.strip_suffix("us") {
        return v.parse::<f64>().ok().map(|v| v / 1000.0);
    }
    if let Some(v) = value.strip_suffix("ms") {
        return v.parse().ok();
    }
    if let Some(v) = value.strip_suffix('s') {
        return v.parse::<f64>().ok().map(|v| v * 1000.0);
    }
    None
}

fn wrk(url: &str, script: &Path, args: &Args) -> Result<Run, Error> {
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{}", args.connections)])
        .arg(format!("-d{}s", args.seconds))
        .arg("--latency")
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .map_err(|e| format!("running wrk (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut run = Run {
        rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        non_2xx: 0,
    };
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            run.rps = v.trim().parse()?;
        } else if let Some(v) = line.strip_prefix("50%") {
            run.p50_ms = parse_latency(v).unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("99%") {
            run.p99_ms = parse_latency(v).unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.non_2xx = v.trim().parse().unwrap_or(0);
        }
    }
    if run.rps == 0.0 {
        return Err(format!("could not read wrk's output:\n{text}").into());
    }
    Ok(run)
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data)?;
    let mut names = Names {
        rng: Rng(7),
        keys: Default::default(),
    };
    eprintln!("filling an index with {} names...", args.names);
    let all = fill(&data.join("index.git"), args.names, &mut names)?;

    let (node, node_url) = start_node(&data)?;
    // The node rewrites config.json for its own key and address on start; serve nginx the
    // same commit.
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www)?;
    let status = Command::new("git")
        .args(["clone", "--quiet"])
        .arg(data.join("index.git"))
        .arg(www.join("index"))
        .status()?;
    if !status.success() {
        return Err("git clone of the index failed".into());
    }
    let (nginx, nginx_url) = start_nginx(&www, tmp.path())?;

    let paths = tmp.path().join("paths.txt");
    let mut f = std::fs::File::create(&paths)?;
    for name in &all {
        writeln!(f, "/index/{}", entry_path(name)?)?;
    }
    drop(f);
    let script = tmp.path().join("random.lua");
    std::fs::write(
        &script,
        format!(
            "local paths = {{}}\nfor line in io.lines(\"{}\") do paths[#paths + 1] = line end\n\
             math.randomseed(42)\nrequest = function() return wrk.format(\"GET\", paths[math.random(#paths)]) end\n",
            paths.display()
        ),
    )?;

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
    println!(
        "sparse_load: {} names, wrk -t2 -c{} -d{}s, {} rounds; machine: {cores} cores, {cpu}",
        args.names, args.connections, args.seconds, args.rounds
    );
    println!("| run | server | requests/s | p50 ms | p99 ms | non-2xx |");
    println!("|---|---|---:|---:|---:|---:|");
    let (mut node_sum, mut nginx_sum) = (0.0, 0.0);
    for round in 1..=args.rounds {
        for (label, url) in [("mission-node", &node_url), ("nginx", &nginx_url)] {
            let run = wrk(url, &script, &args)?;
            println!(
                "| {round} | {label} | {:.0} | {:.2} | {:.2} | {} |",
                run.rps, run.p50_ms, run.p99_ms, run.non_2xx
            );
            if label == "nginx" {
                nginx_sum += run.rps;
            } else {
                node_sum += run.rps;
            }
        }
    }
    println!(
        "\nmean throughput: mission-node {:.0}/s, nginx {:.0}/s, ratio node/nginx = {:.2}",
        node_sum / args.rounds as f64,
        nginx_sum / args.rounds as f64,
        node_sum / nginx_sum.max(1.0)
    );
    drop(node);
    drop(nginx);
    Ok(())
}
