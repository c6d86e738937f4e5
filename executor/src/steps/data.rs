//! Data steps: `parse_json`, `parse_yaml`, `csv_process`, `validate_schema`.
//!
//! They read their input from the `content` (or `data`) parameter, as RustChain does, and
//! touch nothing else. `validate_schema` is a real JSON Schema check (RustChain only checks
//! that the data is JSON): `data` is JSON text or a value, `schema` a schema object or JSON
//! text; invalid data makes the step fail with every violation listed by its JSON pointer.

use mission_index::mission::StepType;
use serde_json::{json, Value};

use super::{str_param, StepError, StepOutput};

/// Most violations listed by `validate_schema`.
const MAX_SCHEMA_ERRORS: usize = 50;

pub(crate) fn execute(step_type: StepType, p: &Value) -> Result<StepOutput, StepError> {
    match step_type {
        StepType::ParseJson => {
            let content = str_param(p, "content")?;
            let parsed: Value = serde_json::from_str(content)
                .map_err(|e| StepError::Failed(format!("the content is not JSON: {e}")))?;
            Ok(StepOutput::ok(json!({"parsed": parsed, "valid": true})))
        }
        StepType::ParseYaml => {
            let content = str_param(p, "content")?;
            let parsed = parse_yaml(content)?;
            Ok(StepOutput::ok(json!({"parsed": parsed, "valid": true})))
        }
        StepType::CsvProcess => {
            let content = str_param(p, "content")?;
            let (headers, records) = parse_csv(content, b',', true)?;
            let rows = records.len();
            Ok(StepOutput::ok(
                json!({"headers": headers, "records": records, "row_count": rows}),
            ))
        }
        StepType::ValidateSchema => validate_schema(p),
        other => Ok(super::unsupported(other)),
    }
}

/// YAML text as JSON (with the mission parser's limits on nesting).
pub(crate) fn parse_yaml(content: &str) -> Result<Value, StepError> {
    yaml_serde::from_str::<Value>(content)
        .map_err(|e| StepError::Failed(format!("the content is not YAML: {e}")))
}

/// Headers (empty without a header row) and records of CSV text.
pub(crate) fn parse_csv(
    content: &str,
    delimiter: u8,
    has_headers: bool,
) -> Result<(Vec<String>, Vec<Vec<String>>), StepError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(has_headers)
        .flexible(true)
        .from_reader(content.as_bytes());
    let headers = if has_headers {
        reader
            .headers()
            .map_err(|e| StepError::Failed(format!("reading the CSV header: {e}")))?
            .iter()
            .map(str::to_owned)
            .collect()
    } else {
        Vec::new()
    };
    let mut records = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| StepError::Failed(format!("reading CSV: {e}")))?;
        records.push(record.iter().map(str::to_owned).collect());
    }
    Ok((headers, records))
}

/// A parameter that holds JSON: a JSON value, or a string of JSON text.
fn json_param(p: &Value, name: &'static str) -> Result<Value, StepError> {
    match p.get(name) {
        None | Some(Value::Null) => Err(StepError::MissingParameter {
            name,
            expected: "JSON value or JSON text",
        }),
        Some(Value::String(text)) => {
            serde_json::from_str(text).map_err(|e| StepError::BadParameter {
                name,
                reason: format!("is not JSON text: {e}"),
            })
        }
        Some(v) => Ok(v.clone()),
    }
}

fn validate_schema(p: &Value) -> Result<StepOutput, StepError> {
    let data = json_param(p, "data")?;
    let schema = json_param(p, "schema")?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| StepError::BadParameter {
        name: "schema",
        reason: format!("is not a valid JSON Schema: {e}"),
    })?;
    let errors: Vec<Value> = validator
        .iter_errors(&data)
        .take(MAX_SCHEMA_ERRORS)
        .map(|e| json!({"path": e.instance_path().to_string(), "message": e.to_string()}))
        .collect();
    if errors.is_empty() {
        Ok(StepOutput::ok(
            json!({"valid": true, "validated": "json_schema"}),
        ))
    } else {
        let first = format!(
            "the data does not match the schema: {} at `{}`{}",
            errors[0]["message"].as_str().unwrap_or_default(),
            errors[0]["path"].as_str().unwrap_or_default(),
            if errors.len() > 1 {
                format!(" (and {} more)", errors.len() - 1)
            } else {
                String::new()
            }
        );
        Ok(StepOutput::failed(
            json!({"valid": false, "errors": errors}),
            first,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_steps_return_the_value_and_refuse_bad_text() {
        let out = execute(StepType::ParseJson, &json!({"content": "{\"a\": [1, 2]}"})).unwrap();
        assert_eq!(out.output["parsed"]["a"][1], 2);
        let err = execute(StepType::ParseJson, &json!({"content": "{oops"})).unwrap_err();
        assert!(err.to_string().contains("not JSON"), "{err}");
        let err = execute(StepType::ParseJson, &json!({})).unwrap_err();
        assert_eq!(err.to_string(), "missing 'content' parameter (a string)");

        let out = execute(
            StepType::ParseYaml,
            &json!({"content": "a:\n  - x\n  - y\n"}),
        )
        .unwrap();
        assert_eq!(out.output["parsed"], json!({"a": ["x", "y"]}));
    }

    #[test]
    fn csv_process_reads_headers_and_records() {
        let out = execute(
            StepType::CsvProcess,
            &json!({"content": "name,qty\napple,3\n\"pear, green\",5\n"}),
        )
        .unwrap();
        assert_eq!(out.output["headers"], json!(["name", "qty"]));
        assert_eq!(out.output["records"][1], json!(["pear, green", "5"]));
        assert_eq!(out.output["row_count"], 2);
    }

    #[test]
    fn validate_schema_checks_the_schema_for_real() {
        let schema = json!({
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}
        });
        let ok = execute(
            StepType::ValidateSchema,
            &json!({"data": "{\"name\": \"Ada\", \"age\": 36}", "schema": schema}),
        )
        .unwrap();
        assert!(ok.success, "{ok:?}");

        let bad = execute(
            StepType::ValidateSchema,
            &json!({"data": {"age": -1}, "schema": schema.to_string()}),
        )
        .unwrap();
        assert!(!bad.success);
        let errors = bad.output["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e["path"] == "/age"), "{errors:?}");
        assert!(bad.error.unwrap().contains("does not match the schema"));

        let err = execute(
            StepType::ValidateSchema,
            &json!({"data": "{}", "schema": {"type": "no-such-type"}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not a valid JSON Schema"), "{err}");
    }
}
