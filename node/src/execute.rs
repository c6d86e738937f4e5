//! Missions executed on the node:
//!
//! - `POST /api/v1/missions/{name}/execute`, body `{"version"?: "1.2.0", "params": {"k":
//!   "v"}}`, a token with the `execute` scope: resolves the version (the newest non-yanked
//!   one when absent), reads the archive from the blob store (checked against the index
//!   checksum), unpacks it into a fresh work folder `DATA/executions/ID/work`, loads the
//!   package, checks its permissions and parameters against the node's policy, and queues
//!   the run. Answers 202 `{"execution_id": "...", "status": "queued"}`.
//! - `GET /api/v1/executions/{id}`: `{execution_id, mission, version, status, report?,
//!   error?}`, status `queued|running|succeeded|failed`; only for the user who started it
//!   or an `admin` token (404 for anyone else, so ids of others' runs reveal nothing).
//!
//! The queue is bounded (`[execution] queue` in node.toml; full: 503) and drained by
//! `concurrency` runners, each running one mission at a time in `spawn_blocking` through the
//! executor, in the sandbox (`SandboxChoice::Auto`). Per-user quotas (`per_user_running`
//! queued or running at once, `per_user_per_hour` starts) answer 429 naming the quota.
//!
//! The node's policy: the package's declared permissions, no network unless
//! `[execution] allow_hosts` lists the host, no LLM unless `[execution] llm` is on, and at
//! most `max_duration_seconds` per run. Paid missions go through [`licence_allows`].
//!
//! Each execution is a record in redb (`executions`), written when queued, started and
//! finished, so a status survives a restart; runs a restart interrupted are marked failed
//! at start-up. Queued and finished runs are appended to the audit log ([`crate::audit`]),
//! which also keeps the per-version statistics. The work folder is removed after the run:
//! the report keeps what the steps produced.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use mission_executor::engine::{self, RunOptions};
use mission_executor::policy::UserPolicy;
use mission_executor::report::{Report, RunStatus};
use mission_executor::sandbox::{choose, SandboxChoice};
use mission_executor::steps::LlmConfig;
use mission_index::archive::{self, ArchiveLimits};
use mission_index::entry::IndexEntry;
use mission_index::manifest::Pricing;
use mission_index::package;
use redb::{ReadableDatabase, TableDefinition, TableError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::api::{find_version, read_mission};
use crate::audit::{self, Event};
use crate::auth::{require_scope, require_user};
use crate::config::ExecutionSettings;
use crate::error::ApiError;
use crate::server::{AppState, SharedState};
use crate::store::{corrupt, Scope, Store, StoreError, TokenRecord};

/// execution id -> [`Execution`] (JSON)
const EXECUTIONS: TableDefinition<&str, &str> = TableDefinition::new("executions");

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/api/v1/missions/{name}/execute", post(execute))
        .route("/api/v1/executions/{id}", get(status))
}

/// Where an execution is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        }
    }
}

/// One execution as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Execution {
    pub execution_id: String,
    pub user: String,
    pub mission: String,
    pub version: String,
    pub cksum: String,
    pub status: Status,
    pub queued_at: String,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// The executor's report, once the run ended.
    #[serde(default)]
    pub report: Option<Report>,
    /// Why the run did not start or could not finish.
    #[serde(default)]
    pub error: Option<String>,
}

impl Execution {
    fn to_json(&self) -> Value {
        let mut out = json!({
            "execution_id": self.execution_id,
            "mission": self.mission,
            "version": self.version,
            "status": self.status,
        });
        if let Some(report) = &self.report {
            out["report"] = serde_json::to_value(report).unwrap_or(Value::Null);
        }
        if let Some(error) = &self.error {
            out["error"] = json!(error);
        }
        out
    }
}

fn save(store: &Store, execution: &Execution) -> Result<(), StoreError> {
    let txn = store.db().begin_write()?;
    {
        let text = serde_json::to_string(execution).unwrap_or_default();
        txn.open_table(EXECUTIONS)?
            .insert(execution.execution_id.as_str(), text.as_str())?;
    }
    txn.commit()?;
    Ok(())
}

fn load(store: &Store, id: &str) -> Result<Option<Execution>, StoreError> {
    let txn = store.db().begin_read()?;
    let table = match txn.open_table(EXECUTIONS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match table.get(id)? {
        Some(v) => Ok(Some(
            serde_json::from_str(v.value()).map_err(|e| corrupt("executions", id, e))?,
        )),
        None => Ok(None),
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A run waiting for a runner.
struct Job {
    execution: Execution,
    workdir: PathBuf,
    source: package::MissionSource,
    params: Vec<(String, String)>,
    /// Frees the user's running slot when the job ends, however it ends.
    _slot: Slot,
}

/// Per-user counters for the quotas.
#[derive(Default)]
struct Usage {
    active: usize,
    starts: VecDeque<Instant>,
}

/// The execution side of the node: the queue's sending end and the quotas.
pub struct Executions {
    sender: mpsc::Sender<Job>,
    receiver: Mutex<Option<mpsc::Receiver<Job>>>,
    usage: Arc<Mutex<HashMap<String, Usage>>>,
    settings: ExecutionSettings,
}

/// One of a user's `per_user_running` slots; freed on drop.
struct Slot {
    user: String,
    usage: Arc<Mutex<HashMap<String, Usage>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut usage) = self.usage.lock() {
            if let Some(u) = usage.get_mut(&self.user) {
                u.active = u.active.saturating_sub(1);
            }
        }
    }
}

fn too_many(detail: String) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, detail)
}

impl Executions {
    pub fn new(settings: &ExecutionSettings) -> Executions {
        let (sender, receiver) = mpsc::channel(settings.queue.max(1));
        Executions {
            sender,
            receiver: Mutex::new(Some(receiver)),
            usage: Arc::default(),
            settings: settings.clone(),
        }
    }

    /// Takes one of `user`'s slots, or says which quota is spent (429).
    fn take_slot(&self, user: &str) -> Result<Slot, ApiError> {
        let mut usage = self
            .usage
            .lock()
            .map_err(|_| ApiError::internal("the execution quotas' lock is poisoned"))?;
        let u = usage.entry(user.to_owned()).or_default();
        let hour = Duration::from_secs(3600);
        while u.starts.front().is_some_and(|t| t.elapsed() >= hour) {
            u.starts.pop_front();
        }
        let s = &self.settings;
        if u.active >= s.per_user_running {
            return Err(too_many(format!(
                "quota per_user_running: `{user}` already has {} execution(s) queued or running \
                 on this node, the most allowed at once; wait for one to finish",
                u.active
            )));
        }
        if u.starts.len() >= s.per_user_per_hour {
            let wait = u
                .starts
                .front()
                .map(|t| hour.saturating_sub(t.elapsed()).as_secs() + 1)
                .unwrap_or(1);
            return Err(too_many(format!(
                "quota per_user_per_hour: `{user}` started {} executions in the last hour, the \
                 most allowed; try again in {wait} s",
                u.starts.len()
            )));
        }
        u.active += 1;
        u.starts.push_back(Instant::now());
        Ok(Slot {
            user: user.to_owned(),
            usage: self.usage.clone(),
        })
    }
}

/// Starts the runners (once, after the state exists), marks runs a restart interrupted as
/// failed (audited and counted as failures) and removes their work folders.
pub fn start(state: &SharedState) -> anyhow::Result<()> {
    fail_interrupted(&state.store)?;
    // Nothing runs yet: any work folder is a leftover of a stopped node.
    let folders = state.data.root.join("executions");
    match std::fs::remove_dir_all(&folders) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(anyhow::anyhow!(
                "removing the work folders a stopped node left in {}: {e}",
                folders.display()
            ))
        }
    }
    let receiver = state
        .executions
        .receiver
        .lock()
        .map_err(|_| anyhow::anyhow!("the execution queue's lock is poisoned"))?
        .take();
    let Some(receiver) = receiver else {
        return Ok(());
    };
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    for _ in 0..state.config.execution.concurrency.max(1) {
        let receiver = receiver.clone();
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                let job = receiver.lock().await.recv().await;
                let Some(job) = job else { break };
                let state = state.clone();
                let id = job.execution.execution_id.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || run_job(&state, job)).await {
                    tracing::error!(execution = %id, error = %e, "an execution's task failed");
                }
            }
        });
    }
    Ok(())
}

/// Queued or running executions left by a stopped node end as failed.
fn fail_interrupted(store: &Store) -> Result<(), StoreError> {
    let stale: Vec<Execution> = {
        let txn = store.db().begin_read()?;
        let table = match txn.open_table(EXECUTIONS) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for row in redb::ReadableTable::iter(&table)? {
            let (k, v) = row?;
            let e: Execution =
                serde_json::from_str(v.value()).map_err(|e| corrupt("executions", k.value(), e))?;
            if matches!(e.status, Status::Queued | Status::Running) {
                out.push(e);
            }
        }
        out
    };
    for mut e in stale {
        e.status = Status::Failed;
        e.finished_at = Some(now());
        e.error = Some("the node stopped before this execution finished; start it again".into());
        save(store, &e)?;
        audit_event(store, &e, Some(0));
        tracing::warn!(execution = %e.execution_id, "marked an interrupted execution failed");
    }
    Ok(())
}

/// Appends `e` to the audit log (and, when finished, to the statistics); a failure is
/// logged, never lost silently.
fn audit_event(store: &Store, e: &Execution, duration_ms: Option<u64>) {
    let event = Event {
        user: e.user.clone(),
        mission: e.mission.clone(),
        version: e.version.clone(),
        cksum: e.cksum.clone(),
        execution_id: e.execution_id.clone(),
        status: e.status.as_str().to_owned(),
        duration_ms,
    };
    let finished = duration_ms.map(|d| (e.status == Status::Succeeded, d));
    if let Err(err) = audit::append(store, event, finished) {
        tracing::error!(execution = %e.execution_id, error = %err, "appending to the audit log");
    }
}

/// The node's policy for runs.
fn node_policy(settings: &ExecutionSettings) -> UserPolicy {
    UserPolicy {
        commands: None,
        hosts: settings.allow_hosts.clone(),
        private_hosts: Vec::new(),
        llm: settings.llm,
        max_duration_seconds: Some(settings.max_duration_seconds),
    }
}

/// Runs one job to its end (on a blocking thread).
fn run_job(state: &AppState, job: Job) {
    let Job {
        mut execution,
        workdir,
        source,
        params,
        _slot: slot,
    } = job;
    execution.status = Status::Running;
    if let Err(e) = save(&state.store, &execution) {
        tracing::error!(execution = %execution.execution_id, error = %e, "saving the running state");
    }
    let started = Instant::now();
    let settings = &state.config.execution;
    let outcome = (|| -> Result<Report, String> {
        let llm = if settings.llm {
            LlmConfig::from_env().map_err(|e| format!("the node's LLM settings: {e}"))?
        } else {
            None
        };
        let sandbox = choose(SandboxChoice::Auto)
            .map_err(|e| format!("no sandbox to run the mission in on this node: {e}"))?;
        let options = RunOptions {
            workdir: workdir.clone(),
            params,
            policy: node_policy(settings),
            llm,
            cksum: Some(execution.cksum.clone()),
            toolchains: if settings.host_toolchains {
                mission_executor::toolchains::HostToolchains::detect()
            } else {
                Default::default()
            },
        };
        engine::run(
            &source.mission,
            source.manifest.as_ref(),
            Arc::from(sandbox),
            &options,
            &(),
        )
        .map_err(|e| format!("the run did not start: {e}"))
    })();
    let duration_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(report) => {
            execution.status = match report.status {
                RunStatus::Success => Status::Succeeded,
                RunStatus::Failed => Status::Failed,
            };
            execution.report = Some(report);
        }
        Err(error) => {
            execution.status = Status::Failed;
            execution.error = Some(error);
        }
    }
    execution.finished_at = Some(now());
    // Free the user's slot before the result is visible: a client that sees the run finish
    // may start the next one at once.
    drop(slot);
    if let Err(e) = save(&state.store, &execution) {
        tracing::error!(execution = %execution.execution_id, error = %e, "saving the result");
    }
    audit_event(&state.store, &execution, Some(duration_ms));
    metrics::counter!("mission_executions_total", "status" => execution.status.as_str())
        .increment(1);
    tracing::info!(
        execution = %execution.execution_id,
        mission = %execution.mission,
        version = %execution.version,
        status = execution.status.as_str(),
        duration_ms,
        "execution finished"
    );
    remove_run_folder(&workdir);
}

fn remove_run_folder(workdir: &std::path::Path) {
    let folder = workdir.parent().unwrap_or(workdir);
    if let Err(e) = std::fs::remove_dir_all(folder) {
        tracing::warn!(folder = %folder.display(), error = %e, "removing an execution's folder");
    }
}

// ---- the licence hook ----

/// Whether `user` may run `entry` on this node. Free missions always; paid missions need a
/// licence, which this node cannot check yet (the licensing work fills this in).
pub fn licence_allows(
    _state: &AppState,
    _user: &TokenRecord,
    entry: &IndexEntry,
) -> Result<(), ApiError> {
    match entry.pricing {
        Pricing::Free => Ok(()),
        Pricing::Paid { .. } => Err(ApiError::new(
            StatusCode::PAYMENT_REQUIRED,
            format!(
                "`{}` {} is a paid mission: paid missions need a licence (not available on \
                 this node yet)",
                entry.name, entry.vers
            ),
        )),
    }
}

// ---- POST /api/v1/missions/{name}/execute ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecuteBody {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    params: BTreeMap<String, Value>,
}

fn parse_body(body: &[u8]) -> Result<ExecuteBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(ExecuteBody::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON `{{\"version\"?: \"1.2.0\", \"params\": {{\"name\": \
             \"value\"}}}}`: {e}"
        ))
    })
}

fn param_values(params: BTreeMap<String, Value>) -> Result<Vec<(String, String)>, ApiError> {
    params
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k, s)),
            Value::Number(n) => Ok((k, n.to_string())),
            Value::Bool(b) => Ok((k, b.to_string())),
            other => Err(ApiError::bad_request(format!(
                "parameter `{k}`: give a string, number or boolean, not {other}"
            ))),
        })
        .collect()
}

/// The version to run: the one asked for, or the newest non-yanked.
fn pick_version<'m>(
    mission: &'m crate::api::Mission,
    version: Option<&str>,
) -> Result<&'m IndexEntry, ApiError> {
    let entry = match version {
        Some(v) => find_version(mission, v)?,
        None => mission
            .entries
            .iter()
            .filter(|e| !e.yanked)
            .filter_map(|e| e.version().ok().map(|v| (v, e)))
            .max_by(|a, b| a.0.cmp(&b.0))
            .map(|(_, e)| e)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "every version of `{}` is yanked; nothing to run",
                    mission.name
                ))
            })?,
    };
    if entry.yanked {
        return Err(ApiError::bad_request(format!(
            "`{}` {} is yanked; run another version (or leave `version` out for the newest)",
            entry.name, entry.vers
        )));
    }
    Ok(entry)
}

fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

async fn execute(
    State(state): State<SharedState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let user = require_scope(&state, &headers, Scope::Execute)?;
    let body = parse_body(&body)?;
    let params = param_values(body.params)?;
    // A place in the queue first, so a full node answers at once and does no work.
    let permit = match state.executions.sender.clone().try_reserve_owned() {
        Ok(p) => p,
        Err(mpsc::error::TrySendError::Full(_)) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the execution queue of this node is full ({} runs waiting); try again later",
                    state.config.execution.queue
                ),
            ))
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "this node is not running executions (it is shutting down)",
            ))
        }
    };
    let job = tokio::task::spawn_blocking({
        let state = state.clone();
        move || prepare(&state, user, &name, body.version, params)
    })
    .await
    .map_err(|e| ApiError::internal(format!("preparing the execution: the task failed: {e}")))??;
    let execution = job.execution.clone();
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || audit_event(&store, &execution, None))
        .await
        .map_err(|e| ApiError::internal(format!("writing the audit log: the task failed: {e}")))?;
    let id = job.execution.execution_id.clone();
    tracing::info!(execution = %id, mission = %job.execution.mission, version = %job.execution.version, user = %job.execution.user, "execution queued");
    permit.send(job);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"execution_id": id, "status": "queued"})),
    ))
}

/// Everything before the queue: the version, the licence, the quotas, the archive, the
/// work folder, the package, and the policy and parameter checks.
fn prepare(
    state: &AppState,
    user: TokenRecord,
    name: &str,
    version: Option<String>,
    params: Vec<(String, String)>,
) -> Result<Job, ApiError> {
    let mission = read_mission(state, name)?;
    let entry = pick_version(&mission, version.as_deref())?.clone();
    licence_allows(state, &user, &entry)?;
    let slot = state.executions.take_slot(&user.user)?;
    let what = format!("`{}` {} (sha256 {})", entry.name, entry.vers, entry.cksum);
    let bytes = match state.blobs.get(&entry.cksum) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => {
            return Err(ApiError::internal(format!(
                "the archive of {what} is missing from the blob store; the node operator \
                 should run `mission-node admin fsck`"
            )))
        }
        Err(e) => {
            return Err(ApiError::internal(format!(
                "the archive of {what} cannot be used: {e}; the node operator should run \
                 `mission-node admin fsck`"
            )))
        }
    };
    let id = new_id();
    let folder = state.data.root.join("executions").join(&id);
    let workdir = folder.join("work");
    let cleanup = |e: ApiError| {
        let _ = std::fs::remove_dir_all(&folder);
        e
    };
    std::fs::create_dir_all(&folder).map_err(|e| {
        ApiError::internal(format!(
            "making the execution folder {}: {e}",
            folder.display()
        ))
    })?;
    let limits = ArchiveLimits {
        max_compressed_bytes: state.config.limits.max_archive_bytes,
        ..ArchiveLimits::default()
    };
    archive::unpack_archive(&bytes, &workdir, &limits)
        .map_err(|e| ApiError::internal(format!("unpacking the archive of {what}: {e}")))
        .map_err(cleanup)?;
    let (source, _manifest) = package::load_package_dir(&workdir)
        .map_err(|e| ApiError::internal(format!("loading the package {what}: {e}")))
        .map_err(cleanup)?;
    let policy = node_policy(&state.config.execution);
    engine::grant_for(&source.mission, source.manifest.as_ref(), &policy)
        .map_err(|e| ApiError::forbidden(format!("this node does not run it: {e}")))
        .map_err(cleanup)?;
    engine::resolve_parameters(source.manifest.as_ref(), &params)
        .map_err(|e| ApiError::bad_request(format!("not running {what}: {e}")))
        .map_err(cleanup)?;
    let execution = Execution {
        execution_id: id,
        user: user.user,
        mission: entry.name.clone(),
        version: entry.vers.clone(),
        cksum: entry.cksum.clone(),
        status: Status::Queued,
        queued_at: now(),
        finished_at: None,
        report: None,
        error: None,
    };
    save(&state.store, &execution)
        .map_err(ApiError::internal)
        .map_err(cleanup)?;
    Ok(Job {
        execution,
        workdir,
        source,
        params,
        _slot: slot,
    })
}

// ---- GET /api/v1/executions/{id} ----

async fn status(
    State(state): State<SharedState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = require_user(&state, &headers)?;
    let store = state.store.clone();
    let found = tokio::task::spawn_blocking({
        let id = id.clone();
        move || load(&store, &id)
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading the execution: the task failed: {e}")))?
    .map_err(ApiError::internal)?;
    let unknown = || ApiError::not_found(format!("no execution `{id}` of yours on this node"));
    let execution = found.ok_or_else(unknown)?;
    if execution.user != caller.user && !caller.scopes.contains(&Scope::Admin) {
        return Err(unknown());
    }
    Ok(Json(execution.to_json()))
}
