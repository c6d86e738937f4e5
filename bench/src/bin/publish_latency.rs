//! Publish latency as the index grows: the time from sending `POST
//! /api/v1/missions/publish` to the node's answer (which comes only after the index commit
//! is durable), with 1,000 and with 100,000 missions already in the index.
//!
//! ```text
//! cargo build --release -p mission-node
//! cargo run --release -p mission-bench --bin publish_latency -- [--publishes 50] [--sizes 1000,100000]
//! ```

use std::time::{Duration, Instant};

use mission_bench::{add_user, fill, start_node, Error, Names, Rng};
use mission_index::archive::{self, ArchiveLimits, SourceFile};
use mission_index::signing::{self, PublicKey, SecretKey};
use mission_index::wire::{PublishBody, PublishMetadata};

/// A small valid package named `name`, as a publish body signed by `key`.
fn body(name: &str, public: &PublicKey, secret: &SecretKey) -> Result<Vec<u8>, Error> {
    let yaml = format!(
        "version: '1.0'\nname: {name}\nsteps:\n  - id: hello\n    name: Say hello\n    step_type: command\n    parameters: {{command: echo, args: [hi]}}\npackage:\n  name: {name}\n  version: 1.0.0\n  description: Benchmark mission\n  license: MIT\n  permissions: {{commands: [echo]}}\n"
    );
    let files = vec![
        SourceFile {
            path: "mission.yaml".into(),
            executable: false,
            data: yaml.into_bytes(),
        },
        SourceFile {
            path: "README.md".into(),
            executable: false,
            data: format!("# {name}\n").into_bytes(),
        },
    ];
    let bytes = archive::build_archive_from_files(files, &ArchiveLimits::default())?;
    let sig = signing::sign_archive(secret, public, &bytes, name, "1.0.0")?;
    Ok(PublishBody {
        metadata: PublishMetadata {
            name: name.to_owned(),
            vers: "1.0.0".into(),
            cksum: archive::cksum(&bytes),
            key: public.to_base64(),
            sig,
        },
        archive: bytes,
    }
    .encode())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let n = sorted.len().max(1);
    sorted[((p * n as f64).ceil() as usize).clamp(1, n) - 1]
}

fn main() -> Result<(), Error> {
    let mut publishes = 50usize;
    let mut sizes = vec![1_000usize, 100_000];
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--publishes" => publishes = value.parse()?,
            "--sizes" => sizes = value.split(',').map(str::parse).collect::<Result<_, _>>()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    let key = signing::generate_keypair(None)?;
    let public = PublicKey::parse(&key.public_key_text)?;
    let secret = SecretKey::parse(&key.secret_key_text, None)?;
    println!("publish_latency: {publishes} HTTP publishes per size, sequential");
    println!("| missions in index | mean ms | p50 ms | p99 ms |");
    println!("|---:|---:|---:|---:|");
    let mut means = Vec::new();
    for &size in &sizes {
        let tmp = tempfile::tempdir()?;
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data)?;
        let mut names = Names {
            rng: Rng(size as u64),
            keys: Default::default(),
        };
        fill(&data.join("index.git"), size, &mut names)?;
        let (node, url) = start_node(&data)?;
        let token = add_user(&data, "publish")?;
        let agent = ureq::Agent::new_with_defaults();
        let mut samples = Vec::with_capacity(publishes);
        for _ in 0..publishes {
            let name = names.fresh();
            let payload = body(&name, &public, &secret)?;
            let started = Instant::now();
            let response = agent
                .post(format!("{url}/api/v1/missions/publish"))
                .header("Authorization", format!("Bearer {token}"))
                .send(&payload[..]);
            let elapsed = started.elapsed();
            match response {
                Ok(r) if r.status() == 200 => samples.push(elapsed),
                Ok(r) => return Err(format!("publish answered {}", r.status()).into()),
                Err(e) => return Err(format!("publish failed: {e}").into()),
            }
        }
        drop(node);
        samples.sort();
        let mean = samples.iter().sum::<Duration>() / samples.len().max(1) as u32;
        means.push(mean);
        println!(
            "| {size} | {:.2} | {:.2} | {:.2} |",
            mean.as_secs_f64() * 1e3,
            percentile(&samples, 0.5).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3
        );
    }
    if let (Some(first), Some(last)) = (means.first(), means.last()) {
        println!(
            "\nratio of mean latency, largest / smallest index: {:.2}",
            last.as_secs_f64() / first.as_secs_f64().max(1e-9)
        );
    }
    Ok(())
}
