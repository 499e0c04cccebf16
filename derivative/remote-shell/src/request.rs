//! One request line in, at most one reply line out: the protocol's
//! semantics, kept apart from the port they travel on.
//!
//! | request | reply |
//! | --- | --- |
//! | `[id, "sh_call", user, env, command]` | `[id, "success", returncode, stdout, stderr]` |
//! | `[id, "sh_spawn", user, env, command]` | none (the command runs on) |
//! | `[id, "python_execute", user, env, code]` | an error: this server has no Python |
//! | `[id, "file_read", path]` | `[id, "success", base64]` |
//! | `[id, "file_write" or "file_append", path, base64]` | `[id, "success", bytes written]` |
//! | `[id, "signal_ready"]` | `[id, "success"]`, and the guest is told |
//! | anything that fails | `[id, "error", "ExceptionName: text"]` |
//!
//! Files are read and written as the server's user (root). Base64 coming
//! in may carry line breaks (Tails' Ruby client writes them every 60
//! characters): anything outside the alphabet is skipped, as Python's
//! `b64decode` does.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::Child;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::failure::Failure;
use crate::notify::Readiness;
use crate::pyjson;
use crate::run;

/// The server's state between requests.
pub struct Server {
    /// Spawned commands, reaped as they end.
    spawned: Vec<Child>,
    readiness: Readiness,
}

impl Server {
    pub fn new(readiness: Readiness) -> Server {
        Server {
            spawned: Vec::new(),
            readiness,
        }
    }

    /// Handle one request line (without its `\n`); the reply line (without
    /// its `\n`), or `None` when the request gets no reply.
    pub fn handle(&mut self, line: &[u8]) -> Option<String> {
        self.reap();
        let mut id = Value::Null;
        let result = parse(line).and_then(|(request_id, kind, args)| {
            id = request_id;
            self.dispatch(&kind, args)
        });
        match result {
            Ok(Some(results)) => {
                let mut reply = vec![id, json!("success")];
                reply.extend(results);
                Some(pyjson::dumps(&Value::Array(reply)))
            }
            Ok(None) => None,
            Err(failure) => Some(pyjson::dumps(&json!([id, "error", failure.to_string()]))),
        }
    }

    fn dispatch(&mut self, kind: &str, args: Vec<Value>) -> Result<Option<Vec<Value>>, Failure> {
        match kind {
            "sh_call" => {
                let (user, env, command) = shell_args(args)?;
                let done = run::call(&user, &env, &command)?;
                Ok(Some(vec![
                    json!(done.returncode),
                    json!(done.stdout),
                    json!(done.stderr),
                ]))
            }
            "sh_spawn" => {
                let (user, env, command) = shell_args(args)?;
                self.spawned.push(run::spawn(&user, &env, &command)?);
                Ok(None)
            }
            "python_execute" => {
                shell_args(args)?;
                Err(Failure::new(
                    "NotImplementedError",
                    "python_execute: this server runs no Python; use sh_call",
                ))
            }
            "file_read" | "file_write" | "file_append" => {
                let (path, rest) = file_args(args)?;
                file(kind, &path, rest).map(Some)
            }
            "signal_ready" => {
                self.readiness.mark_ready()?;
                Ok(Some(Vec::new()))
            }
            _ => Err(Failure::new("ValueError", "unknown command type")),
        }
    }

    fn reap(&mut self) {
        self.spawned
            .retain_mut(|child| matches!(child.try_wait(), Ok(None)));
    }
}

/// `[id, type, args...]` from a line.
fn parse(line: &[u8]) -> Result<(Value, String, Vec<Value>), Failure> {
    let text = std::str::from_utf8(line).map_err(|e| {
        Failure::new(
            "UnicodeDecodeError",
            format!("'utf-8' codec can't decode the request: {e}"),
        )
    })?;
    let value: Value =
        serde_json::from_str(text).map_err(|e| Failure::new("JSONDecodeError", e.to_string()))?;
    let Value::Array(mut items) = value else {
        return Err(Failure::new("TypeError", "a request is a JSON array"));
    };
    if items.len() < 2 {
        return Err(Failure::new(
            "ValueError",
            format!(
                "not enough values to unpack (expected at least 2, got {})",
                items.len()
            ),
        ));
    }
    let args = items.split_off(2);
    let kind = items.pop().expect("two items");
    let id = items.pop().expect("one item");
    let kind = kind.as_str().map(str::to_owned).unwrap_or_default();
    Ok((id, kind, args))
}

/// `user, env, command`.
fn shell_args(args: Vec<Value>) -> Result<(String, BTreeMap<String, String>, String), Failure> {
    let [user, env, command]: [Value; 3] = args.try_into().map_err(|args: Vec<Value>| {
        Failure::new(
            "ValueError",
            if args.len() < 3 {
                format!(
                    "not enough values to unpack (expected 3, got {})",
                    args.len()
                )
            } else {
                "too many values to unpack (expected 3)".into()
            },
        )
    })?;
    let text = |v: Value, what: &str| match v {
        Value::String(s) => Ok(s),
        other => Err(Failure::new(
            "TypeError",
            format!("{what} must be a string, not {other}"),
        )),
    };
    let Value::Object(map) = env else {
        return Err(Failure::new(
            "TypeError",
            format!("the environment must be an object, not {env}"),
        ));
    };
    let mut vars = BTreeMap::new();
    for (key, value) in map {
        vars.insert(key, text(value, "an environment value")?);
    }
    Ok((text(user, "the user")?, vars, text(command, "the command")?))
}

/// `path, rest...`.
fn file_args(mut args: Vec<Value>) -> Result<(String, Vec<Value>), Failure> {
    if args.is_empty() {
        return Err(Failure::new(
            "ValueError",
            "not enough values to unpack (expected at least 1, got 0)",
        ));
    }
    let rest = args.split_off(1);
    match args.pop() {
        Some(Value::String(path)) => Ok((path, rest)),
        other => Err(Failure::new(
            "TypeError",
            format!(
                "the path must be a string, not {}",
                other.unwrap_or_default()
            ),
        )),
    }
}

fn file(kind: &str, path: &str, rest: Vec<Value>) -> Result<Vec<Value>, Failure> {
    if kind == "file_read" {
        if !rest.is_empty() {
            return Err(Failure::new("AssertionError", ""));
        }
        let content = std::fs::read(path).map_err(|e| Failure::io(&e, Some(path)))?;
        return Ok(vec![json!(
            base64::engine::general_purpose::STANDARD.encode(content)
        )]);
    }
    let [Value::String(encoded)] = rest.as_slice() else {
        return Err(Failure::new("AssertionError", ""));
    };
    let data = decode_base64(encoded)?;
    let mut options = std::fs::OpenOptions::new();
    if kind == "file_append" {
        options.append(true).create(true);
    } else {
        options.write(true).create(true).truncate(true);
    }
    let mut file = options
        .open(path)
        .map_err(|e| Failure::io(&e, Some(path)))?;
    file.write_all(&data)
        .map_err(|e| Failure::io(&e, Some(path)))?;
    Ok(vec![json!(data.len())])
}

/// Base64 as Python's `b64decode` reads it by default: characters outside
/// the alphabet are skipped.
fn decode_base64(encoded: &str) -> Result<Vec<u8>, Failure> {
    let cleaned: String = encoded
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        .collect();
    // Python's binascii names its errors `Error`.
    if !cleaned.len().is_multiple_of(4) {
        return Err(Failure::new("Error", "Incorrect padding"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .map_err(|e| Failure::new("Error", format!("Invalid base64-encoded string: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Server {
        Server::new(Readiness::default())
    }

    fn reply(server: &mut Server, request: &str) -> Value {
        let line = server.handle(request.as_bytes()).expect("a reply");
        serde_json::from_str(&line).unwrap()
    }

    fn me() -> String {
        nix::unistd::User::from_uid(nix::unistd::Uid::effective())
            .unwrap()
            .unwrap()
            .name
    }

    #[test]
    fn sh_call_replies_with_code_and_output() {
        let mut s = server();
        let request = json!([41, "sh_call", me(), {"X": "é"}, "printf '%s' \"$X\"; exit 2"]);
        let line = s.handle(request.to_string().as_bytes()).unwrap();
        // Byte for byte as Tails' Python server would write it.
        assert_eq!(line, r#"[41, "success", 2, "\u00e9", ""]"#);
    }

    #[test]
    fn files_round_trip_through_base64() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f").to_string_lossy().into_owned();
        let mut s = server();
        // Ruby's Base64.encode64 breaks lines every 60 characters.
        let long = "x".repeat(100);
        let ruby_style = {
            let b = base64::engine::general_purpose::STANDARD.encode(&long);
            format!("{}\n{}\n", &b[..60], &b[60..])
        };
        assert_eq!(
            reply(
                &mut s,
                &json!([1, "file_write", path, ruby_style]).to_string()
            ),
            json!([1, "success", 100])
        );
        assert_eq!(
            reply(&mut s, &json!([2, "file_append", path, "IQ=="]).to_string()),
            json!([2, "success", 1])
        );
        let expected = base64::engine::general_purpose::STANDARD.encode(format!("{long}!"));
        assert_eq!(
            reply(&mut s, &json!([3, "file_read", path]).to_string()),
            json!([3, "success", expected])
        );
    }

    #[test]
    fn failures_are_error_replies_with_the_request_id() {
        let mut s = server();
        let line = s.handle(br#"[5, "file_read", "/nonexistent/x"]"#).unwrap();
        assert_eq!(
            line,
            r#"[5, "error", "FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent/x'"]"#
        );
        assert_eq!(
            reply(&mut s, r#"[6, "reboot"]"#),
            json!([6, "error", "ValueError: unknown command type"])
        );
        assert_eq!(
            reply(&mut s, r#"[7, "sh_call", "root", {}]"#),
            json!([
                7,
                "error",
                "ValueError: not enough values to unpack (expected 3, got 2)"
            ])
        );
        assert_eq!(
            reply(&mut s, r#"[8, "file_read", "/etc/hostname", "extra"]"#),
            json!([8, "error", "AssertionError: "])
        );
        let python = reply(&mut s, r#"[9, "python_execute", "root", {}, "print(1)"]"#);
        assert_eq!(python[1], "error");
        assert!(python[2]
            .as_str()
            .unwrap()
            .starts_with("NotImplementedError"));
        // No id to echo: null.
        let garbage = reply(&mut s, "{not json");
        assert_eq!(garbage[0], Value::Null);
        assert!(garbage[2].as_str().unwrap().starts_with("JSONDecodeError"));
    }

    #[test]
    fn spawn_is_silent_and_signal_ready_marks_readiness() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ready");
        let mut s = Server::new(Readiness::with_file(marker.clone()));
        let spawned = json!([
            10,
            "sh_spawn",
            me(),
            {},
            format!("touch {}/spawned", dir.path().display())
        ]);
        assert_eq!(s.handle(spawned.to_string().as_bytes()), None);
        assert!(!marker.exists());
        assert_eq!(
            s.handle(br#"[11, "signal_ready"]"#).as_deref(),
            Some(r#"[11, "success"]"#)
        );
        assert!(marker.exists());
        // The spawned command ran on its own.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !dir.path().join("spawned").exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "spawned command never ran"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    #[test]
    fn base64_is_read_like_python() {
        assert_eq!(decode_base64("aGk=\n").unwrap(), b"hi");
        assert_eq!(
            decode_base64("aGk").unwrap_err().to_string(),
            "Error: Incorrect padding"
        );
    }
}
