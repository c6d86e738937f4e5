//! Errors about a source file (a mission, a manifest), shaped the way `mission validate`
//! prints them: `FILE:LINE: error: FIELD: MESSAGE`.
//!
//! Two things make such an error useful, and both live here so the mission parser, the
//! `package:` block reader and the permission lint agree:
//!
//! - [`source_error`] turns a parser's error (yaml_serde or serde_json, read through
//!   serde_path_to_error) into a [`SourceError`] with the precise field, the line, and
//!   plain words for the failures whose parser message does not say what to do.
//! - [`locate_field`] finds the line of a field path (`package.license`,
//!   `steps[1].parameters.command`) in a file that parsed, for problems found after parsing
//!   (a rule of the manifest, a duplicate step id, a lint finding). It walks the document a
//!   second time without building anything and makes the parser fail at the field, so the
//!   position is the parser's own, for YAML and JSON alike.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::mission::MAX_NESTING_DEPTH;

/// How a mission file is read: `.json` files as JSON, everything else as YAML (as RustChain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Yaml,
    Json,
}

impl SourceFormat {
    /// The format RustChain would use for this path.
    pub fn for_path(path: &Path) -> SourceFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => SourceFormat::Json,
            _ => SourceFormat::Yaml,
        }
    }
}

/// One problem in one file, with as much position as is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SourceError {
    pub file: PathBuf,
    /// 1-based line, when the parser gives one.
    pub line: Option<usize>,
    /// 1-based column, when the parser gives one.
    pub column: Option<usize>,
    /// The field path, e.g. `steps[3].name` or `package.version`.
    pub field: Option<String>,
    /// What is wrong, without the file, line or field.
    pub message: String,
}

impl SourceError {
    pub fn new(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line: None,
            column: None,
            field: None,
            message: message.into(),
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_line(mut self, line: Option<usize>, column: Option<usize>) -> Self {
        self.line = line;
        self.column = column;
        self
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": error: ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

// ---------------------------------------------------------------------------------------
// Finding the line of a field in a file that parsed.
// ---------------------------------------------------------------------------------------

/// One step of a field path such as `steps[1].parameters.command`: a map key or a list index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits a field path (`package.keywords[5]`, `steps[1].parameters.command`) into its
/// segments. `?` segments (serde_path_to_error's "unknown key") are dropped. Keys holding
/// `.` or `[` cannot be written in this notation and are not supported.
pub(crate) fn parse_field_path(field: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in field.split('.') {
        let (key, mut rest) = match part.find('[') {
            Some(at) => part.split_at(at),
            None => (part, ""),
        };
        if !key.is_empty() && key != "?" {
            out.push(Segment::Key(key));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let Some((index, after)) = inner.split_once(']') else {
                break;
            };
            if let Ok(index) = index.parse() {
                out.push(Segment::Index(index));
            }
            rest = after;
        }
    }
    out
}

/// The 1-based line of the field at `field` (`package.license`, `package.keywords[5]`,
/// `steps[1].parameters.command`) in `text`, a YAML or JSON document. For a key, the line of
/// the key; for a list element, the line where the element starts. When the path does not
/// exist (a rule about a key that was left out), the line of its deepest existing parent;
/// `None` when not even the first segment exists or the text does not parse.
pub fn locate_field(text: &str, format: SourceFormat, field: &str) -> Option<usize> {
    locate_field_position(text, format, field).map(|(line, _)| line)
}

/// As [`locate_field`], with the 1-based column too.
pub fn locate_field_position(
    text: &str,
    format: SourceFormat,
    field: &str,
) -> Option<(usize, usize)> {
    let path = parse_field_path(field);
    (1..=path.len())
        .rev()
        .find_map(|len| locate_path(text, format, &path[..len], 0))
}

/// Where the path is, or, with `occurrence` 1, where its last key appears a second time in
/// the same map (a duplicate key).
pub(crate) fn locate_path(
    text: &str,
    format: SourceFormat,
    path: &[Segment<'_>],
    occurrence: usize,
) -> Option<(usize, usize)> {
    let seed = Locate {
        path,
        skip: occurrence,
    };
    let found = match format {
        SourceFormat::Yaml => match seed.deserialize(yaml_serde::Deserializer::from_str(text)) {
            Err(e) if e.to_string().contains(FOUND) => yaml_location(&e),
            _ => (None, None),
        },
        SourceFormat::Json => {
            match seed.deserialize(&mut serde_json::Deserializer::from_str(text)) {
                Err(e) if e.to_string().contains(FOUND) => json_location(&e),
                _ => (None, None),
            }
        }
    };
    match found {
        (Some(line), Some(column)) => Some((line, column)),
        _ => None,
    }
}

/// The marker a [`Locate`] walk fails with once it reaches its target, so the parser's
/// error carries the target's position.
const FOUND: &str = "mission-index: located";

/// Walks to the value at `path` and fails there (on the key, when the path ends with one).
/// Everything else is skipped without being built; a path that is not there is `Ok`.
struct Locate<'p, 'k> {
    path: &'p [Segment<'k>],
    /// Matches of the last key to pass over first (1 finds a duplicate key).
    skip: usize,
}

impl<'de> DeserializeSeed<'de> for Locate<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Locate<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every `visit_*` not written here fails with this text, which is how the value at
        // the end of the path "fails".
        if self.path.is_empty() {
            f.write_str(FOUND)
        } else {
            f.write_str("a list or a map")
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Segment::Index(index), rest)) = self.path.split_first() else {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &self));
        };
        for _ in 0..*index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Locate {
            path: rest,
            skip: self.skip,
        })?;
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Segment::Key(wanted), rest)) = self.path.split_first() else {
            return Err(de::Error::invalid_type(de::Unexpected::Map, &self));
        };
        let mut skip = self.skip;
        loop {
            // The last key fails as it is read, so the error has the key's position.
            let last = rest.is_empty() && skip == 0;
            let Some(matched) = map.next_key_seed(KeyIs { wanted, fail: last })? else {
                return Ok(());
            };
            if !matched {
                map.next_value::<IgnoredAny>()?;
            } else if rest.is_empty() {
                skip -= 1;
                map.next_value::<IgnoredAny>()?;
            } else {
                return map.next_value_seed(Locate { path: rest, skip });
            }
        }
    }
}

/// Reads a map key and says whether it is `wanted`; with `fail`, a match is the located
/// error instead.
struct KeyIs<'w> {
    wanted: &'w str,
    fail: bool,
}

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        // `deserialize_str`: a YAML plain scalar such as `1.0` is read as its text.
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        match (key == self.wanted, self.fail) {
            (true, true) => Err(E::custom(FOUND)),
            (matched, _) => Ok(matched),
        }
    }
}

fn yaml_location(e: &yaml_serde::Error) -> (Option<usize>, Option<usize>) {
    e.location()
        .map_or((None, None), |l| (Some(l.line()), Some(l.column())))
}

fn json_location(e: &serde_json::Error) -> (Option<usize>, Option<usize>) {
    if e.line() == 0 {
        (None, None)
    } else {
        (Some(e.line()), Some(e.column()))
    }
}

/// The line and column of a yaml_serde error, when it has one.
pub(crate) fn yaml_error_location(e: &yaml_serde::Error) -> (Option<usize>, Option<usize>) {
    yaml_location(e)
}

/// The line and column of a serde_json error, when it has one.
pub(crate) fn json_error_location(e: &serde_json::Error) -> (Option<usize>, Option<usize>) {
    json_location(e)
}

// ---------------------------------------------------------------------------------------
// Turning a parser's error into a `SourceError`.
// ---------------------------------------------------------------------------------------

/// The message for a file that starts with a byte-order mark and does not parse.
pub const BOM_MESSAGE: &str = "the file starts with a UTF-8 byte-order mark; save it without one";

/// Builds the error for a parse failure of `text` (the mission or its `package:` block):
///
/// - the bare message: the parser's own copy of the position (` at line L column C`) and
///   of the path (yaml_serde's `package.dependencies: `) removed, since [`SourceError`]
///   carries them;
/// - the field made precise: for a missing, unknown or duplicate key the key itself
///   (`package.version` rather than `package`), and serde_path_to_error's `?` (a key that
///   could not be read) dropped;
/// - a duplicate key at the line of its second appearance (yaml_serde gives the map's);
/// - plainer words where the parser's cannot be acted on: a byte-order mark, a tab used
///   as indentation, a second YAML document, the nesting and alias limits.
///
/// `path` is serde_path_to_error's path (`.` for the root); `line` and `column` are the
/// parser's, 1-based.
pub fn source_error(
    text: &str,
    format: SourceFormat,
    file: &Path,
    path: &str,
    mut message: String,
    line: Option<usize>,
    column: Option<usize>,
) -> SourceError {
    let (mut line, mut column) = (line, column);
    if text.starts_with('\u{feff}') {
        // RustChain's parsers read the mark as part of the first line (YAML then sees that
        // line indented by one column, JSON an unexpected character): the verdict stays
        // theirs, the message says what to do.
        return SourceError::new(file, BOM_MESSAGE).with_line(Some(1), Some(1));
    }
    if let (Some(l), Some(c)) = (line, column) {
        let suffix = format!(" at line {l} column {c}");
        if let Some(at) = message.find(&suffix) {
            message.replace_range(at..at + suffix.len(), "");
        }
    }
    // yaml_serde prefixes its own idea of the path (`package.dependencies: `, `package: `);
    // ours, from serde_path_to_error, is more precise and goes in `field`. No message of
    // serde, semver or the name rules starts with a space-free token and `: `.
    if let Some((lead, rest)) = message.split_once(": ") {
        let path_like = !lead.is_empty()
            && lead
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.[]?".contains(c));
        if path_like {
            message = rest.to_owned();
        }
    }
    let segments: Vec<&str> = path
        .split('.')
        .filter(|s| !s.is_empty() && *s != "?")
        .collect();
    let mut field = segments.join(".");
    let mut duplicate = false;
    for lead in ["missing field `", "unknown field `", "duplicate field `"] {
        let Some(key) = message
            .strip_prefix(lead)
            .and_then(|rest| rest.split('`').next())
        else {
            continue;
        };
        duplicate = lead.starts_with("duplicate");
        // serde_path_to_error already ends the path with an unknown key, not with a missing
        // or duplicate one.
        let already = field == key || field.ends_with(&format!(".{key}"));
        if !(already && lead.starts_with("unknown")) {
            field = if field.is_empty() {
                key.to_owned()
            } else {
                format!("{field}.{key}")
            };
        }
    }
    if duplicate {
        if let Some((l, c)) = locate_path(text, format, &parse_field_path(&field), 1) {
            (line, column) = (Some(l), Some(c));
        }
    }
    if message == "recursion limit exceeded" {
        message = format!(
            "recursion limit exceeded: lists and maps are nested more than {MAX_NESTING_DEPTH} levels deep"
        );
    } else if message == "repetition limit exceeded" {
        message = "YAML aliases are expanded too many times (an alias bomb?); refused".to_owned();
    } else if message.starts_with("deserializing from YAML containing more than one document") {
        message = "the file holds more than one YAML document (a second `---`); a mission is \
                   one document"
            .to_owned();
        (line, column) = second_document_location(text);
        field.clear();
    } else if format == SourceFormat::Yaml {
        if let Some(tab) = tab_problem(text, &message, line, column) {
            message = tab;
        }
    }
    let error = SourceError::new(file, message).with_line(line, column);
    if field.is_empty() {
        error
    } else {
        error.with_field(field)
    }
}

/// The message for a tab where YAML expects indentation, when that is the problem: the
/// scanner's own words ("found character that cannot start any token") do not say it.
fn tab_problem(
    text: &str,
    message: &str,
    line: Option<usize>,
    column: Option<usize>,
) -> Option<String> {
    let (line, column) = (line?, column?);
    let at = text.lines().nth(line - 1)?.chars().nth(column - 1);
    if at != Some('\t') && !message.contains("tab character") {
        return None;
    }
    Some(format!(
        "a tab at column {column}: YAML cannot be indented with tabs; indent with spaces \
         (the parser said: {message})"
    ))
}

/// Where the second document of a multi-document YAML file starts.
fn second_document_location(text: &str) -> (Option<usize>, Option<usize>) {
    let mut documents = yaml_serde::Deserializer::from_str(text);
    let (Some(_first), Some(second)) = (documents.next(), documents.next()) else {
        return (None, None);
    };
    match (Locate { path: &[], skip: 0 }).deserialize(second) {
        Err(e) if e.to_string().contains(FOUND) => yaml_location(&e),
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_validate_does() {
        let e = SourceError::new(Path::new("m.yaml"), "missing field `name`")
            .with_field("steps[3].name")
            .with_line(Some(12), Some(5));
        assert_eq!(
            e.to_string(),
            "m.yaml:12: error: steps[3].name: missing field `name`"
        );
        let e = SourceError::new(Path::new("m.json"), "the mission has no steps");
        assert_eq!(e.to_string(), "m.json: error: the mission has no steps");
        assert_eq!(
            SourceFormat::for_path(Path::new("a/b.json")),
            SourceFormat::Json
        );
        assert_eq!(
            SourceFormat::for_path(Path::new("a/b.yml")),
            SourceFormat::Yaml
        );
        assert_eq!(
            SourceFormat::for_path(Path::new("noext")),
            SourceFormat::Yaml
        );
    }

    /// A mission with a package block, every kind of value in block and flow style.
    const YAML: &str = r#"version: '1.0'
name: n
steps:
  - id: a
    name: A
    step_type: noop
    parameters: {}
  - id: b
    name: B
    step_type: command
    parameters:
      command: sh
      args: [-c, 'echo hi']
package:
  name: demo
  license: MITT
  keywords: [a, b, c, d, e, f]
  permissions:
    network:
      - api.example.org
      - https://bad
"#;

    fn yaml_line(field: &str) -> Option<usize> {
        locate_field(YAML, SourceFormat::Yaml, field)
    }

    #[test]
    fn locates_yaml_fields() {
        assert_eq!(yaml_line("version"), Some(1));
        assert_eq!(yaml_line("steps"), Some(3));
        assert_eq!(yaml_line("steps[0]"), Some(4));
        assert_eq!(yaml_line("steps[1].id"), Some(8));
        // The key of a block value, not the first line inside it.
        assert_eq!(yaml_line("steps[1].parameters"), Some(11));
        assert_eq!(yaml_line("steps[1].parameters.command"), Some(12));
        assert_eq!(yaml_line("steps[1].parameters.args[1]"), Some(13));
        assert_eq!(yaml_line("package.license"), Some(16));
        assert_eq!(yaml_line("package.keywords"), Some(17));
        assert_eq!(yaml_line("package.keywords[5]"), Some(17));
        assert_eq!(yaml_line("package.permissions.network[1]"), Some(21));
        assert_eq!(
            locate_field_position(YAML, SourceFormat::Yaml, "package.license"),
            Some((16, 3))
        );
    }

    #[test]
    fn a_missing_field_is_located_at_its_deepest_parent() {
        // `package.version` is left out: the line of `package`.
        assert_eq!(yaml_line("package.version"), Some(14));
        assert_eq!(yaml_line("package.permissions.commands[0]"), Some(18));
        assert_eq!(yaml_line("package.keywords[9]"), Some(17));
        assert_eq!(yaml_line("steps[7].name"), Some(3));
        // serde_path_to_error's `?` is skipped.
        assert_eq!(yaml_line("package.?"), Some(14));
        assert_eq!(yaml_line("nowhere.at.all"), None);
        assert_eq!(yaml_line(""), None);
        assert_eq!(
            locate_field("x: [unclosed\nb: 1\n", SourceFormat::Yaml, "b"),
            None
        );
    }

    #[test]
    fn locates_json_fields() {
        let json = r#"{
  "version": "1.0",
  "name": "n",
  "steps": [
    {"id": "a", "name": "A", "step_type": "noop", "parameters": {}},
    {
      "id": "b",
      "name": "B",
      "step_type": "command",
      "parameters": {
        "command": "sh",
        "args": ["-c",
                 "echo hi"]
      }
    }
  ],
  "package": {"name": "demo", "license": "MITT",
              "keywords": ["a", "b", "c", "d", "e", "f"]}
}"#;
        let line = |field| locate_field(json, SourceFormat::Json, field);
        assert_eq!(line("version"), Some(2));
        assert_eq!(line("steps[0].step_type"), Some(5));
        assert_eq!(line("steps[1].id"), Some(7));
        assert_eq!(line("steps[1].parameters"), Some(10));
        assert_eq!(line("steps[1].parameters.command"), Some(11));
        assert_eq!(line("steps[1].parameters.args[1]"), Some(13));
        assert_eq!(line("package.license"), Some(17));
        assert_eq!(line("package.keywords[5]"), Some(18));
        assert_eq!(line("package.version"), Some(17));
        assert_eq!(line("steps[1].parameters.missing"), Some(10));
        assert_eq!(line("missing"), None);
    }

    #[test]
    fn field_paths_split_into_keys_and_indices() {
        use Segment::{Index, Key};
        assert_eq!(
            parse_field_path("steps[1].parameters.command"),
            [Key("steps"), Index(1), Key("parameters"), Key("command")]
        );
        assert_eq!(
            parse_field_path("a[0][2].?.b"),
            [Key("a"), Index(0), Index(2), Key("b")]
        );
        assert!(parse_field_path(".").is_empty());
    }

    fn error(text: &str, path: &str, message: &str, line: usize, column: usize) -> SourceError {
        source_error(
            text,
            SourceFormat::Yaml,
            Path::new("m.yaml"),
            path,
            message.to_owned(),
            Some(line),
            Some(column),
        )
    }

    #[test]
    fn parser_errors_are_cleaned_up() {
        let e = error(
            "package:\n  dependencies: {x: y}\n",
            "package.dependencies.x",
            "package.dependencies: unexpected end of input at line 2 column 17",
            2,
            17,
        );
        assert_eq!(
            e.to_string(),
            "m.yaml:2: error: package.dependencies.x: unexpected end of input"
        );
        // A key that could not be read is not printed as `?`.
        let e = error("a: 1\n", "package.permissions.?", "bad", 1, 1);
        assert_eq!(e.field.as_deref(), Some("package.permissions"));
        let e = error("a: 1\n", "package", "missing field `license`", 1, 1);
        assert_eq!(e.field.as_deref(), Some("package.license"));
        let e = error(
            "a: 1\n",
            "package.lisence",
            "unknown field `lisence`, expected one of",
            1,
            1,
        );
        assert_eq!(e.field.as_deref(), Some("package.lisence"));
    }

    #[test]
    fn a_duplicate_key_is_named_and_found_where_it_repeats() {
        let text = "package:\n  name: a\n  version: 1.0.0\n  license: MIT\n  version: 2.0.0\n";
        let e = error(
            text,
            "package",
            "duplicate field `version` at line 2 column 3",
            2,
            3,
        );
        assert_eq!(
            e.to_string(),
            "m.yaml:5: error: package.version: duplicate field `version`"
        );
    }

    #[test]
    fn a_tab_is_explained() {
        let text = "steps:\n  - id: a\n\tname: A\n";
        let e = error(
            text,
            "steps",
            "found character that cannot start any token at line 3 column 1, while scanning a plain scalar",
            3,
            1,
        );
        assert!(
            e.message
                .starts_with("a tab at column 1: YAML cannot be indented with tabs"),
            "{e}"
        );
        // Another character that cannot start a token is left alone.
        let e = error(
            "a: `b`\n",
            ".",
            "found character that cannot start any token",
            1,
            4,
        );
        assert_eq!(e.message, "found character that cannot start any token");
    }

    #[test]
    fn a_byte_order_mark_is_named() {
        let e = error("\u{feff}version: 1\nname: n\n", ".", "anything", 2, 1);
        assert_eq!(
            e.to_string(),
            "m.yaml:1: error: the file starts with a UTF-8 byte-order mark; save it without one"
        );
    }
}
