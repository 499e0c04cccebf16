//! Running a shell command as a user, as Tails' server does: `/bin/sh -c`
//! in a child that has taken the user's groups, group and uid (in that
//! order; initgroups' lookup happens in the parent, so the child only
//! makes system calls), in the user's home, with the user's login
//! environment updated with the request's.
//!
//! The login environment is what `su USER` (without `-l`) gives: the
//! server's own environment with `HOME`, `SHELL`, `USER`, `LOGNAME` from the
//! password database and `PATH` as Debian's `login.defs` sets it.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::unistd::{Gid, Uid, User};

use crate::failure::Failure;

/// Debian's `ENV_SUPATH` and `ENV_PATH`.
const ROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const USER_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games";

/// What a finished command did, as the protocol reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The exit code, or minus the signal that killed the command.
    pub returncode: i64,
    pub stdout: String,
    pub stderr: String,
}

/// Who a command runs as.
struct Account {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    env: BTreeMap<String, String>,
    cwd: String,
}

fn account(user: &str) -> Result<Account, Failure> {
    // Python's pwd.getpwnam raises KeyError with this text.
    let missing = || {
        Failure::new(
            "KeyError",
            format!("\"getpwnam(): name not found: {}\"", py_repr(user)),
        )
    };
    let entry = User::from_name(user)
        .map_err(|e| Failure::os(e, None))?
        .ok_or_else(missing)?;
    let name = CString::new(user).map_err(|_| missing())?;
    let groups = nix::unistd::getgrouplist(&name, entry.gid).map_err(|e| Failure::os(e, None))?;
    let home = entry.dir.to_string_lossy().into_owned();
    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    env.insert("HOME".into(), home.clone());
    env.insert("SHELL".into(), entry.shell.to_string_lossy().into_owned());
    env.insert("USER".into(), entry.name.clone());
    env.insert("LOGNAME".into(), entry.name.clone());
    env.insert(
        "PATH".into(),
        if entry.uid.is_root() {
            ROOT_PATH
        } else {
            USER_PATH
        }
        .into(),
    );
    Ok(Account {
        uid: entry.uid,
        gid: entry.gid,
        groups,
        env,
        cwd: home,
    })
}

/// `s` as Python's `repr` quotes a string (the simple cases).
pub fn py_repr(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// A `/bin/sh -c COMMAND` that will run as `user` with `env` added.
fn command(user: &str, env: &BTreeMap<String, String>, script: &str) -> Result<Command, Failure> {
    let mut account = account(user)?;
    account
        .env
        .extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    // Tails' server fails when the home is missing (`nobody`'s
    // /nonexistent); starting in / is more useful than an error.
    let cwd = account.env.get("HOME").cloned().unwrap_or(account.cwd);
    let cwd = if Path::new(&cwd).is_dir() {
        cwd
    } else {
        "/".into()
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .env_clear()
        .envs(&account.env)
        .current_dir(cwd)
        .stdin(Stdio::null());
    let (uid, gid, groups) = (account.uid, account.gid, account.groups);
    let switch = move || -> std::io::Result<()> {
        nix::unistd::setgroups(&groups)?;
        nix::unistd::setgid(gid)?;
        nix::unistd::setuid(uid)?;
        Ok(())
    };
    // SAFETY: the closure runs between fork and exec and only makes the
    // setgroups, setgid and setuid system calls on data prepared before
    // the fork: no allocation, no lock.
    unsafe {
        cmd.pre_exec(switch);
    }
    Ok(cmd)
}

/// Text as Python reads a child's output with `text=True`: UTF-8 (invalid
/// bytes replaced rather than failing the request), with universal
/// newlines (`\r\n` and `\r` become `\n`).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace("\r\n", "\n")
        .replace('\r', "\n")
}

/// `sh_call`: run and wait; the exit code (or minus the signal) and the
/// output.
pub fn call(user: &str, env: &BTreeMap<String, String>, script: &str) -> Result<Finished, Failure> {
    let output = command(user, env, script)?
        .output()
        .map_err(|e| Failure::io(&e, None))?;
    let returncode = match (output.status.code(), output.status.signal()) {
        (Some(code), _) => i64::from(code),
        (None, Some(signal)) => -i64::from(signal),
        (None, None) => -1,
    };
    Ok(Finished {
        returncode,
        stdout: text(&output.stdout),
        stderr: text(&output.stderr),
    })
}

/// `sh_spawn`: start and return; its output goes where the server's does.
pub fn spawn(user: &str, env: &BTreeMap<String, String>, script: &str) -> Result<Child, Failure> {
    command(user, env, script)?
        .spawn()
        .map_err(|e| Failure::io(&e, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_name(gid: Gid) -> String {
        nix::unistd::Group::from_gid(gid)
            .ok()
            .flatten()
            .map(|g| g.name)
            .unwrap_or_else(|| gid.to_string())
    }

    fn root() -> bool {
        Uid::effective().is_root()
    }

    #[test]
    fn output_is_text_with_universal_newlines() {
        assert_eq!(text(b"a\r\nb\rc\n\xff"), "a\nb\nc\n\u{fffd}");
    }

    #[test]
    fn exit_codes_and_signals() {
        let me = User::from_uid(Uid::effective()).unwrap().unwrap().name;
        let none = BTreeMap::new();
        let out = call(&me, &none, "echo out; echo err >&2; exit 3").unwrap();
        assert_eq!(
            out,
            Finished {
                returncode: 3,
                stdout: "out\n".into(),
                stderr: "err\n".into()
            }
        );
        assert_eq!(call(&me, &none, "kill -TERM $$").unwrap().returncode, -15);
    }

    #[test]
    fn the_requested_environment_wins_and_home_is_the_cwd() {
        let me = User::from_uid(Uid::effective()).unwrap().unwrap();
        let env = BTreeMap::from([("GREETING".to_owned(), "hi there".to_owned())]);
        let out = call(&me.name, &env, "echo \"$GREETING|$USER|$HOME|$(pwd)\"").unwrap();
        let home = me.dir.to_string_lossy();
        let cwd = if me.dir.is_dir() {
            home.to_string()
        } else {
            "/".into()
        };
        assert_eq!(out.stdout, format!("hi there|{}|{home}|{cwd}\n", me.name));
    }

    #[test]
    fn an_unknown_user_is_pythons_key_error() {
        let err = call("no-such-user-here", &BTreeMap::new(), "true").unwrap_err();
        assert_eq!(
            err.to_string(),
            "KeyError: \"getpwnam(): name not found: 'no-such-user-here'\""
        );
    }

    #[test]
    fn commands_run_as_the_user_with_its_groups() {
        if !root() {
            eprintln!("skipped: switching users needs root");
            return;
        }
        let nobody = User::from_name("nobody").unwrap().unwrap();
        let out = call("nobody", &BTreeMap::new(), "id -u; id -g; id -G; pwd").unwrap();
        let expected_groups: Vec<String> =
            nix::unistd::getgrouplist(&CString::new("nobody").unwrap(), nobody.gid)
                .unwrap()
                .iter()
                .map(|g| g.to_string())
                .collect();
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines[0], nobody.uid.to_string(), "{out:?}");
        assert_eq!(lines[1], nobody.gid.to_string(), "{out:?}");
        let mut seen: Vec<&str> = lines[2].split(' ').collect();
        seen.sort();
        let mut want: Vec<&str> = expected_groups.iter().map(String::as_str).collect();
        want.sort();
        want.dedup();
        assert_eq!(seen, want, "groups of nobody ({})", group_name(nobody.gid));
        // nobody's home does not exist: the command starts in /.
        assert_eq!(
            lines[3],
            if nobody.dir.is_dir() {
                nobody.dir.to_str().unwrap()
            } else {
                "/"
            }
        );
    }
}
