//! Errors about a source file (a mission, a manifest), shaped the way `mission validate`
//! prints them: `FILE:LINE: error: FIELD: MESSAGE`.

use std::fmt;
use std::path::{Path, PathBuf};

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
}
