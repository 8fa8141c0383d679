//! Worker and connector config files, read as Kafka's standalone worker
//! reads them: a JSON object or Java `.properties`; a connector's JSON is
//! either the flat config map or the `POST /connectors` body
//! `{"name": "...", "config": {...}, "initial_state": "..."}`.

use std::path::Path;

use serde_json::{Map, Value};

use crate::worker::State;

/// Why a config file cannot be used; names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigFileError {
    /// The file (or `<text>` when parsing a string).
    pub file: String,
    /// What is wrong with it.
    pub message: String,
}

/// A connector config file: the flat config (with `name`) and the state a
/// new connector starts in (`initial_state`, KIP-980; RUNNING by default).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorFile {
    /// The connector config, `name` included.
    pub config: Value,
    /// State a connector created from this file starts in.
    pub initial_state: State,
}

/// Reads a worker or connector config file (JSON object or .properties).
pub fn read_config_file(path: &Path) -> Result<Value, ConfigFileError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigFileError {
        file: file.clone(),
        message: format!("cannot read: {e}"),
    })?;
    parse_config_text(&text).map_err(|message| ConfigFileError { file, message })
}

/// Reads a connector config file in any of the shapes Kafka's standalone
/// worker takes.
pub fn read_connector_file(path: &Path) -> Result<ConnectorFile, ConfigFileError> {
    let value = read_config_file(path)?;
    connector_file(value).map_err(|message| ConfigFileError {
        file: path.display().to_string(),
        message,
    })
}

/// Parses a JSON object, or Java properties whose values are all strings.
pub fn parse_config_text(text: &str) -> Result<Value, String> {
    if text.trim_start().starts_with('{') {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        return Ok(value);
    }
    parse_properties(text).map(Value::Object)
}

/// Turns a parsed connector file into a flat config: the flat map as is;
/// `{"name", "config", "initial_state"?}` unwrapped, with `name` put into
/// the config (a different `name` inside the config is an error, as in
/// Kafka's REST API).
pub fn connector_file(value: Value) -> Result<ConnectorFile, String> {
    let Value::Object(mut map) = value else {
        return Err("a connector config must be a JSON object".into());
    };
    let wrapped = matches!(map.get("config"), Some(Value::Object(_)))
        && map
            .keys()
            .all(|k| matches!(k.as_str(), "name" | "config" | "initial_state"));
    if !wrapped {
        return Ok(ConnectorFile {
            config: Value::Object(map),
            initial_state: State::Running,
        });
    }
    let Some(Value::Object(mut config)) = map.remove("config") else {
        unreachable!("checked above");
    };
    match (map.remove("name"), config.get("name")) {
        (Some(Value::String(outer)), Some(Value::String(inner))) if &outer != inner => {
            return Err(format!(
                "connector name {outer:?} does not match the \"name\" {inner:?} in its \"config\""
            ));
        }
        (Some(Value::String(outer)), _) => {
            config.insert("name".into(), Value::String(outer));
        }
        (Some(other), _) => return Err(format!("\"name\" must be a string, got {other}")),
        (None, _) => {}
    }
    let initial_state = match map.remove("initial_state") {
        None => State::Running,
        Some(Value::String(s)) => match s.to_ascii_uppercase().as_str() {
            "RUNNING" => State::Running,
            "PAUSED" => State::Paused,
            "STOPPED" => State::Stopped,
            _ => {
                return Err(format!(
                    "initial_state must be RUNNING, PAUSED or STOPPED, got {s:?}"
                ))
            }
        },
        Some(other) => return Err(format!("initial_state must be a string, got {other}")),
    };
    Ok(ConnectorFile {
        config: Value::Object(config),
        initial_state,
    })
}

/// Java `.properties`: `key=value`, `key: value` or `key value`; `#`/`!`
/// comments; a trailing backslash continues the line; `\t \n \r \f \\ \uXXXX`
/// escapes. Later duplicates win, as in `java.util.Properties`.
pub fn parse_properties(text: &str) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    let mut lines = text.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let mut logical = line.trim_start().to_string();
        if logical.is_empty() || logical.starts_with('#') || logical.starts_with('!') {
            continue;
        }
        while ends_with_odd_backslashes(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        let key = unescape(key).map_err(|e| format!("line {}: {e}", number + 1))?;
        let value = unescape(value).map_err(|e| format!("line {}: {e}", number + 1))?;
        if key.is_empty() {
            return Err(format!("line {}: a property without a key", number + 1));
        }
        map.insert(key, Value::String(value));
    }
    Ok(map)
}

fn ends_with_odd_backslashes(s: &str) -> bool {
    s.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 1
}

/// Splits at the first unescaped `=`, `:` or whitespace; whitespace around
/// the separator is dropped.
fn split_key_value(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => break,
            _ => i += 1,
        }
    }
    let i = i.min(bytes.len());
    let key = &line[..i];
    let mut rest = line[i..].trim_start_matches([' ', '\t', '\x0c']);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start_matches([' ', '\t', '\x0c']);
    }
    (key, rest)
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("bad \\u escape \\u{hex}"))?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_json_shapes_give_the_same_flat_config() {
        let flat = json!({"name": "x", "connector.class": "FileSink", "file": "/f", "topics": "t"});
        let wrapped = json!({"name": "x", "config": {"connector.class": "FileSink", "file": "/f", "topics": "t"}});
        let a = connector_file(flat.clone()).unwrap();
        let b = connector_file(wrapped).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.config, flat);
        assert_eq!(a.initial_state, State::Running);
        let paused = connector_file(
            json!({"name": "x", "config": {"connector.class": "C"}, "initial_state": "PAUSED"}),
        )
        .unwrap();
        assert_eq!(paused.initial_state, State::Paused);
        // A flat config that happens to have a "config" key stays flat.
        let odd = json!({"name": "x", "connector.class": "C", "config": {"a": 1}});
        assert_eq!(connector_file(odd.clone()).unwrap().config, odd);
    }

    #[test]
    fn wrapped_json_errors_are_clear() {
        let err =
            connector_file(json!({"name": "x", "config": {"name": "y", "connector.class": "C"}}))
                .unwrap_err();
        assert!(err.contains("\"x\"") && err.contains("\"y\""), "{err}");
        let err = connector_file(json!({"name": "x", "config": {}, "initial_state": "GONE"}))
            .unwrap_err();
        assert!(err.contains("initial_state"), "{err}");
        assert!(connector_file(json!([1])).is_err());
    }

    #[test]
    fn properties_follow_java_rules() {
        let text = "# comment\n! also\nname = tail\nconnector.class:FileTailSource\nfile /var/log/a\\\n    b.log\ntopic=lo\\u0067s\nempty=\n  spaced  =  v  x\n";
        let map = parse_properties(text).unwrap();
        assert_eq!(
            Value::Object(map),
            json!({"name": "tail", "connector.class": "FileTailSource", "file": "/var/log/ab.log",
                "topic": "logs", "empty": "", "spaced": "v  x"})
        );
        assert!(parse_properties("=v\n").unwrap_err().contains("line 1"));
        assert!(parse_properties("a=\\u12\n").unwrap_err().contains("\\u"));
    }
}
