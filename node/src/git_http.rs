//! # Git over HTTP: the index (read-only) and the mission repositories (the push door)
//!
//! Git's "smart HTTP" protocol is two requests per operation: `GET .../info/refs?service=S`
//! (the refs the server has, prefixed by a `# service=S` pkt-line and a flush) and
//! `POST .../S` (the client's wants/haves or pack; the server's answer). Like Gitea's
//! `githttp.go`, the node does not speak the protocol itself: it runs
//! `git upload-pack --stateless-rpc` / `git receive-pack --stateless-rpc` and streams the
//! request body into the process and its output back as the response.
//!
//! - `/git/index.git`: clone and fetch only; a push answers 403.
//! - `/git/missions/NAME.git`: anyone may clone; pushing needs an API token with the
//!   `publish` scope as the HTTP Basic password (401 with `WWW-Authenticate` makes git ask),
//!   and the pusher must own the name, or the name must be free (then the first push creates
//!   the bare repository `missions/<collision key>.git`).
//!
//! A push of a tag `vVERSION` is a publish. The repository's `pre-receive` hook
//! (`mission-node hook pre-receive`, see `hook`) sends the pushed updates back to this node
//! at `POST /internal/git/pre-receive`; [`pre_receive`] reads the tag and its tree from
//! git's quarantine, runs the publish pipeline, and answers the verdict that the hook
//! prints (`remote: ok NAME VERSION`, or `remote: error: ...` and the push is refused).
//! Tags are never deleted or moved; branches are the author's business.
//!
//! Refusals before git runs (auth, ownership, unknown repository) are `text/plain` bodies
//! starting with `error:`; git prints those as `remote: error: ...` too.
//!
//! Git refuses repositories owned by another user as "dubious ownership"; the node passes
//! `safe.directory` through `GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` and
//! never touches a global git config.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use mission_index::archive::{self, ArchiveLimits, SourceFile};
use mission_index::name::{collision_key, validate_name};
use mission_index::wire::TagMessage;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::error::ApiError;
use crate::hook::{self, HookRequest, HookVerdict, RefUpdate};
use crate::index_writer::WriteError;
use crate::publish::{self, PackageFiles, PublishError, PublishRequest, Published};
use crate::server::{AppState, SharedState};
use crate::store::{Scope, TokenRecord};

/// The loopback route the pre-receive hook calls.
pub const HOOK_ROUTE: &str = "/internal/git/pre-receive";

/// Largest request body of `git-upload-pack` (wants and haves; a big fetch negotiation is
/// a few MiB).
const MAX_UPLOAD_REQUEST_BYTES: u64 = 16 << 20;

/// The per-process secret the hook presents; random, made on first use.
fn hook_secret() -> &'static str {
    static SECRET: OnceLock<String> = OnceLock::new();
    SECRET.get_or_init(|| {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        hex::encode(bytes)
    })
}

/// The address the node listens on, when the server tells us (see [`set_local_addr`]);
/// the hook is sent there rather than to `public_url`, which may be a proxy.
static LOCAL_ADDR: OnceLock<SocketAddr> = OnceLock::new();

/// Records the address the node actually listens on, for the hook to call back on.
#[allow(dead_code)] // called by server.rs once the listener is bound
pub fn set_local_addr(addr: SocketAddr) {
    let _ = LOCAL_ADDR.set(addr);
}

fn hook_url(state: &AppState) -> String {
    match LOCAL_ADDR.get() {
        Some(addr) if addr.ip().is_unspecified() => {
            format!("http://127.0.0.1:{}{HOOK_ROUTE}", addr.port())
        }
        Some(addr) => format!("http://{addr}{HOOK_ROUTE}"),
        None => format!("{}{HOOK_ROUTE}", state.base_url),
    }
}

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/git/index.git/info/refs", get(index_info_refs))
        .route("/git/index.git/git-upload-pack", post(index_upload_pack))
        .route("/git/index.git/git-receive-pack", post(index_receive_pack))
        .route("/git/missions/{repo}/info/refs", get(mission_info_refs))
        .route(
            "/git/missions/{repo}/git-upload-pack",
            post(mission_upload_pack),
        )
        .route(
            "/git/missions/{repo}/git-receive-pack",
            post(mission_receive_pack),
        )
        .route(HOOK_ROUTE, post(pre_receive))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    UploadPack,
    ReceivePack,
}

impl Service {
    fn parse(name: &str) -> Option<Service> {
        match name {
            "git-upload-pack" => Some(Service::UploadPack),
            "git-receive-pack" => Some(Service::ReceivePack),
            _ => None,
        }
    }
    /// `git-upload-pack`, as in URLs and content types.
    fn name(self) -> &'static str {
        match self {
            Service::UploadPack => "git-upload-pack",
            Service::ReceivePack => "git-receive-pack",
        }
    }
    /// The git subcommand.
    fn subcommand(self) -> &'static str {
        &self.name()[4..]
    }
}

/// A refusal git shows its user: `text/plain` lines are printed as `remote: LINE`.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
}

fn git_error(status: StatusCode, message: impl std::fmt::Display) -> Refusal {
    Refusal {
        status,
        message: message.to_string(),
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        refusal_response(self.status, &self.message)
    }
}

fn refusal_response(status: StatusCode, message: &str) -> Response {
    let mut body = String::new();
    for line in message.lines() {
        body.push_str("error: ");
        body.push_str(line);
        body.push('\n');
    }
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"mission-registry\""),
        );
    }
    response
}

fn from_api(e: ApiError) -> Refusal {
    git_error(e.status, e.detail)
}

fn internal(what: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %what, "git door");
    git_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("internal error: {what}"),
    )
}

/// `git -c safe.directory=REPO ...` through the environment, plus any `config` pairs.
fn git(repo: &Path, config: &[(&str, String)]) -> Command {
    let mut cmd = Command::new("git");
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_QUARANTINE_PATH",
        "GIT_NAMESPACE",
    ] {
        cmd.env_remove(var);
    }
    let mut pairs = vec![("safe.directory", repo.display().to_string())];
    pairs.extend(config.iter().cloned());
    cmd.env("GIT_CONFIG_COUNT", pairs.len().to_string());
    for (i, (key, value)) in pairs.into_iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), key);
        cmd.env(format!("GIT_CONFIG_VALUE_{i}"), value);
    }
    cmd.current_dir(repo).kill_on_drop(true);
    cmd
}

/// A pkt-line: 4 hex digits of length (including themselves), then the data.
fn pkt_line(data: &str) -> String {
    format!("{:04x}{data}", data.len() + 4)
}

#[derive(serde::Deserialize)]
struct ServiceQuery {
    service: Option<String>,
}

fn service_of(query: &ServiceQuery) -> Result<Service, Refusal> {
    match query.service.as_deref().and_then(Service::parse) {
        Some(s) => Ok(s),
        None => Err(git_error(
            StatusCode::FORBIDDEN,
            "this node speaks only git's smart HTTP protocol (info/refs?service=git-upload-pack or git-receive-pack); update git",
        )),
    }
}

const INDEX_READ_ONLY: &str = "the index is read-only: publish by pushing a tag to /git/missions/NAME.git (`mission publish`), or with `mission publish --http`";

// ---- the index -------------------------------------------------------------------------

/// On a private node (`auth_required`) a clone or fetch needs a token, as every other read
/// does: the HTTP Basic password, which git asks for after a 401.
fn authorise_read(state: &AppState, headers: &HeaderMap) -> Result<(), Refusal> {
    crate::auth::require_reader(state, headers).map_err(from_api)
}

async fn index_info_refs(
    State(state): State<SharedState>,
    Query(query): Query<ServiceQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorise_read(&state, &headers) {
        return r.into_response();
    }
    match service_of(&query) {
        Ok(Service::UploadPack) => advertise(&state.data.index_dir(), Service::UploadPack).await,
        Ok(Service::ReceivePack) => {
            git_error(StatusCode::FORBIDDEN, INDEX_READ_ONLY).into_response()
        }
        Err(r) => r.into_response(),
    }
}

async fn index_upload_pack(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = authorise_read(&state, &headers) {
        return r.into_response();
    }
    let repo = state.data.index_dir();
    stateless_rpc(
        &repo,
        Service::UploadPack,
        &headers,
        body,
        MAX_UPLOAD_REQUEST_BYTES,
        Vec::new(),
        Vec::new(),
    )
    .await
}

async fn index_receive_pack() -> Response {
    git_error(StatusCode::FORBIDDEN, INDEX_READ_ONLY).into_response()
}

// ---- mission repositories --------------------------------------------------------------

/// The mission name in `NAME.git`, checked.
fn mission_name(repo: &str) -> Result<String, Refusal> {
    let Some(name) = repo.strip_suffix(".git") else {
        return Err(git_error(
            StatusCode::NOT_FOUND,
            format!(
                "mission repositories are /git/missions/NAME.git; `{repo}` does not end in .git"
            ),
        ));
    };
    validate_name(name).map_err(|e| git_error(StatusCode::NOT_FOUND, e))?;
    Ok(name.to_owned())
}

fn repo_path(state: &AppState, name: &str) -> PathBuf {
    state
        .data
        .missions_dir()
        .join(format!("{}.git", collision_key(name)))
}

/// The repository for reading: 404 when nobody pushed to it yet.
fn existing_repo(state: &AppState, name: &str) -> Result<PathBuf, Refusal> {
    let path = repo_path(state, name);
    if path.join("HEAD").is_file() {
        Ok(path)
    } else {
        Err(git_error(
            StatusCode::NOT_FOUND,
            format!(
                "no mission repository `{name}` on this node (it is created by its first push)"
            ),
        ))
    }
}

/// The git config key naming who created a repository whose name nobody owns yet.
const CREATOR_KEY: &str = "mission.creator";

/// May `user` push to `/git/missions/NAME.git`? The owners of the name may; nobody may
/// push to a name that collides with another published one; a free name belongs to
/// whoever created its repository until the first publish records owners.
fn check_push_access(state: &AppState, name: &str, user: &TokenRecord) -> Result<(), Refusal> {
    let owners = state.store.owners(&collision_key(name)).map_err(internal)?;
    match owners {
        Some(owners) if owners.name != name => Err(git_error(
            StatusCode::FORBIDDEN,
            WriteError::NameTaken {
                requested: name.to_owned(),
                existing: owners.name,
            },
        )),
        Some(owners) if !owners.users.contains(&user.user) => Err(git_error(
            StatusCode::FORBIDDEN,
            WriteError::NotOwner {
                user: user.user.clone(),
                name: name.to_owned(),
                owners: owners.users.into_iter().collect::<Vec<_>>().join(", "),
            },
        )),
        Some(_) => Ok(()),
        None => {
            let path = repo_path(state, name);
            if !path.join("HEAD").is_file() {
                return Ok(());
            }
            let creator = git2::Config::open(&path.join("config"))
                .and_then(|c| c.get_string(CREATOR_KEY))
                .ok();
            match creator {
                Some(creator) if creator != user.user => Err(git_error(
                    StatusCode::FORBIDDEN,
                    format!("/git/missions/{name}.git was created by `{creator}`, who has not published it yet; only they can push to it until then"),
                )),
                _ => Ok(()),
            }
        }
    }
}

/// The `hooks/pre-receive` script: runs this very binary.
fn hook_script() -> Result<String, Refusal> {
    let exe = std::env::current_exe()
        .map_err(|e| internal(format!("finding the node's own executable: {e}")))?;
    let quoted = exe.display().to_string().replace('\'', r"'\''");
    Ok(format!(
        "#!/bin/sh\n# Written by mission-node: hands the push to the running node.\nexec '{quoted}' hook pre-receive\n"
    ))
}

fn write_hook(repo: &Path, script: &str) -> std::io::Result<()> {
    let path = repo.join("hooks").join("pre-receive");
    if std::fs::read_to_string(&path).is_ok_and(|current| current == script) {
        return Ok(());
    }
    std::fs::create_dir_all(repo.join("hooks"))?;
    let tmp = repo.join("hooks").join(".pre-receive.tmp");
    std::fs::write(&tmp, script)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::rename(&tmp, &path)
}

/// The repository for a push: created (bare, strict receive settings, the hook) when it
/// does not exist; its hook rewritten if the node binary moved.
async fn repo_for_push(state: &AppState, name: &str, user: &str) -> Result<PathBuf, Refusal> {
    let path = repo_path(state, name);
    let script = hook_script()?;
    if path.join("HEAD").is_file() {
        write_hook(&path, &script)
            .map_err(|e| internal(format!("writing the hook of {}: {e}", path.display())))?;
        return Ok(path);
    }
    let dir = state.data.missions_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|e| internal(format!("creating {}: {e}", dir.display())))?;
    let mut suffix = [0u8; 8];
    rand::fill(&mut suffix);
    let tmp = dir.join(format!(
        ".new-{}-{}",
        collision_key(name),
        hex::encode(suffix)
    ));
    let made = async {
        let out = git(&dir, &[])
            // `main`, as `mission new` makes it, so a clone checks out the author's branch.
            .args(["init", "--bare", "--quiet", "--initial-branch=main"])
            .arg(&tmp)
            .output()
            .await
            .map_err(|e| format!("running git init: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "git init --bare {}: {}",
                tmp.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        for (key, value) in [
            ("receive.fsckObjects", "true"),
            ("receive.denyDeletes", "true"),
            ("receive.denyNonFastForwards", "true"),
            ("mission.name", name),
            (CREATOR_KEY, user),
        ] {
            let out = git(&tmp, &[])
                .args(["config", "--file", "config", key, value])
                .output()
                .await
                .map_err(|e| format!("running git config: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "git config {key} in {}: {}",
                    tmp.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        write_hook(&tmp, &script).map_err(|e| format!("writing the hook: {e}"))?;
        Ok(())
    }
    .await;
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(internal(e));
    }
    // Two first pushes may race: the first rename wins, the other uses its repository.
    if let Err(e) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_dir_all(&tmp);
        if !path.join("HEAD").is_file() {
            return Err(internal(format!("creating {}: {e}", path.display())));
        }
    } else {
        tracing::info!(mission = %name, %user, path = %path.display(), "created a mission repository");
    }
    Ok(path)
}

async fn mission_info_refs(
    State(state): State<SharedState>,
    UrlPath(repo): UrlPath<String>,
    Query(query): Query<ServiceQuery>,
    headers: HeaderMap,
) -> Response {
    let name = match mission_name(&repo) {
        Ok(n) => n,
        Err(r) => return r.into_response(),
    };
    match service_of(&query) {
        Ok(Service::UploadPack) => {
            match authorise_read(&state, &headers).and_then(|()| existing_repo(&state, &name)) {
                Ok(path) => advertise(&path, Service::UploadPack).await,
                Err(r) => r.into_response(),
            }
        }
        Ok(Service::ReceivePack) => {
            let user = match authorise_push(&state, &headers, &name) {
                Ok(u) => u,
                Err(r) => return r.into_response(),
            };
            match repo_for_push(&state, &name, &user.user).await {
                Ok(path) => advertise(&path, Service::ReceivePack).await,
                Err(r) => r.into_response(),
            }
        }
        Err(r) => r.into_response(),
    }
}

fn authorise_push(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
) -> Result<TokenRecord, Refusal> {
    let user = crate::auth::require_scope(state, headers, Scope::Publish).map_err(from_api)?;
    check_push_access(state, name, &user)?;
    Ok(user)
}

async fn mission_upload_pack(
    State(state): State<SharedState>,
    UrlPath(repo): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = match authorise_read(&state, &headers)
        .and_then(|()| mission_name(&repo))
        .and_then(|name| existing_repo(&state, &name))
    {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    stateless_rpc(
        &path,
        Service::UploadPack,
        &headers,
        body,
        MAX_UPLOAD_REQUEST_BYTES,
        Vec::new(),
        Vec::new(),
    )
    .await
}

/// The largest pack a push may send: room for some history beside the archive-sized tree.
fn max_push_bytes(state: &AppState) -> u64 {
    state
        .config
        .limits
        .max_archive_bytes
        .saturating_mul(10)
        .max(1 << 20)
}

async fn mission_receive_pack(
    State(state): State<SharedState>,
    UrlPath(repo): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let name = match mission_name(&repo) {
        Ok(n) => n,
        Err(r) => return r.into_response(),
    };
    let user = match authorise_push(&state, &headers, &name) {
        Ok(u) => u,
        Err(r) => return r.into_response(),
    };
    let path = match repo_for_push(&state, &name, &user.user).await {
        Ok(p) => p,
        Err(r) => return r.into_response(),
    };
    let user_json = match serde_json::to_string(&user) {
        Ok(j) => j,
        Err(e) => return internal(format!("encoding the token record: {e}")).into_response(),
    };
    let limit = max_push_bytes(&state);
    let env = vec![
        (hook::ENV_URL.to_owned(), hook_url(&state)),
        (hook::ENV_SECRET.to_owned(), hook_secret().to_owned()),
        (hook::ENV_USER.to_owned(), user_json),
        (hook::ENV_MISSION.to_owned(), name),
    ];
    // receive.maxInputSize makes git refuse an oversized pack with a clear message; the
    // stream cut-off below is the backstop (a bit larger, so git's message wins).
    let config = vec![("receive.maxInputSize", limit.to_string())];
    stateless_rpc(
        &path,
        Service::ReceivePack,
        &headers,
        body,
        limit.saturating_add(1 << 20),
        config,
        env,
    )
    .await
}

// ---- running git -----------------------------------------------------------------------

/// `info/refs`: the `# service=...` pkt-line, a flush, then git's advertisement.
async fn advertise(repo: &Path, service: Service) -> Response {
    let out = git(repo, &[])
        .args([
            service.subcommand(),
            "--stateless-rpc",
            "--advertise-refs",
            ".",
        ])
        .stdin(Stdio::null())
        .output()
        .await;
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            return internal(format!(
                "git {} --advertise-refs in {}: {}",
                service.subcommand(),
                repo.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ))
            .into_response()
        }
        Err(e) => return internal(format!("running git: {e}")).into_response(),
    };
    let mut body = pkt_line(&format!("# service={}\n", service.name())).into_bytes();
    body.extend_from_slice(b"0000");
    body.extend_from_slice(&out.stdout);
    let content_type = format!("application/x-{}-advertisement", service.name());
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
        body,
    )
        .into_response()
}

/// Runs `git SERVICE --stateless-rpc`, streaming the request body (gunzipped when git sent
/// it compressed, cut off past `limit` bytes) into it and its output back.
async fn stateless_rpc(
    repo: &Path,
    service: Service,
    headers: &HeaderMap,
    body: Body,
    limit: u64,
    config: Vec<(&'static str, String)>,
    env: Vec<(String, String)>,
) -> Response {
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or_default().trim().to_ascii_lowercase())
    {
        None => false,
        Some(e) if e == "gzip" || e == "x-gzip" => true,
        Some(e) if e.is_empty() || e == "identity" => false,
        Some(e) => {
            return git_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Encoding `{e}`; send gzip or nothing"),
            )
            .into_response()
        }
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return git_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request is larger than this node accepts ({limit} bytes)"),
        )
        .into_response();
    }
    let mut cmd = git(repo, &config);
    cmd.args([service.subcommand(), "--stateless-rpc", "."])
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // The request may be cut off while git runs; the reaper below ends it then.
        .kill_on_drop(false);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return internal(format!("running git {}: {e}", service.subcommand())).into_response()
        }
    };
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return internal("git's pipes were not opened").into_response();
    };
    let (abort_tx, abort_rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        if let Err(e) = feed(body, gzip, limit, stdin).await {
            let _ = abort_tx.send(e);
        }
    });
    let repo_name = repo.display().to_string();
    tokio::spawn(async move {
        let mut stderr_text = String::new();
        let read_stderr = async {
            let _ = stderr
                .take(64 * 1024)
                .read_to_string(&mut stderr_text)
                .await;
        };
        let waited = async {
            tokio::select! {
                status = child.wait() => status.ok(),
                Ok(reason) = abort_rx => {
                    tracing::warn!(repo = %repo_name, %reason, "git request cut off");
                    let _ = child.kill().await;
                    None
                }
            }
        };
        let (_, status) = tokio::join!(read_stderr, waited);
        match status {
            Some(s) if s.success() => {}
            Some(s) => {
                tracing::warn!(repo = %repo_name, status = %s, stderr = %stderr_text.trim(), "git {} failed", service.subcommand())
            }
            None => {}
        }
    });
    let content_type = format!("application/x-{}-result", service.name());
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(stdout)),
    )
        .into_response()
}

/// Copies the request body into git's stdin; returns why it stopped early.
async fn feed(
    body: Body,
    gzip: bool,
    limit: u64,
    mut stdin: tokio::process::ChildStdin,
) -> Result<(), String> {
    use std::io::Write;
    let mut stream = body.into_data_stream();
    let mut decoder = gzip.then(|| flate2::write::GzDecoder::new(Vec::new()));
    let mut total: u64 = 0;
    let mut pass = |bytes: &[u8], decoder: &mut Option<flate2::write::GzDecoder<Vec<u8>>>| {
        let out = match decoder {
            Some(d) => {
                d.write_all(bytes)
                    .map_err(|e| format!("the gzip request body is corrupt: {e}"))?;
                std::mem::take(d.get_mut())
            }
            None => bytes.to_vec(),
        };
        total += out.len() as u64;
        if total > limit {
            return Err(format!("the request body is larger than {limit} bytes"));
        }
        Ok::<_, String>(out)
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("reading the request body: {e}"))?;
        let out = pass(&chunk, &mut decoder)?;
        stdin
            .write_all(&out)
            .await
            .map_err(|e| format!("writing to git: {e}"))?;
    }
    if let Some(d) = decoder {
        let rest = d
            .finish()
            .map_err(|e| format!("the gzip request body is truncated: {e}"))?;
        stdin
            .write_all(&rest)
            .await
            .map_err(|e| format!("writing to git: {e}"))?;
    }
    stdin
        .shutdown()
        .await
        .map_err(|e| format!("closing git's input: {e}"))?;
    Ok(())
}

// ---- the pre-receive verdict -----------------------------------------------------------

/// `POST /internal/git/pre-receive`: the hook's question, the node's verdict.
async fn pre_receive(
    State(state): State<SharedState>,
    headers: HeaderMap,
    Json(request): Json<HookRequest>,
) -> Response {
    let presented = headers
        .get(hook::SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !constant_time_eq(presented.as_bytes(), hook_secret().as_bytes()) {
        return ApiError::forbidden("this route is for the node's own git hooks").into_response();
    }
    let verdict = match decide(&state, request).await {
        Ok(messages) => HookVerdict {
            accepted: true,
            messages,
        },
        Err(messages) => HookVerdict {
            accepted: false,
            messages: messages
                .into_iter()
                .map(|m| format!("error: {m}"))
                .collect(),
        },
    };
    Json(verdict).into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn is_zero(oid: &str) -> bool {
    !oid.is_empty() && oid.bytes().all(|b| b == b'0')
}

/// A new tag to publish: the ref update and the version from its name.
struct NewTag {
    update: RefUpdate,
    tag: String,
    version: String,
}

/// Checks every update; publishes the one new version tag. `Err` holds the refusals.
async fn decide(state: &AppState, request: HookRequest) -> Result<Vec<String>, Vec<String>> {
    let user: TokenRecord = serde_json::from_str(&request.user).map_err(|e| {
        vec![format!(
            "internal error: the hook's token record is not valid: {e}"
        )]
    })?;
    let name = request.mission.clone();
    validate_name(&name).map_err(|e| vec![e.to_string()])?;
    let repo = repo_path(state, &name);
    let same_repo = match (
        std::fs::canonicalize(&repo),
        std::fs::canonicalize(&request.repo),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same_repo {
        return Err(vec![format!(
            "internal error: the hook ran in {}, not in the repository of `{name}`",
            request.repo
        )]);
    }

    let mut refusals = Vec::new();
    let mut tags = Vec::new();
    for update in &request.updates {
        let r = &update.refname;
        if r.starts_with("refs/heads/") {
            // Branches are the author's history; fast-forward only (receive settings).
            continue;
        }
        let Some(tag) = r.strip_prefix("refs/tags/") else {
            refusals.push(format!(
                "only branches (refs/heads/...) and version tags (refs/tags/vVERSION) can be pushed here, not `{r}`"
            ));
            continue;
        };
        if !is_zero(&update.old) {
            if is_zero(&update.new) {
                refusals.push(format!("the tag `{tag}` cannot be deleted: published versions are permanent (yank a version with `mission yank` instead)"));
            } else {
                refusals.push(format!("the tag `{tag}` cannot be moved: it already points to {}, and published versions never change; publish a new version instead", update.old));
            }
            continue;
        }
        let version = tag
            .strip_prefix('v')
            .filter(|v| semver::Version::parse(v).is_ok());
        match version {
            Some(version) => tags.push(NewTag {
                update: update.clone(),
                tag: tag.to_owned(),
                version: version.to_owned(),
            }),
            None => refusals.push(format!(
                "only version tags named vVERSION (like v1.0.0) can be pushed; `{tag}` is not one"
            )),
        }
    }
    if tags.len() > 1 {
        let names: Vec<&str> = tags.iter().map(|t| t.tag.as_str()).collect();
        refusals.push(format!(
            "push one version tag at a time; this push has {}",
            names.join(", ")
        ));
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    let Some(tag) = tags.pop() else {
        return Ok(Vec::new());
    };
    let objects = ObjectEnv {
        repo,
        object_directory: request.object_directory,
        alternates: request.alternate_object_directories,
    };
    match publish_tag(state, user, &name, &tag, &objects).await {
        Ok(p) => Ok(vec![
            format!("ok {} {}", p.name, p.version),
            format!("published {} {} (sha256 {})", p.name, p.version, p.cksum),
        ]),
        Err(e) => Err(vec![e]),
    }
}

/// Where git's objects are while the push is in quarantine.
struct ObjectEnv {
    repo: PathBuf,
    object_directory: Option<String>,
    alternates: Option<String>,
}

impl ObjectEnv {
    fn git(&self) -> Command {
        let mut cmd = git(&self.repo, &[]);
        cmd.env("GIT_DIR", &self.repo);
        if let Some(dir) = &self.object_directory {
            cmd.env("GIT_OBJECT_DIRECTORY", dir);
        }
        if let Some(alt) = &self.alternates {
            cmd.env("GIT_ALTERNATE_OBJECT_DIRECTORIES", alt);
        }
        cmd
    }

    async fn run(&self, args: &[&str]) -> Result<Vec<u8>, String> {
        let out = self
            .git()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("internal error: running git {}: {e}", args.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "internal error: git {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(out.stdout)
    }
}

/// Reads the tag and its tree from quarantine and runs the publish pipeline.
async fn publish_tag(
    state: &AppState,
    user: TokenRecord,
    name: &str,
    tag: &NewTag,
    objects: &ObjectEnv,
) -> Result<Published, String> {
    let oid = tag.update.new.as_str();
    let kind = objects.run(&["cat-file", "-t", oid]).await?;
    let kind = String::from_utf8_lossy(&kind).trim().to_owned();
    if kind != "tag" {
        return Err(format!(
            "`{}` is a lightweight tag (it points straight at a {kind}); a publish needs the annotated, signed tag `mission tag` makes",
            tag.tag
        ));
    }
    let raw = objects.run(&["cat-file", "tag", oid]).await?;
    let raw =
        String::from_utf8(raw).map_err(|_| format!("the tag `{}` is not UTF-8 text", tag.tag))?;
    let (head, message) = raw.split_once("\n\n").unwrap_or((raw.as_str(), ""));
    let target = head
        .lines()
        .find_map(|l| l.strip_prefix("type "))
        .unwrap_or_default();
    if target != "commit" {
        return Err(format!(
            "the tag `{}` points at a {target}, not a commit",
            tag.tag
        ));
    }
    let message = TagMessage::parse(message).map_err(|e| format!("the tag `{}`: {e}", tag.tag))?;

    let files = read_tree(objects, oid, &tag.tag).await?;
    let limits = ArchiveLimits {
        max_compressed_bytes: state.config.limits.max_archive_bytes,
        ..ArchiveLimits::default()
    };
    // The pipeline checks the signature against the archive it rebuilds; rebuilding here
    // too lets the refusal name both checksums when the tree is not what was signed.
    let rebuild_files = files.clone();
    let rebuilt = tokio::task::spawn_blocking(move || {
        archive::build_archive_from_files(rebuild_files, &limits)
    })
    .await
    .map_err(|e| format!("internal error: the archive task failed: {e}"))?
    .map_err(|e| PublishError::Archive(e).to_string())?;
    let rebuilt = archive::cksum(&rebuilt);
    if message.cksum != rebuilt {
        return Err(format!(
            "the tag `{}` says the archive has sha256 {}, but the archive rebuilt from the tagged tree has sha256 {rebuilt}; the tree is not what was signed: run `mission tag` again on the committed tree",
            tag.tag, message.cksum
        ));
    }
    if message.name != name {
        return Err(format!(
            "the tag `{}` publishes `{}`, but it was pushed to /git/missions/{name}.git",
            tag.tag, message.name
        ));
    }
    if message.version != tag.version {
        return Err(format!(
            "the tag is named `{}`, but its message says version {}; make the tag with `mission tag`",
            tag.tag, message.version
        ));
    }
    let request = PublishRequest {
        user,
        files: PackageFiles::Tree(files),
        signature: message.signature.clone(),
        author_key: message.key.clone(),
        repo_name: Some(name.to_owned()),
        tag_version: Some(tag.version.clone()),
    };
    let published = publish::publish(state, request)
        .await
        .map_err(|e| e.to_string())?;
    if published.name != message.name
        || published.version != message.version
        || published.cksum != message.cksum
    {
        // The checks above make this impossible; say so loudly if it ever happens.
        return Err(format!(
            "internal error: published {} {} (sha256 {}), but the tag says {} {} (sha256 {})",
            published.name,
            published.version,
            published.cksum,
            message.name,
            message.version,
            message.cksum
        ));
    }
    Ok(published)
}

/// One entry of `git ls-tree -r -l -z`.
#[derive(Debug, PartialEq, Eq)]
struct TreeEntry {
    mode: String,
    kind: String,
    oid: String,
    size: Option<u64>,
    path: String,
}

/// Parses `git ls-tree -r -l -z` output: `MODE TYPE OID SIZE\tPATH\0`...
fn parse_ls_tree(out: &[u8]) -> Result<Vec<TreeEntry>, String> {
    let mut entries = Vec::new();
    for record in out.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let record = std::str::from_utf8(record)
            .map_err(|_| "a path in the tagged tree is not UTF-8".to_owned())?;
        let (meta, path) = record
            .split_once('\t')
            .ok_or_else(|| format!("internal error: unexpected ls-tree line {record:?}"))?;
        let mut parts = meta.split_whitespace();
        let (Some(mode), Some(kind), Some(oid), Some(size)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "internal error: unexpected ls-tree line {record:?}"
            ));
        };
        entries.push(TreeEntry {
            mode: mode.to_owned(),
            kind: kind.to_owned(),
            oid: oid.to_owned(),
            size: size.parse().ok(),
            path: path.to_owned(),
        });
    }
    Ok(entries)
}

/// The files of the tagged tree: symlinks and submodules refused, sizes checked before
/// any blob is read.
async fn read_tree(objects: &ObjectEnv, oid: &str, tag: &str) -> Result<Vec<SourceFile>, String> {
    let out = objects
        .run(&["ls-tree", "-r", "-l", "-z", "--full-tree", oid])
        .await?;
    let entries = parse_ls_tree(&out)?;
    let limits = ArchiveLimits::default();
    let mut total: u64 = 0;
    let mut wanted = Vec::new();
    for e in entries {
        let executable = match e.mode.as_str() {
            "100644" | "100664" => false,
            "100755" => true,
            "120000" => {
                return Err(format!(
                    "the tag `{tag}` holds a symbolic link, `{}`; packages hold only regular files",
                    e.path
                ))
            }
            "160000" => {
                return Err(format!(
                    "the tag `{tag}` holds a submodule, `{}`; packages hold only regular files (vendor the files instead)",
                    e.path
                ))
            }
            other => {
                return Err(format!(
                    "the tag `{tag}` holds `{}` with git mode {other}; packages hold only regular files",
                    e.path
                ))
            }
        };
        if e.kind != "blob" {
            return Err(format!(
                "internal error: `{}` in the tag `{tag}` is a {}",
                e.path, e.kind
            ));
        }
        let size = e.size.unwrap_or(0);
        if size > limits.max_file_bytes {
            return Err(PublishError::Archive(archive::ArchiveError::FileTooLarge {
                path: e.path,
                size,
                limit: limits.max_file_bytes,
            })
            .to_string());
        }
        total = total.saturating_add(size);
        if total > limits.max_total_bytes {
            return Err(PublishError::Archive(archive::ArchiveError::TotalTooLarge {
                path: e.path,
                limit: limits.max_total_bytes,
            })
            .to_string());
        }
        wanted.push((e.path, e.oid, executable));
    }
    let blobs = read_blobs(objects, wanted.iter().map(|w| w.1.as_str()).collect()).await?;
    Ok(wanted
        .into_iter()
        .zip(blobs)
        .map(|((path, _, executable), data)| SourceFile {
            path,
            executable,
            data,
        })
        .collect())
}

/// Reads blobs with one `git cat-file --batch`, in order.
async fn read_blobs(objects: &ObjectEnv, oids: Vec<&str>) -> Result<Vec<Vec<u8>>, String> {
    let mut child = objects
        .git()
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("internal error: running git cat-file --batch: {e}"))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("internal error: git cat-file's pipes were not opened".into());
    };
    let input: String = oids.iter().map(|o| format!("{o}\n")).collect();
    // Written from its own task so a large answer never blocks our writes.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(input.as_bytes()).await;
        let _ = stdin.shutdown().await;
    });
    let mut reader = BufReader::new(stdout);
    let mut blobs = Vec::with_capacity(oids.len());
    for oid in &oids {
        let mut header = String::new();
        reader
            .read_line(&mut header)
            .await
            .map_err(|e| format!("internal error: reading git cat-file: {e}"))?;
        let mut parts = header.split_whitespace();
        let (Some(_), Some(kind), Some(size)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "internal error: the object {oid} is missing: {}",
                header.trim()
            ));
        };
        if kind != "blob" {
            return Err(format!("internal error: {oid} is a {kind}, not a blob"));
        }
        let size: usize = size
            .parse()
            .map_err(|_| format!("internal error: bad cat-file header {header:?}"))?;
        let mut data = vec![0u8; size];
        reader
            .read_exact(&mut data)
            .await
            .map_err(|e| format!("internal error: reading {oid}: {e}"))?;
        let mut newline = [0u8; 1];
        reader
            .read_exact(&mut newline)
            .await
            .map_err(|e| format!("internal error: reading {oid}: {e}"))?;
        blobs.push(data);
    }
    let _ = writer.await;
    let _ = child.wait().await;
    Ok(blobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkt_lines_carry_their_length() {
        assert_eq!(
            pkt_line("# service=git-upload-pack\n"),
            "001e# service=git-upload-pack\n"
        );
        assert_eq!(Service::ReceivePack.subcommand(), "receive-pack");
        assert_eq!(Service::parse("git-upload-pack"), Some(Service::UploadPack));
        assert_eq!(Service::parse("git-annex"), None);
    }

    #[test]
    fn mission_urls_need_dot_git_and_a_valid_name() {
        assert_eq!(mission_name("fix_build.git").unwrap(), "fix_build");
        assert_eq!(
            mission_name("fix_build").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            mission_name("9lives.git").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn ls_tree_output_is_parsed_with_modes_and_sizes() {
        let out = b"100644 blob aaaa      12\tmission.yaml\x00100755 blob bbbb       3\tbin/run me.sh\x00120000 blob cccc       5\tlink\0";
        let entries = parse_ls_tree(out).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[1].mode, "100755");
        assert_eq!(entries[1].path, "bin/run me.sh");
        assert_eq!(entries[1].size, Some(3));
        assert_eq!(entries[0].oid, "aaaa");
        assert!(parse_ls_tree(b"garbage\0").is_err());
    }

    #[test]
    fn refusals_are_plain_text_git_shows() {
        let r = git_error(StatusCode::UNAUTHORIZED, "no token\nsecond line").into_response();
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(is_zero("0000000000000000000000000000000000000000"));
        assert!(!is_zero("0000000000000000000000000000000000000001"));
        assert!(!is_zero(""));
    }
}
