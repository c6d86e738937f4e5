//! Admin commands (`mission-node admin ...`), and the local socket that lets them reach a
//! running node.
//!
//! redb lets one process open the store, so while `serve` runs no other process can add a
//! user. The running node therefore listens on a Unix socket, `DATA/run/node.sock` (mode
//! 0600 in a 0700 folder: only the node's own system user may talk to it), and an admin
//! command first tries that socket; when no node answers, it opens the data folder itself.
//! Both paths run the same [`execute`] on a [`Ctx`], so a command behaves the same way
//! whether the node is up or not.
//!
//! ## The socket protocol
//!
//! One JSON object per line each way. The client sends a request and reads one response per
//! request; a connection may carry several.
//!
//! ```text
//! -> {"cmd":"admin","args":{"User":{"Add":{"name":"alice","scopes":"publish,yank"}}}}
//! <- {"ok":true,"stdout":"mrt_...\n","stderr":"added user `alice` ...\n","code":0}
//! ```
//!
//! `cmd` names the command family (`admin`, whose `args` is an [`AdminCommand`] as JSON;
//! `ping`, which answers `ok` and tells a live node from a stale socket file). The response
//! carries what the command would have printed and its exit code, so the client prints it
//! as if it had run the command itself.
//!
//! A socket file left by a node that was killed answers nothing: the client then works on
//! the folder directly, and the next `serve` removes the file ([`clear_stale_socket`]).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mission_index::name::collision_key;
use serde::{Deserialize, Serialize};

use crate::data_dir::DataDir;
use crate::server::AppState;
use crate::store::{Scope, Store, StoreError};

/// The longest request line the node reads (a pushed tag's message fits many times over).
const MAX_REQUEST_BYTES: u64 = 1 << 20;
/// How long an admin command waits for a node that holds the store but does not answer on
/// its socket yet (it is starting: seeding the library, signing a snapshot).
const BUSY_WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, clap::Subcommand, Serialize, Deserialize)]
pub enum AdminCommand {
    /// Users and their API tokens
    #[command(subcommand)]
    User(UserCommand),
    /// API tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// Mission owners (to repair what `fsck` reports)
    #[command(subcommand)]
    Owner(OwnerCommand),
    /// Check every cross-link of the data folder: index entries, blobs, signatures,
    /// owners, snapshot. Exits 1 when something is inconsistent.
    Fsck {
        /// Rebuild what is derived (the snapshot), remove leftovers (orphan blobs and
        /// temporary files older than a minute). Sources of truth are never changed.
        #[arg(long)]
        repair: bool,
    },
    /// The audit log of missions executed on the node
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Clone, clap::Subcommand, Serialize, Deserialize)]
pub enum AuditCommand {
    /// Walk the hash chain of the audit log: prints `ok: N records`, or the first broken
    /// link (its seq and why) and exits 1
    Verify,
}

#[derive(Debug, Clone, clap::Subcommand, Serialize, Deserialize)]
pub enum UserCommand {
    /// Add a user with a first token; prints only the token on stdout
    Add {
        name: String,
        /// Comma-separated: publish, yank, owners, execute, admin
        #[arg(long)]
        scopes: String,
    },
    /// Make another token for an existing user; prints only the token on stdout
    Token {
        name: String,
        /// Comma-separated: publish, yank, owners, execute, admin
        #[arg(long)]
        scopes: String,
    },
    /// List a user's tokens (ids, scopes, whether revoked), never the tokens themselves
    Show { name: String },
}

#[derive(Debug, Clone, clap::Subcommand, Serialize, Deserialize)]
pub enum TokenCommand {
    /// Revoke a token, given as the token itself or as its id (see `admin user show`)
    Revoke { token: String },
}

#[derive(Debug, Clone, clap::Subcommand, Serialize, Deserialize)]
pub enum OwnerCommand {
    /// Record USER as an owner of NAME (a mission in the index), e.g. when `fsck` reports a
    /// mission without an owners record
    Add { name: String, user: String },
}

/// What a command printed and how it ended; the same shape crosses the socket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

impl Output {
    fn out(&mut self, text: impl AsRef<str>) {
        self.stdout.push_str(text.as_ref());
        self.stdout.push('\n');
    }
    fn err(&mut self, text: impl AsRef<str>) {
        self.stderr.push_str(text.as_ref());
        self.stderr.push('\n');
    }
    fn fail(mut self, text: impl AsRef<str>) -> Output {
        self.err(format!("error: {}", text.as_ref()));
        self.code = 1;
        self
    }
}

/// A socket request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub cmd: String,
    #[serde(default)]
    pub args: serde_json::Value,
}

/// A socket response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

impl From<Output> for Response {
    fn from(o: Output) -> Self {
        Response {
            ok: o.code == 0,
            stdout: o.stdout,
            stderr: o.stderr,
            code: o.code,
        }
    }
}

/// What a command works on: the store, opened by this process or by the running node.
pub struct Ctx<'a> {
    pub data: &'a DataDir,
    pub store: &'a Store,
    /// Set when the command runs inside `serve` (through the socket): the snapshot is then
    /// the index writer's to re-sign.
    pub live: Option<&'a AppState>,
}

/// Runs one admin command; never prints (the caller does, locally or across the socket).
pub fn execute(ctx: &Ctx<'_>, cmd: &AdminCommand) -> Output {
    let out = Output::default();
    match cmd {
        AdminCommand::User(UserCommand::Add { name, scopes }) => {
            let scopes = match Scope::parse_list(scopes) {
                Ok(s) => s,
                Err(e) => return out.fail(e.to_string()),
            };
            match ctx.store.add_user(name, scopes) {
                Ok(new) => new_token(out, &new, &format!("added user `{name}`")),
                Err(e @ StoreError::UserExists { .. }) => out.fail(format!(
                    "{e}; `mission-node admin user token {name} --scopes ...` makes another token"
                )),
                Err(e) => out.fail(e.to_string()),
            }
        }
        AdminCommand::User(UserCommand::Token { name, scopes }) => {
            let scopes = match Scope::parse_list(scopes) {
                Ok(s) => s,
                Err(e) => return out.fail(e.to_string()),
            };
            match ctx.store.add_token(name, scopes) {
                Ok(new) => new_token(out, &new, &format!("new token for `{name}`")),
                Err(e) => out.fail(e.to_string()),
            }
        }
        AdminCommand::User(UserCommand::Show { name }) => show_user(out, ctx.store, name),
        AdminCommand::Token(TokenCommand::Revoke { token }) => {
            match ctx.store.revoke_token(token) {
                Ok(record) => {
                    let mut out = out;
                    out.err(format!(
                        "revoked token {} of user `{}`; it no longer authenticates",
                        record.id, record.user
                    ));
                    out
                }
                Err(e @ StoreError::UnknownToken { .. }) => out.fail(format!(
                    "{e} (give the whole token, or its id of at least 8 hex digits from `admin user show NAME`)"
                )),
                Err(e) => out.fail(e.to_string()),
            }
        }
        AdminCommand::Owner(OwnerCommand::Add { name, user }) => add_owner(out, ctx, name, user),
        AdminCommand::Fsck { repair } => {
            match crate::fsck::check(ctx.data, ctx.store, ctx.live, *repair) {
                Ok(report) => {
                    let mut out = out;
                    out.stdout = report.render();
                    out.code = u8::from(report.problems() > 0);
                    out
                }
                Err(e) => out.fail(format!("{e:#}")),
            }
        }
        AdminCommand::Audit(AuditCommand::Verify) => match crate::audit::verify(ctx.store) {
            Ok(verdict) => {
                let mut out = out;
                out.out(verdict.render());
                out.code = u8::from(!matches!(verdict, crate::audit::Verdict::Ok { .. }));
                out
            }
            Err(e) => out.fail(format!("reading the audit log: {e}")),
        },
    }
}

fn new_token(mut out: Output, new: &crate::store::NewToken, what: &str) -> Output {
    out.out(&new.token);
    out.err(format!(
        "{what}: token {} with scopes {}; it is shown only this once",
        new.record.id,
        scope_list(&new.record.scopes)
    ));
    out
}

fn scope_list(scopes: &BTreeSet<Scope>) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn show_user(mut out: Output, store: &Store, name: &str) -> Output {
    match store.user_exists(name) {
        Ok(true) => {}
        Ok(false) => return out.fail(format!("no user `{name}`")),
        Err(e) => return out.fail(e.to_string()),
    }
    let tokens = match store.tokens_of(name) {
        Ok(t) => t,
        Err(e) => return out.fail(e.to_string()),
    };
    out.out(format!("user {name}: {} token(s)", tokens.len()));
    for t in tokens {
        out.out(format!(
            "  {}  {}  created {}{}",
            t.id,
            scope_list(&t.scopes),
            t.created,
            if t.revoked { "  revoked" } else { "" }
        ));
    }
    out
}

fn add_owner(out: Output, ctx: &Ctx<'_>, name: &str, user: &str) -> Output {
    // Only a name the index holds, spelled as published: an owners record for anything else
    // would be exactly the inconsistency fsck reports.
    let repo = match mission_index::repo::IndexRepo::open(ctx.data.index_dir()) {
        Ok(r) => r,
        Err(e) => return out.fail(e.to_string()),
    };
    let published = match repo.read(name) {
        Ok(Some(entries)) => entries.first().map(|e| e.name.clone()),
        Ok(None) => None,
        Err(e) => return out.fail(e.to_string()),
    };
    let Some(published) = published else {
        return out.fail(format!("no mission `{name}` in the index"));
    };
    if published != name {
        return out.fail(format!(
            "the index spells it `{published}`; give the name as published"
        ));
    }
    match ctx.store.add_owner(&collision_key(name), name, user) {
        Ok(()) => {
            let mut out = out;
            out.err(format!("`{user}` is now an owner of `{name}`"));
            out
        }
        Err(e) => out.fail(e.to_string()),
    }
}

/// `mission-node admin ...`: through the running node when there is one, else directly.
pub fn run(data: &DataDir, cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    if !data.root.is_dir() {
        anyhow::bail!(
            "the data folder {} does not exist (run `mission-node init` or `serve` first, or pass --data)",
            data.root.display()
        );
    }
    let args = serde_json::to_value(&cmd).context("encoding the admin command")?;
    let started = Instant::now();
    let mut told = false;
    loop {
        if let Some(response) = call(data, "admin", args.clone())? {
            return Ok(print(response.stdout, response.stderr, response.code));
        }
        match Store::open(&data.store_file()) {
            Ok(store) => {
                let out = execute(
                    &Ctx {
                        data,
                        store: &store,
                        live: None,
                    },
                    &cmd,
                );
                return Ok(print(out.stdout, out.stderr, out.code));
            }
            // A node is starting (it holds the store, its socket is not up yet): wait.
            Err(StoreError::Busy { .. }) if started.elapsed() < BUSY_WAIT => {
                if !told {
                    eprintln!("waiting for the node that is starting on this data folder...");
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e @ StoreError::Busy { .. }) => {
                anyhow::bail!(
                    "{e}, but nothing answers on {}",
                    data.socket_path().display()
                )
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn print(stdout: String, stderr: String, code: u8) -> ExitCode {
    print!("{stdout}");
    eprint!("{stderr}");
    let _ = std::io::stdout().flush();
    ExitCode::from(code)
}

/// Sends one request to the node running on `data`; `None` when no node answers there.
pub fn call(
    data: &DataDir,
    cmd: &str,
    args: serde_json::Value,
) -> anyhow::Result<Option<Response>> {
    let path = data.socket_path();
    let Some(stream) = connect(&path) else {
        return Ok(None);
    };
    let request = Request {
        cmd: cmd.to_owned(),
        args,
    };
    let mut line = serde_json::to_string(&request).context("encoding the request")?;
    line.push('\n');
    let mut writer = &stream;
    writer
        .write_all(line.as_bytes())
        .with_context(|| format!("sending the request to {}", path.display()))?;
    let mut reader = BufReader::new(&stream);
    let mut answer = String::new();
    reader
        .read_line(&mut answer)
        .with_context(|| format!("reading the node's answer on {}", path.display()))?;
    if answer.is_empty() {
        anyhow::bail!(
            "the node on {} closed the connection without answering",
            path.display()
        );
    }
    let response: Response = serde_json::from_str(&answer).with_context(|| {
        format!(
            "the node on {} answered something that is not a response",
            path.display()
        )
    })?;
    Ok(Some(response))
}

#[cfg(unix)]
fn connect(path: &Path) -> Option<std::os::unix::net::UnixStream> {
    std::os::unix::net::UnixStream::connect(path).ok()
}

#[cfg(not(unix))]
fn connect(_path: &Path) -> Option<std::fs::File> {
    None
}

/// Removes a socket file that nothing answers on (left by a node that was killed); fails
/// when a node does answer, since then another `serve` uses this data folder.
pub fn clear_stale_socket(path: &Path) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    if connect(path).is_some() {
        anyhow::bail!(
            "a node already answers on {}: another `mission-node serve` uses this data folder",
            path.display()
        );
    }
    match std::fs::remove_file(path) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "removed a stale admin socket");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing the stale socket {}", path.display())),
    }
}

/// Starts listening on `DATA/run/node.sock` (called by `serve` inside its runtime).
#[cfg(unix)]
pub fn start_socket(state: Arc<AppState>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;

    let path = state.data.socket_path();
    let dir = state.data.run_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // The folder first, so the socket is never reachable with looser rights.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))?;
    clear_stale_socket(&path)?;
    let listener = tokio::net::UnixListener::bind(&path).with_context(|| {
        format!(
            "listening on {} (a socket path is limited to about 100 bytes; use a shorter --data path if it is longer)",
            path.display()
        )
    })?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    tracing::info!(path = %path.display(), "admin socket listening");
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(serve_connection(state.clone(), stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
pub fn start_socket(_state: Arc<AppState>) -> anyhow::Result<()> {
    Ok(())
}

/// Removes the socket file (on a clean stop).
pub fn stop_socket(data: &DataDir) {
    let _ = std::fs::remove_file(data.socket_path());
}

#[cfg(unix)]
async fn serve_connection(state: Arc<AppState>, stream: tokio::net::UnixStream) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    let (read, mut write) = stream.into_split();
    let mut reader = tokio::io::BufReader::new(read.take(MAX_REQUEST_BYTES));
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "admin socket: reading a request");
                return;
            }
        }
        let too_long = !line.ends_with('\n') && reader.get_ref().limit() == 0;
        let response = if too_long {
            Output::default()
                .fail(format!(
                    "the request is longer than {MAX_REQUEST_BYTES} bytes"
                ))
                .into()
        } else {
            match serde_json::from_str::<Request>(&line) {
                Ok(request) => dispatch(state.clone(), request).await,
                Err(e) => Output::default()
                    .fail(format!("the request is not {{\"cmd\",\"args\"}} JSON: {e}"))
                    .into(),
            }
        };
        let mut text = serde_json::to_string(&response).unwrap_or_default();
        text.push('\n');
        if write.write_all(text.as_bytes()).await.is_err() || too_long {
            return;
        }
        // Each request gets the whole budget again.
        reader.get_mut().set_limit(MAX_REQUEST_BYTES);
    }
}

/// Runs one socket request inside the node.
async fn dispatch(state: Arc<AppState>, request: Request) -> Response {
    match request.cmd.as_str() {
        "ping" => Output {
            stdout: "ok\n".into(),
            ..Output::default()
        }
        .into(),
        "admin" => {
            let cmd: AdminCommand = match serde_json::from_value(request.args) {
                Ok(cmd) => cmd,
                Err(e) => {
                    return Output::default()
                        .fail(format!("not an admin command: {e}"))
                        .into()
                }
            };
            // redb, git and fsck are blocking work.
            let ran = tokio::task::spawn_blocking(move || {
                execute(
                    &Ctx {
                        data: &state.data,
                        store: &state.store,
                        live: Some(&state),
                    },
                    &cmd,
                )
            })
            .await;
            match ran {
                Ok(out) => out.into(),
                Err(e) => Output::default()
                    .fail(format!("the admin command failed inside the node: {e}"))
                    .into(),
            }
        }
        other => Output::default()
            .fail(format!(
                "unknown socket command `{other}` (this node knows: admin, ping)"
            ))
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_run(dir: &Path, cmd: AdminCommand) -> Output {
        let data = DataDir::new(dir);
        let store = Store::open(&data.store_file()).unwrap();
        execute(
            &Ctx {
                data: &data,
                store: &store,
                live: None,
            },
            &cmd,
        )
    }

    #[test]
    fn user_add_prints_only_the_token_and_refuses_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let add = |name: &str, scopes: &str| {
            ctx_run(
                dir.path(),
                AdminCommand::User(UserCommand::Add {
                    name: name.into(),
                    scopes: scopes.into(),
                }),
            )
        };
        let out = add("alice", "publish,yank");
        assert_eq!(out.code, 0, "{out:?}");
        assert!(out.stdout.starts_with("mrt_"));
        assert_eq!(out.stdout.lines().count(), 1);
        assert!(out.stderr.contains("publish,yank"), "{}", out.stderr);

        let dup = add("alice", "publish");
        assert_eq!(dup.code, 1);
        assert!(dup.stdout.is_empty());
        assert!(dup.stderr.contains("already exists"), "{}", dup.stderr);

        let bad = add("bob", "publish,fly");
        assert_eq!(bad.code, 1);
        assert!(bad.stderr.contains("unknown scope `fly`"), "{}", bad.stderr);

        let none = add("bob", "");
        assert!(
            none.stderr.contains("at least one scope"),
            "{}",
            none.stderr
        );
    }

    #[test]
    fn requests_and_commands_round_trip_as_json() {
        let cmd = AdminCommand::Fsck { repair: true };
        let request = Request {
            cmd: "admin".into(),
            args: serde_json::to_value(&cmd).unwrap(),
        };
        let text = serde_json::to_string(&request).unwrap();
        let back: Request = serde_json::from_str(&text).unwrap();
        let back: AdminCommand = serde_json::from_value(back.args).unwrap();
        assert!(matches!(back, AdminCommand::Fsck { repair: true }));
    }

    #[cfg(unix)]
    #[test]
    fn a_stale_socket_file_is_removed_and_a_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.sock");
        let live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(clear_stale_socket(&path).is_err());
        drop(live);
        // The listener is gone, its file stays, as after a SIGKILL.
        assert!(path.exists());
        clear_stale_socket(&path).unwrap();
        assert!(!path.exists());
        clear_stale_socket(&path).unwrap();
    }
}
