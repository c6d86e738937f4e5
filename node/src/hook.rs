//! # The pre-receive hook of a mission repository
//!
//! When an author pushes to `/git/missions/NAME.git`, the node runs `git receive-pack`,
//! and git runs `hooks/pre-receive` before it updates any ref. That hook is this program:
//! `mission-node hook pre-receive`. It does not decide anything itself; it reads the pushed
//! ref updates (`OLD NEW REF` lines on stdin), hands them to the running node over the
//! loopback route `POST /internal/git/pre-receive`, prints the node's verdict on stderr
//! and exits non-zero when the node refused.
//!
//! Git forwards the hook's stderr to the pusher, so the author sees the verdict as
//! `remote: ok NAME VERSION` or `remote: error: ...`. The pushed objects are still in
//! quarantine (`GIT_QUARANTINE_PATH`) while the hook runs; the node reads the tag from there
//! with the object-directory variables the hook passes on, and the objects only enter the
//! repository if the hook exits 0.
//!
//! The node gives the hook everything it needs in the environment of `receive-pack`
//! (see `git_http`): where to reach the node, a per-process secret proving the caller is
//! a hook the node started, the pusher's token record and the mission name from the URL.
//! The hook is a plain blocking program: one HTTP/1.1 request over a `TcpStream`.

use std::io::{BufRead, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The node's hook route, e.g. `http://127.0.0.1:7878/internal/git/pre-receive`.
pub const ENV_URL: &str = "MISSION_NODE_HOOK_URL";
/// The per-process secret the route requires (header [`SECRET_HEADER`]).
pub const ENV_SECRET: &str = "MISSION_NODE_HOOK_SECRET";
/// The pusher's token record, JSON.
pub const ENV_USER: &str = "MISSION_NODE_HOOK_USER";
/// The mission name from the push URL.
pub const ENV_MISSION: &str = "MISSION_NODE_HOOK_MISSION";
/// The header carrying the secret.
pub const SECRET_HEADER: &str = "x-mission-hook-secret";

/// How long the hook waits for the node's verdict (a publish under load can queue).
const VERDICT_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(clap::Subcommand)]
pub enum HookCommand {
    /// The pre-receive hook of a mission repository
    PreReceive,
}

/// One pushed ref update, as git gives it to pre-receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    #[serde(rename = "ref")]
    pub refname: String,
}

/// What the hook sends to the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookRequest {
    /// The pusher's token record as the node put it in [`ENV_USER`].
    pub user: String,
    /// The mission name from the push URL ([`ENV_MISSION`]).
    pub mission: String,
    /// The repository (the hook's working directory, the bare repository).
    pub repo: String,
    pub quarantine_path: Option<String>,
    pub object_directory: Option<String>,
    pub alternate_object_directories: Option<String>,
    pub updates: Vec<RefUpdate>,
}

/// The node's answer: lines to show the pusher, and whether the push may go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookVerdict {
    pub accepted: bool,
    pub messages: Vec<String>,
}

pub fn run(cmd: HookCommand) -> Result<ExitCode> {
    match cmd {
        HookCommand::PreReceive => pre_receive(),
    }
}

fn env(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: this hook runs only under `git receive-pack` started by mission-node")
    })
}

fn pre_receive() -> Result<ExitCode> {
    let url = env(ENV_URL)?;
    let secret = env(ENV_SECRET)?;
    let mut updates = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading the pushed refs from stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        updates.push(parse_update(&line)?);
    }
    let cwd = std::env::current_dir().context("reading the repository path")?;
    let request = HookRequest {
        user: env(ENV_USER)?,
        mission: env(ENV_MISSION)?,
        repo: cwd.display().to_string(),
        quarantine_path: std::env::var("GIT_QUARANTINE_PATH").ok(),
        object_directory: std::env::var("GIT_OBJECT_DIRECTORY").ok(),
        alternate_object_directories: std::env::var("GIT_ALTERNATE_OBJECT_DIRECTORIES").ok(),
        updates,
    };
    let body = serde_json::to_vec(&request).context("encoding the hook request")?;
    let (status, reply) = post_json(&url, &secret, &body)
        .with_context(|| format!("the registry node could not be reached at {url}"))?;
    let verdict: HookVerdict = serde_json::from_slice(&reply).with_context(|| {
        format!(
            "the node answered HTTP {status} with something other than a verdict: {}",
            String::from_utf8_lossy(&reply).trim()
        )
    })?;
    let mut stderr = std::io::stderr().lock();
    for message in &verdict.messages {
        for line in message.lines() {
            let _ = writeln!(stderr, "{line}");
        }
    }
    Ok(if verdict.accepted && status == 200 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `OLD NEW REF` as pre-receive reads it.
pub fn parse_update(line: &str) -> Result<RefUpdate> {
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(old), Some(new), Some(refname), None) => Ok(RefUpdate {
            old: old.to_owned(),
            new: new.to_owned(),
            refname: refname.to_owned(),
        }),
        _ => bail!("git passed a ref update that is not `OLD NEW REF`: {line:?}"),
    }
}

/// `http://HOST:PORT/PATH` split into the address and the path. Only plain HTTP: the hook
/// talks to its own node over loopback.
fn split_url(url: &str) -> Result<(String, String, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("the hook URL `{url}` is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        bail!("the hook URL `{url}` has no host");
    }
    let addr = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()))
        && !authority.ends_with(']')
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((addr, authority.to_owned(), path.to_owned()))
}

/// One HTTP/1.1 POST of a JSON body; returns the status and the body.
fn post_json(url: &str, secret: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
    let (addr, host, path) = split_url(url)?;
    let target = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(10))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(VERDICT_TIMEOUT))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{SECRET_HEADER}: {secret}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .context("reading the node's answer")?;
    parse_response(&response)
}

/// Splits an HTTP/1.1 response (read to the end of the connection) into status and body.
fn parse_response(response: &[u8]) -> Result<(u16, Vec<u8>)> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the node's answer has no end of headers")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let body = &response[split + 4..];
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("the node's status line is not HTTP: {status_line:?}"))?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("a chunk size line has no end")?;
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            bail!("the node's answer ends inside a chunk");
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_update_lines_are_parsed_and_bad_ones_named() {
        let u = parse_update("0000 abcd refs/tags/v1.0.0").unwrap();
        assert_eq!(u.old, "0000");
        assert_eq!(u.new, "abcd");
        assert_eq!(u.refname, "refs/tags/v1.0.0");
        let err = parse_update("0000 abcd").unwrap_err().to_string();
        assert!(err.contains("OLD NEW REF"), "{err}");
    }

    #[test]
    fn urls_split_into_address_host_and_path() {
        let (addr, host, path) =
            split_url("http://127.0.0.1:4242/internal/git/pre-receive").unwrap();
        assert_eq!(addr, "127.0.0.1:4242");
        assert_eq!(host, "127.0.0.1:4242");
        assert_eq!(path, "/internal/git/pre-receive");
        assert_eq!(split_url("http://node/x").unwrap().0, "node:80");
        assert_eq!(split_url("http://[::1]:9/x").unwrap().0, "[::1]:9");
        assert!(split_url("https://node/x").is_err());
    }

    #[test]
    fn responses_plain_and_chunked_are_read() {
        let (status, body) =
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"{}"[..]));
        let (status, body) = parse_response(
            b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((status, body.as_slice()), (403, &b"abcde"[..]));
        assert!(parse_response(b"garbage").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n9\r\nab")
                .is_err()
        );
    }
}
