//! The `tool` step: `tool: NAME` with the tool's own `parameters`.
//!
//! RustChain v0.1.0's tool manager provides `create_file`, `http`, `command`, `csv_loader`,
//! `json_yaml_loader` and `html_loader`. This executor provides those (except
//! `html_loader`) plus `read_file`, `write_file`, `list_files` and `search_files`, all
//! under the same rules as the matching step types: paths inside the work folder, programs
//! through the grant and the sandbox, hosts through the network guard. An unknown tool is
//! an error naming the tools there are, as RustChain's "Tool not found".
//!
//! | tool | parameters | output |
//! |---|---|---|
//! | `create_file`, `write_file` | `path`, `content` | `{path, size}` |
//! | `read_file` | `path` | `{path, content, size}` |
//! | `list_files` | `path` (default `.`) | `{path, entries, count}` |
//! | `search_files` | `path` (default `.`), `pattern` | `{pattern, results, matches}` |
//! | `http` | `url`, `method` (GET, POST, ...), `body`, `headers` | as the `http` step |
//! | `command` | `command`, `args` | `{stdout, stderr, exit_code}` |
//! | `csv_loader` | `file_path`, `delimiter` (`,`), `has_headers` (true) | `{file_path, headers, records, row_count}` |
//! | `json_yaml_loader` | `file_path`, `format` (`json`/`yaml`, else by extension) | `{file_path, format, data}` |

use serde_json::{json, Map, Value};

use super::process::{outcome_output, run_program};
use super::{
    data, files, net, opt_str, str_param, string_list, StepCall, StepContext, StepError, StepOutput,
};
use crate::sandbox::NetworkAccess;

/// The tools this executor provides.
pub const TOOLS: &[&str] = &[
    "create_file",
    "write_file",
    "read_file",
    "list_files",
    "search_files",
    "http",
    "command",
    "csv_loader",
    "json_yaml_loader",
];

pub(crate) fn execute(ctx: &StepContext, call: &StepCall<'_>) -> Result<StepOutput, StepError> {
    let tool = str_param(call.params, "tool")?;
    let empty = Value::Object(Map::new());
    let p = call.params.get("parameters").unwrap_or(&empty);
    let folder = &ctx.folder;
    // File tools act as the sandbox's user, as the file steps do (see steps::execute).
    let _as_sandbox_user = super::act_as_sandbox_user(
        ctx,
        matches!(
            tool,
            "create_file"
                | "write_file"
                | "read_file"
                | "list_files"
                | "search_files"
                | "csv_loader"
                | "json_yaml_loader"
        ),
    )?;
    match tool {
        "create_file" | "write_file" => {
            let path = str_param(p, "path")?;
            let content = opt_str(p, "content").unwrap_or("");
            folder.write(path, content.as_bytes())?;
            Ok(StepOutput::ok(json!({"path": path, "size": content.len()})))
        }
        "read_file" => {
            let path = str_param(p, "path")?;
            let content = folder.read_text(path)?;
            let size = content.len();
            Ok(StepOutput::ok(
                json!({"path": path, "content": content, "size": size}),
            ))
        }
        "list_files" => {
            let path = opt_str(p, "path").unwrap_or(".");
            let entries = folder.list(path)?;
            let count = entries.len();
            Ok(StepOutput::ok(
                json!({"path": path, "entries": entries, "count": count}),
            ))
        }
        "search_files" => {
            let path = opt_str(p, "path").unwrap_or(".");
            let pattern = str_param(p, "pattern")?;
            let results = files::search(folder, path, pattern)?;
            let matches = results.len();
            Ok(StepOutput::ok(
                json!({"pattern": pattern, "results": results, "matches": matches}),
            ))
        }
        "http" => {
            let url = str_param(p, "url")?;
            let method = opt_str(p, "method").unwrap_or("GET");
            let headers = p.get("headers").and_then(Value::as_object);
            net::http(&ctx.grant, call, url, method, headers, p.get("body"))
        }
        "command" => {
            let command = str_param(p, "command")?;
            let args = string_list(p, "args");
            let outcome = run_program(ctx, call, command, &args, None, NetworkAccess::None)?;
            Ok(outcome_output(&outcome, "Command failed"))
        }
        "csv_loader" => {
            let path = str_param(p, "file_path")?;
            let delimiter = match opt_str(p, "delimiter").unwrap_or(",").as_bytes() {
                [d] => *d,
                _ => {
                    return Err(StepError::BadParameter {
                        name: "delimiter",
                        reason: "must be one ASCII character".into(),
                    })
                }
            };
            let has_headers = p
                .get("has_headers")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let text = folder.read_text(path)?;
            let (headers, records) = data::parse_csv(&text, delimiter, has_headers)?;
            let rows = records.len();
            Ok(StepOutput::ok(json!({
                "file_path": path,
                "headers": headers,
                "records": records,
                "row_count": rows,
            })))
        }
        "json_yaml_loader" => {
            let path = str_param(p, "file_path")?;
            let format = match opt_str(p, "format") {
                Some(f) => f.to_ascii_lowercase(),
                None if path.ends_with(".json") => "json".into(),
                None => "yaml".into(),
            };
            let text = folder.read_text(path)?;
            let data = match format.as_str() {
                "json" => serde_json::from_str::<Value>(&text)
                    .map_err(|e| StepError::Failed(format!("`{path}` is not JSON: {e}")))?,
                "yaml" | "yml" => data::parse_yaml(&text)?,
                other => {
                    return Err(StepError::BadParameter {
                        name: "format",
                        reason: format!("unknown format `{other}` (json, yaml)"),
                    })
                }
            };
            Ok(StepOutput::ok(
                json!({"file_path": path, "format": format, "data": data}),
            ))
        }
        other => Err(StepError::Failed(format!(
            "Tool not found: `{other}` (this executor provides {})",
            TOOLS.join(", ")
        ))),
    }
}
