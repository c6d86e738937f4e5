//! The execution plan: which steps may run together.
//!
//! Steps are grouped into *waves*: wave 0 holds the steps with no dependencies, wave N the
//! steps whose dependencies all sit in earlier waves. Every step of a wave can run in
//! parallel; inside a wave steps keep their order in the file, so a run with
//! `max_parallel_steps: 1` follows RustChain's sequential order.

use std::collections::HashMap;

use mission_index::mission::Mission;
use thiserror::Error;

/// How many steps run at once when the mission does not say.
pub const DEFAULT_MAX_PARALLEL_STEPS: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Indexes into `mission.steps`, wave by wave.
    pub waves: Vec<Vec<usize>>,
    /// At most this many steps run at the same time (at least 1).
    pub max_parallel: usize,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("step `{step}` depends on `{missing}`, which is not a step of this mission")]
    MissingDependency { step: String, missing: String },
    #[error("the steps {0:?} depend on each other in a cycle")]
    Cycle(Vec<String>),
}

/// Groups the steps of `mission` into waves (see the module docs).
pub fn plan(mission: &Mission) -> Result<Plan, PlanError> {
    let index: HashMap<&str, usize> = mission
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut wave_of: Vec<Option<usize>> = vec![None; mission.steps.len()];
    let mut waves: Vec<Vec<usize>> = Vec::new();
    let mut placed = 0;
    while placed < mission.steps.len() {
        let mut this_wave = Vec::new();
        for (i, step) in mission.steps.iter().enumerate() {
            if wave_of[i].is_some() {
                continue;
            }
            let mut ready = true;
            for dep in step.depends_on.iter().flatten() {
                let Some(&d) = index.get(dep.as_str()) else {
                    return Err(PlanError::MissingDependency {
                        step: step.id.clone(),
                        missing: dep.clone(),
                    });
                };
                // Only steps of *earlier* waves count: a dependency in this same wave means
                // it has not finished when this wave starts.
                if !matches!(wave_of[d], Some(w) if w < waves.len()) {
                    ready = false;
                }
            }
            if ready {
                this_wave.push(i);
            }
        }
        if this_wave.is_empty() {
            let stuck = mission
                .steps
                .iter()
                .enumerate()
                .filter(|(i, _)| wave_of[*i].is_none())
                .map(|(_, s)| s.id.clone())
                .collect();
            return Err(PlanError::Cycle(stuck));
        }
        for &i in &this_wave {
            wave_of[i] = Some(waves.len());
        }
        placed += this_wave.len();
        waves.push(this_wave);
    }
    let max_parallel = mission
        .config
        .as_ref()
        .and_then(|c| c.max_parallel_steps)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX).max(1))
        .unwrap_or(DEFAULT_MAX_PARALLEL_STEPS);
    Ok(Plan {
        waves,
        max_parallel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mission_index::mission::{MissionConfig, Step, StepType};

    fn step(id: &str, deps: &[&str]) -> Step {
        Step {
            id: id.into(),
            name: id.into(),
            step_type: StepType::Noop,
            depends_on: (!deps.is_empty()).then(|| deps.iter().map(|d| d.to_string()).collect()),
            timeout_seconds: None,
            continue_on_error: None,
            parameters: serde_json::Value::Null,
        }
    }

    fn mission(steps: Vec<Step>, max: Option<u64>) -> Mission {
        Mission {
            version: "1.0".into(),
            name: "m".into(),
            description: None,
            steps,
            config: max.map(|m| MissionConfig {
                max_parallel_steps: Some(m),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn independent_steps_share_a_wave_and_dependents_wait() {
        // a and b are independent; c needs both; d needs c.
        let m = mission(
            vec![
                step("a", &[]),
                step("b", &[]),
                step("c", &["a", "b"]),
                step("d", &["c"]),
            ],
            Some(2),
        );
        let p = plan(&m).unwrap();
        assert_eq!(p.waves, vec![vec![0, 1], vec![2], vec![3]]);
        assert_eq!(p.max_parallel, 2);
    }

    #[test]
    fn a_dependency_later_in_the_file_is_respected() {
        let m = mission(vec![step("late", &["early"]), step("early", &[])], None);
        assert_eq!(plan(&m).unwrap().waves, vec![vec![1], vec![0]]);
        assert_eq!(plan(&m).unwrap().max_parallel, DEFAULT_MAX_PARALLEL_STEPS);
    }

    #[test]
    fn cycles_and_missing_dependencies_are_errors() {
        let m = mission(
            vec![step("a", &["b"]), step("b", &["a"]), step("c", &[])],
            None,
        );
        assert_eq!(
            plan(&m),
            Err(PlanError::Cycle(vec!["a".into(), "b".into()]))
        );
        let m = mission(vec![step("a", &["ghost"])], None);
        assert!(matches!(
            plan(&m),
            Err(PlanError::MissingDependency { missing, .. }) if missing == "ghost"
        ));
    }

    #[test]
    fn zero_parallelism_is_read_as_one() {
        let m = mission(vec![step("a", &[])], Some(0));
        assert_eq!(plan(&m).unwrap().max_parallel, 1);
    }
}
