//! Permissions: what a run may do, decided before anything runs.
//!
//! Two parties have a say. The *mission* says what it needs: a package declares it in
//! `package.permissions` (programs, hosts, LLM calls, a time limit), and a plain RustChain
//! mission without a `package:` block is read for what its steps start
//! ([`lint::required_permissions`]). The *user* (or the node) has a [`UserPolicy`]: which
//! programs and hosts it lets missions use at all, and whether LLM calls are allowed.
//!
//! The run gets the intersection, a [`Grant`]. [`grant`] computes it and refuses the run,
//! naming everything missing, when the mission's steps need more than the grant covers: a
//! program the package does not declare or the policy does not allow, a host either side does
//! not allow, an LLM when either side says no. That check happens before the first step
//! starts, so a mission is never left half done for want of a permission.
//!
//! The engine checks the grant again at each step (a program or URL built from a template is
//! only known then), so the grant is the hard limit and the up-front check is the courtesy.
//!
//! A plain mission run locally may start the programs its steps name (the user chose to run
//! that file) but reaches no host unless the user allows it (`--allow-net HOST`).
//!
//! Private and loopback addresses get one more guard: an `http` step whose host resolves to
//! such an address is refused unless the policy lists that host in
//! [`UserPolicy::private_hosts`], so a mission cannot use an allowed name to reach the
//! user's router, a cloud metadata service or a local admin port.

use std::collections::BTreeSet;
use std::fmt;

use mission_index::lint;
use mission_index::manifest::{Network, Permissions};
use mission_index::mission::Mission;
use thiserror::Error;

/// What the user (or the node) lets any mission do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPolicy {
    /// Programs missions may start. `None`: whatever the mission declares (a package's
    /// `permissions.commands`, or the programs a plain mission's steps name).
    pub commands: Option<Vec<String>>,
    /// Hosts steps may reach (`*.example.org` covers the subdomains). Empty: no network.
    pub hosts: Vec<String>,
    /// Hosts that may resolve to loopback, private or link-local addresses.
    pub private_hosts: Vec<String>,
    /// Whether LLM steps may call the configured endpoint.
    pub llm: bool,
    /// The longest a run may take, whatever the mission declares.
    pub max_duration_seconds: Option<u64>,
}

impl Default for UserPolicy {
    /// Trust the mission's own list of programs; no network; LLM calls allowed (they go to
    /// the endpoint the user configured, and only when the mission declares them).
    fn default() -> Self {
        UserPolicy {
            commands: None,
            hosts: Vec::new(),
            private_hosts: Vec::new(),
            llm: true,
            max_duration_seconds: None,
        }
    }
}

/// What one run may do: the mission's permissions intersected with the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    commands: BTreeSet<String>,
    /// The mission's side of the network rule.
    declared_network: Network,
    /// The policy's side.
    policy_hosts: Vec<String>,
    private_hosts: Vec<String>,
    llm: bool,
    max_duration_seconds: u64,
}

impl Grant {
    /// Whether a step may start `program` (a bare name).
    pub fn allows_program(&self, program: &str) -> bool {
        self.commands.contains(program)
    }

    /// The programs a step may start, sorted.
    pub fn programs(&self) -> impl Iterator<Item = &str> {
        self.commands.iter().map(String::as_str)
    }

    /// Whether a step may reach `host` (both the mission and the policy allow it).
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.declared_network.allows_host(&host)
            && Network::Hosts(self.policy_hosts.clone()).allows_host(&host)
    }

    /// Whether `host` may resolve to a loopback, private or link-local address.
    pub fn allows_private(&self, host: &str) -> bool {
        self.private_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host))
    }

    /// The host names processes may reach, for the sandbox: the literal hosts both sides
    /// allow. Empty means no network for processes.
    pub fn process_hosts(&self) -> Vec<String> {
        match &self.declared_network {
            Network::Allowed(false) => Vec::new(),
            Network::Allowed(true) => self.policy_hosts.clone(),
            Network::Hosts(declared) => declared
                .iter()
                .filter(|h| Network::Hosts(self.policy_hosts.clone()).allows_host(h))
                .cloned()
                .collect(),
        }
    }

    pub fn llm(&self) -> bool {
        self.llm
    }

    /// The longest the run may take, in seconds.
    pub fn max_duration_seconds(&self) -> u64 {
        self.max_duration_seconds
    }

    /// A grant that allows exactly these programs and hosts (for tests and tools that build
    /// a grant by hand). Loopback and private addresses are allowed for `private_hosts`.
    pub fn new(
        commands: &[&str],
        hosts: &[&str],
        private_hosts: &[&str],
        llm: bool,
        max_duration_seconds: u64,
    ) -> Grant {
        let hosts: Vec<String> = hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        Grant {
            commands: commands.iter().map(|c| c.to_string()).collect(),
            declared_network: Network::Hosts(hosts.clone()),
            policy_hosts: hosts,
            private_hosts: private_hosts.iter().map(|h| h.to_string()).collect(),
            llm,
            max_duration_seconds,
        }
    }
}

/// One thing a mission needs that the grant does not give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// A program; `declared` tells whether the package declares it (then the policy refused).
    Program {
        program: String,
        declared: bool,
    },
    Host {
        host: String,
        declared: bool,
    },
    Llm {
        declared: bool,
    },
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Program {
                program,
                declared: true,
            } => write!(
                f,
                "program `{program}` (declared, but the policy does not allow it)"
            ),
            Missing::Program {
                program,
                declared: false,
            } => write!(
                f,
                "program `{program}` (not in the package's permissions.commands)"
            ),
            Missing::Host {
                host,
                declared: true,
            } => write!(
                f,
                "host `{host}` (not allowed by the policy; allow it with --allow-net {host})"
            ),
            Missing::Host {
                host,
                declared: false,
            } => write!(
                f,
                "host `{host}` (not in the package's permissions.network)"
            ),
            Missing::Llm { declared: true } => {
                f.write_str("LLM calls (the policy does not allow them)")
            }
            Missing::Llm { declared: false } => {
                f.write_str("LLM calls (the package does not declare permissions.llm)")
            }
        }
    }
}

/// Why a run was refused before it started.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    #[error("the mission `{mission}` needs more than it is allowed: {}", list(.missing))]
    Denied {
        mission: String,
        missing: Vec<Missing>,
    },
}

fn list(missing: &[Missing]) -> String {
    missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Computes what a run of `mission` may do. `permissions` is the package's
/// `package.permissions`, or `None` for a plain mission. Refuses, naming every missing
/// permission, when the steps need more than the grant.
pub fn grant(
    mission: &Mission,
    permissions: Option<&Permissions>,
    policy: &UserPolicy,
) -> Result<Grant, PolicyError> {
    let needs = lint::required_permissions(mission);
    // A plain mission "declares" what its steps start, any host the user allows, and an
    // LLM when a step calls one.
    let declared = match permissions {
        Some(p) => p.clone(),
        None => Permissions {
            network: Network::Allowed(true),
            ..needs.clone()
        },
    };
    let policy_allows_program = |p: &str| {
        policy
            .commands
            .as_ref()
            .is_none_or(|list| list.iter().any(|c| c == p))
    };
    let commands: BTreeSet<String> = declared
        .commands
        .iter()
        .filter(|c| policy_allows_program(c))
        .cloned()
        .collect();
    let policy_hosts: Vec<String> = policy
        .hosts
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let max_duration_seconds = match policy.max_duration_seconds {
        Some(limit) => declared.max_duration_seconds.min(limit),
        None => declared.max_duration_seconds,
    };
    let grant = Grant {
        commands,
        declared_network: declared.network.clone(),
        policy_hosts,
        private_hosts: policy.private_hosts.clone(),
        llm: declared.llm && policy.llm,
        max_duration_seconds,
    };

    let mut missing = Vec::new();
    for program in &needs.commands {
        if !grant.allows_program(program) {
            missing.push(Missing::Program {
                program: program.clone(),
                declared: declared.commands.contains(program),
            });
        }
    }
    // Hosts built from templates (`Allowed(true)` in `needs`) are checked when the step runs.
    if let Network::Hosts(hosts) = &needs.network {
        for host in hosts {
            if !grant.allows_host(host) {
                missing.push(Missing::Host {
                    host: host.clone(),
                    declared: declared.network.allows_host(host),
                });
            }
        }
    }
    if needs.llm && !grant.llm {
        missing.push(Missing::Llm {
            declared: declared.llm,
        });
    }
    if missing.is_empty() {
        Ok(grant)
    } else {
        Err(PolicyError::Denied {
            mission: mission.name.clone(),
            missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mission_index::mission::{Step, StepType};
    use serde_json::json;

    fn mission(steps: Vec<(StepType, serde_json::Value)>) -> Mission {
        Mission {
            version: "1.0".into(),
            name: "m".into(),
            description: None,
            steps: steps
                .into_iter()
                .enumerate()
                .map(|(i, (t, p))| Step {
                    id: format!("s{i}"),
                    name: format!("s{i}"),
                    step_type: t,
                    depends_on: None,
                    timeout_seconds: None,
                    continue_on_error: None,
                    parameters: p,
                })
                .collect(),
            config: None,
        }
    }

    #[test]
    fn a_plain_mission_may_start_its_programs_but_reach_no_host_unless_allowed() {
        let m = mission(vec![
            (
                StepType::Command,
                json!({"command": "echo", "args": ["hi"]}),
            ),
            (StepType::Http, json!({"url": "https://example.org/x"})),
        ]);
        let err = grant(&m, None, &UserPolicy::default()).unwrap_err();
        let PolicyError::Denied { missing, .. } = &err;
        assert_eq!(
            missing,
            &vec![Missing::Host {
                host: "example.org".into(),
                declared: true
            }]
        );
        assert!(err.to_string().contains("--allow-net example.org"), "{err}");

        let policy = UserPolicy {
            hosts: vec!["example.org".into()],
            ..UserPolicy::default()
        };
        let g = grant(&m, None, &policy).unwrap();
        assert!(g.allows_program("echo"));
        assert!(!g.allows_program("curl"));
        assert!(g.allows_host("example.org"));
        assert!(!g.allows_host("evil.example"));
        assert_eq!(g.process_hosts(), vec!["example.org".to_string()]);
    }

    #[test]
    fn a_package_gets_the_intersection_and_every_missing_item_is_named() {
        let m = mission(vec![
            (StepType::Command, json!({"command": "cargo"})),
            (StepType::Command, json!({"command": "curl"})),
            (StepType::Llm, json!({"prompt": "hi"})),
        ]);
        let declared = Permissions {
            network: Network::Allowed(false),
            commands: vec!["cargo".into(), "curl".into()],
            llm: false,
            max_duration_seconds: 600,
        };
        let policy = UserPolicy {
            commands: Some(vec!["cargo".into()]),
            max_duration_seconds: Some(60),
            ..UserPolicy::default()
        };
        let PolicyError::Denied { missing, .. } = grant(&m, Some(&declared), &policy).unwrap_err();
        assert_eq!(
            missing,
            vec![
                Missing::Program {
                    program: "curl".into(),
                    declared: true
                },
                Missing::Llm { declared: false },
            ]
        );

        let ok = mission(vec![(StepType::Command, json!({"command": "cargo"}))]);
        let g = grant(&ok, Some(&declared), &policy).unwrap();
        assert!(g.allows_program("cargo"));
        assert!(!g.allows_program("curl"), "the policy refused curl");
        assert_eq!(g.max_duration_seconds(), 60);
        assert!(g.process_hosts().is_empty());
    }

    #[test]
    fn an_undeclared_program_is_missing_even_when_the_policy_allows_everything() {
        let m = mission(vec![(StepType::GitStatus, json!({}))]);
        let declared = Permissions::default();
        let PolicyError::Denied { missing, .. } =
            grant(&m, Some(&declared), &UserPolicy::default()).unwrap_err();
        assert_eq!(
            missing,
            vec![Missing::Program {
                program: "git".into(),
                declared: false
            }]
        );
    }

    #[test]
    fn llm_needs_both_sides() {
        let m = mission(vec![(StepType::Llm, json!({"prompt": "hi"}))]);
        assert!(grant(&m, None, &UserPolicy::default()).unwrap().llm());
        let no_llm = UserPolicy {
            llm: false,
            ..UserPolicy::default()
        };
        let err = grant(&m, None, &no_llm).unwrap_err();
        assert!(err.to_string().contains("LLM calls"), "{err}");
    }
}
