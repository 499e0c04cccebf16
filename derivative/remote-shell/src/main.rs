//! `tailor-remote-shell`: the reference derivative's server for Tails'
//! autotest remote-shell protocol, on the virtio-serial port
//! `org.tails.remote_shell.0`, written here from Tails' protocol and
//! answering like Tails' own server, byte for byte (see [`request`] and
//! [`pyjson`]). The init starts it only when the kernel command line
//! carries `autotest_never_use_this_option`, as Tails does.
//!
//! ```text
//! tailor-remote-shell [--port DEVICE] [--ready-file FILE] [--wait-for-signal]
//! ```
//!
//! - `--port`: default `/dev/virtio-ports/org.tails.remote_shell.0`.
//! - `--ready-file`: created when the server is ready (at once, or on
//!   `signal_ready` with `--wait-for-signal`), for an init to wait on;
//!   under systemd (`NOTIFY_SOCKET`), `READY=1` is sent as well.
//!
//! One request at a time, in order; each command runs as the requested
//! user ([`run`]). What it does goes to stderr, one line per request.

mod failure;
mod notify;
mod port;
mod pyjson;
mod request;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

const DEFAULT_PORT: &str = "/dev/virtio-ports/org.tails.remote_shell.0";

struct Args {
    port: PathBuf,
    ready_file: Option<PathBuf>,
    wait_for_signal: bool,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        port: DEFAULT_PORT.into(),
        ready_file: None,
        wait_for_signal: false,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => parsed.port = value("--port")?.into(),
            "--ready-file" => parsed.ready_file = Some(value("--ready-file")?.into()),
            "--wait-for-signal" => parsed.wait_for_signal = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}

/// What the log says about a request: its type, user and command, short.
fn describe(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(line);
    let shown: String = text.chars().take(200).collect();
    if shown.len() < text.len() {
        format!("{shown}...")
    } else {
        shown
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("tailor-remote-shell: {e}\nusage: tailor-remote-shell [--port DEVICE] [--ready-file FILE] [--wait-for-signal]");
            return ExitCode::from(2);
        }
    };
    let mut port = match port::Port::open(&args.port) {
        Ok(port) => port,
        Err(e) => {
            eprintln!(
                "tailor-remote-shell: cannot open {}: {e}",
                args.port.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let readiness = notify::Readiness::new(args.ready_file);
    if !args.wait_for_signal {
        if let Err(e) = readiness.mark_ready() {
            eprintln!("tailor-remote-shell: cannot say it is ready: {e}");
        }
    }
    eprintln!(
        "tailor-remote-shell: serving {}{}",
        args.port.display(),
        if args.wait_for_signal {
            " (holding the boot until signal_ready)"
        } else {
            ""
        }
    );
    let mut server = request::Server::new(readiness);
    loop {
        let line = match port.next_line() {
            Ok(line) => line,
            Err(e) => {
                eprintln!("tailor-remote-shell: reading {}: {e}", args.port.display());
                return ExitCode::FAILURE;
            }
        };
        eprintln!("tailor-remote-shell: request {}", describe(&line));
        if let Some(reply) = server.handle(&line) {
            eprintln!("tailor-remote-shell: reply {}", describe(reply.as_bytes()));
            if let Err(e) = port.reply(&reply) {
                eprintln!("tailor-remote-shell: writing the reply: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        let args = parse_args(
            [
                "--port",
                "/dev/pts/3",
                "--ready-file",
                "/run/r",
                "--wait-for-signal",
            ]
            .map(String::from),
        )
        .unwrap();
        assert_eq!(args.port, PathBuf::from("/dev/pts/3"));
        assert_eq!(args.ready_file, Some(PathBuf::from("/run/r")));
        assert!(args.wait_for_signal);
        assert_eq!(
            parse_args(Vec::<String>::new()).unwrap().port,
            PathBuf::from(DEFAULT_PORT)
        );
        assert!(parse_args(["--port".to_owned()]).is_err());
        assert!(parse_args(["--verbose".to_owned()]).is_err());
    }

    #[test]
    fn long_requests_are_shortened_in_the_log() {
        assert_eq!(describe(b"[1]"), "[1]");
        assert!(describe(&[b'x'; 500]).ends_with("..."));
    }
}
