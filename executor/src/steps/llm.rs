//! The `llm` step: one chat completion from an OpenAI-compatible endpoint.
//!
//! RustChain calls the provider its own configuration names. The registry's executor calls
//! the endpoint the *user* (or node) configures, never one a mission names: `MISSION_LLM_URL`
//! (the API base, e.g. `http://localhost:11434/v1`; `/chat/completions` is added unless it
//! is there already), `MISSION_LLM_MODEL`, and optionally `MISSION_LLM_API_KEY` (sent as a
//! bearer token). With none configured an `llm` step fails and says what to set.
//!
//! The step reads RustChain's parameters: `prompt` (required), `temperature`, `max_tokens`,
//! and `model`, which is reported but does not override the configured model (the user
//! chooses what runs and what it costs). The answer is stored as the variable
//! `{step_id}_response` for later `create_file` content, as RustChain does.
//!
//! The endpoint is the user's choice, so it is exempt from the mission's host allow-list
//! and from the private-address guard (a local model server is the usual case), but the
//! mission must be granted LLM calls.

use serde::Deserialize;
use serde_json::{json, Value};

use super::net::{body_text, client};
use super::{str_param, StepCall, StepContext, StepError, StepOutput};

/// Where LLM steps send their prompts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmConfig {
    /// The chat-completions URL.
    pub url: String,
    pub model: String,
    pub api_key: Option<String>,
}

impl LlmConfig {
    /// `base` is an API base or a full `.../chat/completions` URL.
    pub fn new(base: &str, model: &str, api_key: Option<String>) -> LlmConfig {
        let base = base.trim_end_matches('/');
        let url = if base.ends_with("/chat/completions") {
            base.to_owned()
        } else {
            format!("{base}/chat/completions")
        };
        LlmConfig {
            url,
            model: model.to_owned(),
            api_key: api_key.filter(|k| !k.is_empty()),
        }
    }

    /// From `MISSION_LLM_URL`, `MISSION_LLM_MODEL` and `MISSION_LLM_API_KEY`. `None` when
    /// the URL is not set; an error naming the variable when only one of URL and model is.
    pub fn from_env() -> Result<Option<LlmConfig>, String> {
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        match (get("MISSION_LLM_URL"), get("MISSION_LLM_MODEL")) {
            (None, None) => Ok(None),
            (Some(url), Some(model)) => Ok(Some(LlmConfig::new(
                &url,
                &model,
                get("MISSION_LLM_API_KEY"),
            ))),
            (Some(_), None) => Err("MISSION_LLM_URL is set but MISSION_LLM_MODEL is not".into()),
            (None, Some(_)) => Err("MISSION_LLM_MODEL is set but MISSION_LLM_URL is not".into()),
        }
    }
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    model: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

pub(crate) fn execute(ctx: &StepContext, call: &StepCall<'_>) -> Result<StepOutput, StepError> {
    let p = call.params;
    let prompt = str_param(p, "prompt")?;
    if !ctx.grant.llm() {
        return Err(StepError::Denied(format!(
            "step `{}` calls an LLM, which this run may not do",
            call.id
        )));
    }
    let Some(config) = &ctx.llm else {
        return Ok(StepOutput::failed(
            Value::Null,
            "no LLM endpoint is configured: set MISSION_LLM_URL (an OpenAI-compatible API base such as http://localhost:11434/v1) and MISSION_LLM_MODEL, and MISSION_LLM_API_KEY if it needs one",
        ));
    };
    let mut body = json!({
        "model": config.model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": false,
    });
    if let Some(t) = p.get("temperature").and_then(Value::as_f64) {
        body["temperature"] = json!(t);
    }
    if let Some(m) = p.get("max_tokens").and_then(Value::as_u64) {
        body["max_tokens"] = json!(m);
    }
    let http = client(call.timeout, None)?;
    let mut request = http.post(&config.url).json(&body);
    if let Some(key) = &config.api_key {
        request = request.bearer_auth(key);
    }
    let response = request
        .send()
        .map_err(|e| StepError::Failed(format!("calling the LLM at {}: {e}", config.url)))?;
    let status = response.status();
    let (text, _) = body_text(response)?;
    if !status.is_success() {
        return Ok(StepOutput::failed(
            json!({"status": status.as_u16(), "body": text}),
            format!("the LLM endpoint {} answered {status}", config.url),
        ));
    }
    let completion: Completion = serde_json::from_str(&text).map_err(|e| {
        StepError::Failed(format!(
            "the LLM endpoint {} did not answer with a chat completion: {e}",
            config.url
        ))
    })?;
    let Some(choice) = completion.choices.into_iter().next() else {
        return Err(StepError::Failed(format!(
            "the LLM endpoint {} answered with no choices",
            config.url
        )));
    };
    let content = choice.message.content.unwrap_or_default();
    match ctx.variables.lock() {
        Ok(mut vars) => vars.insert(format!("{}_response", call.id), content.clone()),
        Err(poisoned) => poisoned
            .into_inner()
            .insert(format!("{}_response", call.id), content.clone()),
    };
    Ok(StepOutput::ok(json!({
        "model": completion.model.unwrap_or_else(|| config.model.clone()),
        "requested_model": p.get("model"),
        "content": content,
        "finish_reason": choice.finish_reason,
        "usage": completion.usage,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_gets_the_chat_completions_path_once() {
        let c = LlmConfig::new("http://h:1/v1/", "m", Some(String::new()));
        assert_eq!(c.url, "http://h:1/v1/chat/completions");
        assert_eq!(c.api_key, None);
        let c = LlmConfig::new("http://h:1/v1/chat/completions", "m", Some("k".into()));
        assert_eq!(c.url, "http://h:1/v1/chat/completions");
        assert_eq!(c.api_key.as_deref(), Some("k"));
    }
}
