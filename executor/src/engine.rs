//! The engine: runs a mission's steps in dependency order, in parallel where it may, and
//! writes the [`Report`].
//!
//! What RustChain v0.1.0 does (its `DagExecutor::execute_mission`), this engine does:
//!
//! - steps run in topological order of `depends_on`;
//! - a step's time limit is its `timeout_seconds`, else `config.timeout_seconds`, else 300 s;
//! - a step that *ran and failed* (a command exiting non-zero, an HTTP error status) is
//!   marked failed and the mission goes on;
//! - a step that *could not run* (a missing parameter, a file that is not there, a denied
//!   program, a timeout) stops the mission when `config.fail_fast` is on (RustChain's
//!   default) and the step has no `continue_on_error`; otherwise it is marked failed too;
//! - a step whose dependency failed is skipped, unless it has `continue_on_error`, or
//!   `fail_fast` is off (RustChain then runs it anyway);
//! - `{var}` placeholders in `create_file` content are filled from what earlier `llm` steps
//!   answered ([`crate::steps::substitute_variables`]).
//!
//! Where it goes further:
//!
//! - independent steps run at the same time, up to `config.max_parallel_steps` (default
//!   [`DEFAULT_MAX_PARALLEL_STEPS`]): a ready queue in topological order feeds worker
//!   threads, so with `max_parallel_steps: 1` the order is RustChain's;
//! - a step whose dependency was *skipped* is skipped too (RustChain runs it, since only a
//!   *failed* dependency counts there);
//! - the run succeeds only when every step succeeded: a skipped step fails the run;
//! - every permission is checked before the first step ([`crate::policy::grant`]) and
//!   again at each step, processes run in the sandbox, and the whole run stops at the
//!   grant's `max_duration_seconds`;
//! - the run's parameters (`--param name=value`, checked against the package's
//!   `parameters`) are variables for the same substitution, and reach processes as
//!   `MISSION_PARAM_<NAME>` environment variables.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use mission_index::manifest::{Manifest, ParameterType};
use mission_index::mission::{Mission, Step, ValidationError};
use serde_json::Value;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::plan::DEFAULT_MAX_PARALLEL_STEPS;
use crate::policy::{self, Grant, PolicyError, UserPolicy};
use crate::report::{cap_output, Report, RunStatus, StepReport, StepStatus};
use crate::sandbox::{lease, Sandbox, SandboxError};
use crate::steps::{
    self, files::WorkFolder, LlmConfig, StepCall, StepContext, StepError, StepOutput,
};
use crate::toolchains::HostToolchains;

/// A step's time limit when neither it nor the mission sets one (RustChain's).
pub const DEFAULT_STEP_TIMEOUT_SECONDS: u64 = 300;

/// Extra time the engine gives a step past its limit before giving up on it, so the
/// sandbox's own kill (which reports the process's output) comes first.
const GRACE: Duration = Duration::from_secs(2);

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The work folder: the only place steps read and write, and where processes run.
    pub workdir: PathBuf,
    /// `--param name=value` pairs, in the order given.
    pub params: Vec<(String, String)>,
    pub policy: UserPolicy,
    /// Where `llm` steps go; `None`: they fail, saying what to configure.
    pub llm: Option<LlmConfig>,
    /// SHA-256 of the archive or file being run, for the report.
    pub cksum: Option<String>,
    /// Toolchains outside `/usr` that sandboxed steps see (none by default).
    pub toolchains: HostToolchains,
}

impl RunOptions {
    /// Runs in `workdir` with the default policy, no parameters and no LLM.
    pub fn new(workdir: impl Into<PathBuf>) -> RunOptions {
        RunOptions {
            workdir: workdir.into(),
            params: Vec::new(),
            policy: UserPolicy::default(),
            llm: None,
            cksum: None,
            toolchains: HostToolchains::default(),
        }
    }
}

/// Told as steps start and end (from the engine's thread, in the order it sees them).
pub trait Observer {
    fn step_started(&self, _step: &Step) {}
    fn step_finished(&self, _step: &Step, _report: &StepReport) {}
}

impl Observer for () {}

/// Why a run did not start.
#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Denied(#[from] PolicyError),
    #[error("the mission is not valid: {0}")]
    Invalid(#[from] ValidationError),
    #[error("parameter `{name}`: {reason}")]
    Parameter { name: String, reason: String },
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("the work folder {path}: {source}")]
    Workdir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs `mission` (with its `package:` block, when it has one) in the sandbox. Refuses to
/// start when the mission needs more than the grant, or the parameters are wrong; once
/// started, always returns a report.
pub fn run(
    mission: &Mission,
    manifest: Option<&Manifest>,
    sandbox: Arc<dyn Sandbox>,
    options: &RunOptions,
    observer: &dyn Observer,
) -> Result<Report, RunError> {
    let order = mission.topological_order()?;
    let grant = policy::grant(mission, manifest.map(|m| &m.permissions), &options.policy)?;
    let params = resolve_parameters(manifest, &options.params)?;
    let folder = WorkFolder::open(&options.workdir).map_err(|source| RunError::Workdir {
        path: options.workdir.clone(),
        source,
    })?;
    let env = options
        .toolchains
        .environment()
        .into_iter()
        .chain(params.iter().map(|(k, v)| {
            (
                format!("MISSION_PARAM_{}", k.to_ascii_uppercase().replace('-', "_")),
                v.clone(),
            )
        }))
        .collect();
    let folder_root = folder.root().to_path_buf();
    let folder_root = folder_root.as_path();
    let ctx = Arc::new(StepContext {
        folder,
        sandbox: sandbox.clone(),
        grant,
        llm: options.llm.clone(),
        variables: Mutex::new(params),
        env,
        read_only: options.toolchains.read_only.clone(),
        // Lent for the whole run, not step by step: while a sandboxed step runs, a parallel
        // file step still writes as the sandbox uid (see ActAsSandboxUser), and the folder
        // goes back to its owner once, when the last holder of the context lets go (a step
        // thread the scheduler gave up on at its timeout may still hold it).
        workdir_lease: if sandbox.runs_as_sandbox_user() {
            lease::lend_workdir_for_run(folder_root)?
        } else {
            None
        },
    });
    let (mission_name, version) = match manifest {
        Some(m) => (m.name.to_string(), m.version.to_string()),
        None => (mission.name.clone(), mission.version.clone()),
    };
    let started = Instant::now();
    let steps = Scheduler::new(mission, order, ctx).run(observer);
    let status = if steps.iter().all(|s| s.status == StepStatus::Success) {
        RunStatus::Success
    } else {
        RunStatus::Failed
    };
    Ok(Report {
        execution_id: new_execution_id(),
        mission: mission_name,
        version,
        cksum: options.cksum.clone(),
        status,
        steps,
        duration_ms: millis(started.elapsed()),
        sandbox: sandbox.name().to_owned(),
    })
}

/// Checks `--param` values against the package's declared parameters and fills in
/// defaults. A plain mission takes any parameters.
pub fn resolve_parameters(
    manifest: Option<&Manifest>,
    given: &[(String, String)],
) -> Result<BTreeMap<String, String>, RunError> {
    let bad = |name: &str, reason: String| RunError::Parameter {
        name: name.to_owned(),
        reason,
    };
    let mut values = BTreeMap::new();
    for (name, value) in given {
        let well_formed = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !well_formed {
            return Err(bad(
                name,
                "a parameter name is letters, digits, `_` and `-`, starting with a letter".into(),
            ));
        }
        if values.insert(name.clone(), value.clone()).is_some() {
            return Err(bad(name, "given twice".into()));
        }
    }
    let Some(manifest) = manifest else {
        return Ok(values);
    };
    let declared = &manifest.parameters;
    for name in values.keys() {
        if !declared.iter().any(|d| &d.name == name) {
            let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
            return Err(bad(
                name,
                if names.is_empty() {
                    "the package declares no parameters".into()
                } else {
                    format!(
                        "not a parameter of this package (it has: {})",
                        names.join(", ")
                    )
                },
            ));
        }
    }
    for d in declared {
        match values.get(&d.name) {
            Some(value) => {
                let ok = match d.kind {
                    ParameterType::String => true,
                    ParameterType::Path => !value.is_empty(),
                    ParameterType::Integer => value.parse::<i64>().is_ok(),
                    ParameterType::Number => value.parse::<f64>().is_ok_and(f64::is_finite),
                    ParameterType::Boolean => value == "true" || value == "false",
                };
                if !ok {
                    return Err(bad(
                        &d.name,
                        format!("`{value}` is not a {}", d.kind.as_str()),
                    ));
                }
            }
            None => match &d.default {
                Some(Value::String(s)) => {
                    values.insert(d.name.clone(), s.clone());
                }
                Some(v) => {
                    values.insert(d.name.clone(), v.to_string());
                }
                None if d.required => {
                    return Err(bad(
                        &d.name,
                        format!("required; pass --param {}=VALUE", d.name),
                    ))
                }
                None => {}
            },
        }
    }
    Ok(values)
}

/// Where a step stands.
enum State {
    Pending,
    Running { started: Instant, deadline: Instant },
    Done(StepStatus),
}

/// A finished handler, sent from its thread.
struct Finished {
    index: usize,
    result: Result<StepOutput, StepError>,
}

struct Scheduler<'m> {
    mission: &'m Mission,
    order: Vec<usize>,
    ctx: Arc<StepContext>,
    states: Vec<State>,
    reports: Vec<Option<StepReport>>,
    fail_fast: bool,
    max_parallel: usize,
    /// Set when the mission stops early: why.
    stopped: Option<String>,
    deadline: Instant,
}

impl<'m> Scheduler<'m> {
    fn new(mission: &'m Mission, order: Vec<usize>, ctx: Arc<StepContext>) -> Self {
        let config = mission.config.clone().unwrap_or_default();
        let max_parallel = config
            .max_parallel_steps
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX).max(1))
            .unwrap_or(DEFAULT_MAX_PARALLEL_STEPS);
        let deadline = Instant::now() + Duration::from_secs(ctx.grant.max_duration_seconds());
        Scheduler {
            mission,
            order,
            states: mission.steps.iter().map(|_| State::Pending).collect(),
            reports: vec![None; mission.steps.len()],
            fail_fast: config.fail_fast.unwrap_or(true),
            max_parallel,
            stopped: None,
            deadline,
            ctx,
        }
    }

    fn timeout_of(&self, step: &Step) -> Duration {
        let seconds = step
            .timeout_seconds
            .or(self.mission.config.as_ref().and_then(|c| c.timeout_seconds))
            .unwrap_or(DEFAULT_STEP_TIMEOUT_SECONDS)
            .min(self.ctx.grant.max_duration_seconds())
            .max(1);
        Duration::from_secs(seconds)
    }

    fn run(mut self, observer: &dyn Observer) -> Vec<StepReport> {
        let mission = self.mission;
        let (tx, rx) = mpsc::channel::<Finished>();
        loop {
            if self.stopped.is_none() && Instant::now() >= self.deadline {
                self.stopped = Some(format!(
                    "the mission reached its time limit of {} s",
                    self.ctx.grant.max_duration_seconds()
                ));
            }
            if self.stopped.is_none() {
                self.launch_ready(&tx, observer);
            }
            let running: Vec<usize> = (0..self.states.len())
                .filter(|&i| matches!(self.states[i], State::Running { .. }))
                .collect();
            if running.is_empty() {
                break;
            }
            let next_deadline = running
                .iter()
                .filter_map(|&i| match self.states[i] {
                    State::Running { deadline, .. } => Some(deadline),
                    _ => None,
                })
                .min()
                .unwrap_or_else(Instant::now)
                .min(self.deadline.max(Instant::now()));
            let wait = next_deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(finished) => self.finish(finished.index, finished.result, observer),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let now = Instant::now();
                    for i in running {
                        if let State::Running { deadline, .. } = self.states[i] {
                            if now >= deadline {
                                let timeout = self.timeout_of(&mission.steps[i]);
                                self.finish(
                                    i,
                                    Err(StepError::TimedOut(timeout.as_secs())),
                                    observer,
                                );
                            }
                        }
                    }
                }
                // Never: the scheduler keeps a sender.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        // What never started.
        let reason = self.stopped.clone().unwrap_or_else(|| "not run".into());
        for &i in &self.order.clone() {
            if matches!(self.states[i], State::Pending) {
                let report = self.report_for(
                    i,
                    StepStatus::NotRun,
                    0,
                    None,
                    Some(format!("not run: {reason}")),
                );
                observer.step_finished(&mission.steps[i], &report);
                self.states[i] = State::Done(StepStatus::NotRun);
                self.reports[i] = Some(report);
            }
        }
        self.reports.into_iter().flatten().collect()
    }

    /// Starts every step that is ready, in topological order, while there is room;
    /// skips those whose dependencies did not succeed.
    fn launch_ready(&mut self, tx: &mpsc::Sender<Finished>, observer: &dyn Observer) {
        let mission = self.mission;
        for position in 0..self.order.len() {
            let i = self.order[position];
            if !matches!(self.states[i], State::Pending) {
                continue;
            }
            let step = &mission.steps[i];
            let mut blocked_by: Option<(String, StepStatus)> = None;
            let mut waiting = false;
            for dep in step.depends_on.iter().flatten() {
                let Some(d) = mission.steps.iter().position(|s| &s.id == dep) else {
                    continue;
                };
                match self.states[d] {
                    State::Done(StepStatus::Success) => {}
                    State::Done(status) => {
                        blocked_by.get_or_insert((dep.clone(), status));
                    }
                    _ => waiting = true,
                }
            }
            if waiting {
                continue;
            }
            if let Some((dep, status)) = blocked_by {
                let runs_anyway = step.continue_on_error.unwrap_or(false)
                    || (!self.fail_fast && status == StepStatus::Failed);
                if !runs_anyway {
                    let what = match status {
                        StepStatus::Failed => "failed",
                        StepStatus::Skipped => "was skipped",
                        _ => "did not run",
                    };
                    let report = self.report_for(
                        i,
                        StepStatus::Skipped,
                        0,
                        None,
                        Some(format!("Dependency {dep} {what}")),
                    );
                    observer.step_finished(step, &report);
                    self.states[i] = State::Done(StepStatus::Skipped);
                    self.reports[i] = Some(report);
                    continue;
                }
            }
            let running = self
                .states
                .iter()
                .filter(|s| matches!(s, State::Running { .. }))
                .count();
            if running >= self.max_parallel {
                return;
            }
            self.start(i, tx, observer);
        }
    }

    fn start(&mut self, i: usize, tx: &mpsc::Sender<Finished>, observer: &dyn Observer) {
        let mission = self.mission;
        let step = &mission.steps[i];
        let timeout = self.timeout_of(step);
        observer.step_started(step);
        let now = Instant::now();
        self.states[i] = State::Running {
            started: now,
            deadline: now + timeout + GRACE,
        };
        let ctx = Arc::clone(&self.ctx);
        let id = step.id.clone();
        let step_type = step.step_type;
        let params = step.parameters.clone();
        let sender = tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("step-{id}"))
            .spawn(move || {
                let call = StepCall {
                    id: &id,
                    step_type,
                    params: &params,
                    timeout,
                };
                let result = catch_unwind(AssertUnwindSafe(|| steps::execute(&ctx, &call)))
                    .unwrap_or_else(|_| {
                        Err(StepError::Failed(format!(
                            "the `{step_type}` handler crashed (this is a bug in the executor)"
                        )))
                    });
                // The scheduler may have given up on this step (timeout): then nobody listens.
                let _ = sender.send(Finished { index: i, result });
            });
        if let Err(e) = spawned {
            self.finish(
                i,
                Err(StepError::Failed(format!(
                    "cannot start a thread for the step: {e}"
                ))),
                observer,
            );
        }
    }

    fn finish(&mut self, i: usize, result: Result<StepOutput, StepError>, observer: &dyn Observer) {
        let State::Running { started, .. } = self.states[i] else {
            return; // A late answer from a step already given up on.
        };
        let mission = self.mission;
        let step = &mission.steps[i];
        let duration = millis(started.elapsed());
        let continue_on_error = step.continue_on_error.unwrap_or(false);
        let report = match result {
            Ok(out) => {
                let status = if out.success {
                    StepStatus::Success
                } else {
                    StepStatus::Failed
                };
                let mut report = self.report_for(i, status, duration, Some(out.output), out.error);
                report.exit_code = out.exit_code;
                report
            }
            Err(error) => {
                if self.fail_fast && !continue_on_error && self.stopped.is_none() {
                    self.stopped = Some(format!(
                        "the mission stopped after step `{}` failed (fail_fast)",
                        step.id
                    ));
                }
                self.report_for(
                    i,
                    StepStatus::Failed,
                    duration,
                    None,
                    Some(error.to_string()),
                )
            }
        };
        observer.step_finished(step, &report);
        self.states[i] = State::Done(report.status);
        self.reports[i] = Some(report);
    }

    fn report_for(
        &self,
        i: usize,
        status: StepStatus,
        duration_ms: u64,
        output: Option<Value>,
        error: Option<String>,
    ) -> StepReport {
        let step = &self.mission.steps[i];
        StepReport {
            id: step.id.clone(),
            step_type: step.step_type,
            status,
            duration_ms,
            exit_code: None,
            output: output.map(cap_output).unwrap_or(Value::Null),
            error,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// 32 hex digits, unique per run: a hash of the time, the process and a counter.
fn new_execution_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut hasher = Sha256::new();
    hasher.update(nanos.to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let digest = hex::encode(hasher.finalize());
    digest[..32].to_owned()
}

/// The grant a run of `mission` would get, or why it would be refused, without running it.
pub fn grant_for(
    mission: &Mission,
    manifest: Option<&Manifest>,
    policy: &UserPolicy,
) -> Result<Grant, PolicyError> {
    policy::grant(mission, manifest.map(|m| &m.permissions), policy)
}
