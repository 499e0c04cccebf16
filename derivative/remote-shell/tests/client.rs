//! The harness's client (`harness::guest`) against a real server, over a
//! stand-in for QEMU: the server reads a pty as if it were its
//! virtio-serial port, and a bridge joins the pty to a unix socket the way
//! QEMU's `-chardev socket` joins the port to the host (one client at a
//! time; what the guest writes while no client is connected waits for the
//! next one).
//!
//! - `tailor_server_*`: this crate's server.
//! - `tails_server_*`: Tails' own server (`tails-autotest-remote-shell`,
//!   read at test time from a Tails checkout, never stored here), run by
//!   python3 in a private mount namespace where the pty sits at
//!   `/dev/virtio-ports/org.tails.remote_shell.0`; it needs root, python3
//!   and the checkout (`TAILS_REPO`, default the project's mirror), and
//!   says why when it cannot run. Both servers get the same requests and
//!   must send the same bytes back.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::guest::{AgentKind, Error, Guest};

/// A pty pair in raw mode: the "port" (slave path) and the host's end.
fn raw_pty() -> (OwnedFd, PathBuf, OwnedFd) {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut termios = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
    nix::sys::termios::cfmakeraw(&mut termios);
    nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &termios).unwrap();
    let path = std::fs::read_link(format!("/proc/self/fd/{}", pty.slave.as_raw_fd())).unwrap();
    (pty.master, path, pty.slave)
}

/// QEMU's part: a unix socket whose one client talks to the pty master.
struct Bridge {
    socket: PathBuf,
}

fn bridge(master: OwnedFd, socket: PathBuf) -> Bridge {
    let listener = UnixListener::bind(&socket).unwrap();
    let master = Arc::new(Mutex::new(std::fs::File::from(master)));
    let client: Arc<Mutex<Option<UnixStream>>> = Arc::new(Mutex::new(None));
    let held: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    // Guest to host: to the client, or held until there is one.
    {
        let mut reader = master.lock().unwrap().try_clone().unwrap();
        let client = client.clone();
        let held = held.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut c = client.lock().unwrap();
                let delivered = c.as_mut().is_some_and(|s| s.write_all(&buf[..n]).is_ok());
                if !delivered {
                    held.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }
        });
    }
    // Host to guest: one client at a time.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            {
                let mut pending = held.lock().unwrap();
                if stream.write_all(&pending).is_err() {
                    continue;
                }
                pending.clear();
            }
            *client.lock().unwrap() = Some(stream.try_clone().unwrap());
            let mut buf = [0u8; 65536];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if master.lock().unwrap().write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            *client.lock().unwrap() = None;
        }
    });
    Bridge { socket }
}

struct Server {
    child: Child,
    _slave: OwnedFd,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// This crate's server on a fresh pty, behind a bridge.
fn tailor_server(dir: &Path, extra: &[&str]) -> (Server, Bridge) {
    let (master, port, slave) = raw_pty();
    let child = Command::new(env!("CARGO_BIN_EXE_tailor-remote-shell"))
        .arg("--port")
        .arg(&port)
        .args(extra)
        .stderr(std::fs::File::create(dir.join("server.log")).unwrap())
        .spawn()
        .unwrap();
    let bridge = bridge(master, dir.join("agent.sock"));
    (
        Server {
            child,
            _slave: slave,
        },
        bridge,
    )
}

#[test]
fn tailor_server_serves_the_harness_client() {
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready");
    let ready_arg = ready.to_string_lossy().into_owned();
    let (_server, bridge) = tailor_server(
        dir.path(),
        &["--ready-file", &ready_arg, "--wait-for-signal"],
    );
    let guest = Guest::connect(AgentKind::TailsRemoteShell, &bridge.socket);
    runtime().block_on(async {
        assert!(!ready.exists(), "held until signal_ready");
        guest.wait_ready(Duration::from_secs(20)).await.unwrap();
        assert!(ready.exists(), "wait_ready sent signal_ready");

        let out = guest
            .exec("echo hi; echo oops >&2; exit 4", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(
            (out.exit_code, out.stdout.as_str(), out.stderr.as_str()),
            (Some(4), "hi\n", "oops\n")
        );

        // Files, as root.
        let file = dir.path().join("f.txt").to_string_lossy().into_owned();
        guest.write_file(&file, b"one\n").await.unwrap();
        guest.append_file(&file, "två\n".as_bytes()).await.unwrap();
        assert_eq!(
            guest.read_file(&file).await.unwrap(),
            "one\ntvå\n".as_bytes()
        );
        let err = guest.read_file("/nonexistent/f").await.unwrap_err();
        assert!(matches!(err, Error::Server { .. }), "{err:?}");
        assert!(
            err.to_string().contains("FileNotFoundError: [Errno 2]"),
            "{err}"
        );

        // A reply bigger than a pty's or a virtio port's buffer.
        let big = guest
            .exec(
                "head -c 1000000 /dev/zero | tr '\\0' x",
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert_eq!(big.stdout.len(), 1_000_000);

        // A command that outlives its timeout is killed, and the server
        // serves the next request.
        let start = Instant::now();
        let err = guest
            .exec("sleep 30", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::CommandTimeout { .. }), "{err:?}");
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{:?}",
            start.elapsed()
        );
        let after = guest
            .exec("echo still here", Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(after.stdout, "still here\n");

        if root() {
            let me = guest
                .exec_as("nobody", "id -un; pwd", Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!(me.stdout.lines().next(), Some("nobody"), "{me:?}");
            assert_eq!(me.command, "id -un; pwd (as nobody)");
        } else {
            eprintln!("skipped the other-user part: switching users needs root");
        }
    });
}

#[test]
fn tailor_server_sends_an_abandoned_reply_to_the_next_client_who_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, bridge) = tailor_server(dir.path(), &[]);
    let guest = Guest::connect(AgentKind::TailsRemoteShell, &bridge.socket);
    let shell = guest.remote_shell().unwrap();
    runtime().block_on(async {
        guest.wait_ready(Duration::from_secs(20)).await.unwrap();
        // The client gives up; the server answers later, to nobody.
        let err = shell
            .sh_call(
                "root",
                &[],
                "sleep 2; echo late",
                Duration::from_millis(300),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        // The next request waits behind the first, gets the late reply
        // first, drops it, and takes its own.
        let out = shell
            .sh_call("root", &[], "echo mine", Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(out.stdout, "mine\n");
    });
}

/// Where Tails' sources are: `TAILS_REPO` (a bare or working git
/// checkout), else the project's mirror.
fn tails_repo() -> PathBuf {
    std::env::var_os("TAILS_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/work/.mirror/anonym+tails/repo".into())
}

const TAILS_SERVER: &str = "config/chroot_local-includes/usr/local/lib/tails-autotest-remote-shell";

/// Tails' server, read from its repository at test time, or why not.
fn tails_server_script(dir: &Path) -> Result<PathBuf, String> {
    if !root() {
        return Err("needs root (a private mount namespace)".into());
    }
    let script = dir.join("tails-autotest-remote-shell");
    if let Some(given) = std::env::var_os("TAILS_SERVER_SCRIPT") {
        std::fs::copy(&given, &script).map_err(|e| format!("TAILS_SERVER_SCRIPT: {e}"))?;
        return stubs(dir).map(|()| script);
    }
    let repo = tails_repo();
    // CI machines have no Tails checkout: a skip, said plainly.
    if !repo.exists() {
        return Err(format!(
            "no Tails checkout at {}; set TAILS_REPO to a clone of tails.git (bare or not) to compare with Tails' server",
            repo.display()
        ));
    }
    let out = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["show", &format!("HEAD:{TAILS_SERVER}")])
        .output()
        .map_err(|e| format!("git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "no Tails checkout at {} (set TAILS_REPO): {}",
            repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    std::fs::write(&script, out.stdout).unwrap();
    stubs(dir).map(|()| script)
}

fn stubs(dir: &Path) -> Result<(), String> {
    // The two Tails modules it imports that a Debian host lacks: stand-ins
    // that do what they do outside Tails (nothing to notify, no stored
    // user environment).
    let stubs = dir.join("stubs");
    for (file, text) in [
        ("systemd/__init__.py", ""),
        (
            "systemd/daemon.py",
            "def notify(status):\n    return True\n",
        ),
        ("tailslib/__init__.py", ""),
        (
            "tailslib/userenv.py",
            "def read_user_env(user, allow_root=False):\n    raise FileNotFoundError(user)\n",
        ),
    ] {
        let path = stubs.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let python = Command::new("python3").arg("--version").output();
    if !python.is_ok_and(|o| o.status.success()) {
        return Err("needs python3".into());
    }
    Ok(())
}

/// Tails' server on a pty, in a mount namespace whose /dev holds the pty
/// at the port's path.
fn tails_server(dir: &Path, script: &Path) -> (Server, Bridge) {
    let (master, port, slave) = raw_pty();
    let setup = r#"
set -e
dev=$(mktemp -d)
mount -t tmpfs tmpfs "$dev"
for node in null zero urandom random tty; do
    touch "$dev/$node"; mount --bind "/dev/$node" "$dev/$node"
done
mkdir "$dev/pts" "$dev/virtio-ports"
mount --bind /dev/pts "$dev/pts"
touch "$dev/virtio-ports/org.tails.remote_shell.0"
mount --bind "$PORT" "$dev/virtio-ports/org.tails.remote_shell.0"
mount --move "$dev" /dev
exec python3 "$SCRIPT"
"#;
    let child = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", setup])
        .env("PORT", &port)
        .env("SCRIPT", script)
        .env("PYTHONPATH", dir.join("stubs"))
        .stdin(Stdio::null())
        .stderr(std::fs::File::create(dir.join("tails-server.log")).unwrap())
        .spawn()
        .unwrap();
    let bridge = bridge(master, dir.join("tails.sock"));
    (
        Server {
            child,
            _slave: slave,
        },
        bridge,
    )
}

/// A user other than root that Tails' server can run commands as: it runs
/// `su -c env USER` first, which needs a login shell (and it starts in
/// the user's home, which must exist).
fn other_user() -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let (name, uid, home, shell) = (fields[0], fields.get(2)?, fields.get(5)?, fields.get(6)?);
        (*uid != "0" && shell.ends_with("sh") && Path::new(home).is_dir()).then(|| name.to_owned())
    })
}

/// Send raw request lines one per connection, as Tails' suite does; the
/// raw reply lines.
fn exchange(socket: &Path, requests: &[String]) -> Vec<String> {
    requests
        .iter()
        .map(|request| {
            let mut stream = UnixStream::connect(socket).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            stream.write_all(b"\n").unwrap();
            let mut reply = Vec::new();
            let mut byte = [0u8; 1];
            while stream.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
                reply.push(byte[0]);
            }
            String::from_utf8(reply).unwrap()
        })
        .collect()
}

#[test]
fn tails_server_answers_the_harness_client_and_both_servers_agree_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let script = match tails_server_script(dir.path()) {
        Ok(script) => script,
        Err(why) => {
            eprintln!("skipped the comparison with Tails' server: {why}");
            return;
        }
    };
    let (_tails, tails_bridge) = tails_server(dir.path(), &script);
    let guest = Guest::connect(AgentKind::TailsRemoteShell, &tails_bridge.socket);
    runtime().block_on(async {
        guest
            .wait_ready(Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{e}\nTails' server said:\n{}",
                    std::fs::read_to_string(dir.path().join("tails-server.log"))
                        .unwrap_or_default()
                )
            });
        if let Some(user) = other_user() {
            let out = guest
                .exec_as(&user, "id -un", Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!(out.stdout, format!("{user}\n"));
        }
        let file = dir
            .path()
            .join("from-client")
            .to_string_lossy()
            .into_owned();
        guest.write_file(&file, b"x").await.unwrap();
        guest.append_file(&file, b"y").await.unwrap();
        assert_eq!(guest.read_file(&file).await.unwrap(), b"xy");
    });

    let (_ours, our_bridge) = tailor_server(dir.path(), &[]);
    let files = tempfile::tempdir().unwrap();
    let f = |name: &str| files.path().join(name).to_string_lossy().into_owned();
    let user = other_user().unwrap_or_else(|| "root".into());
    // signal_ready came with Tails 6; older servers call it unknown.
    let knows_ready = std::fs::read_to_string(&script).is_ok_and(|s| s.contains("signal_ready"));
    let mut requests: Vec<serde_json::Value> = vec![
        serde_json::json!([
            101,
            "sh_call",
            "root",
            {},
            "printf 'caf\\303\\251\\r\\nend'; exit 3"
        ]),
        serde_json::json!([102, "sh_call", "root", {"GREETING": "hej då"}, "echo \"$GREETING\" >&2"]),
        serde_json::json!([103, "sh_call", user, {}, "id -un; id -gn; pwd"]),
        serde_json::json!([104, "sh_call", "root", {}, "kill -9 $$"]),
        serde_json::json!([105, "sh_call", "no-such-user", {}, "true"]),
        serde_json::json!([106, "sh_call", "root", {}]),
        serde_json::json!([107, "file_write", f("w"), "aGVsbG8g\n8J+ngA==\n"]),
        serde_json::json!([108, "file_append", f("w"), "IQ=="]),
        serde_json::json!([109, "file_read", f("w")]),
        serde_json::json!([110, "file_read", f("missing")]),
        serde_json::json!([111, "file_read", files.path()]),
        serde_json::json!([112, "file_read", f("w"), "extra"]),
        serde_json::json!([113, "reboot"]),
    ];
    if knows_ready {
        requests.push(serde_json::json!([114, "signal_ready"]));
    }
    let requests: Vec<String> = requests.iter().map(|r| r.to_string()).collect();
    let theirs = exchange(&tails_bridge.socket, &requests);
    let ours = exchange(&our_bridge.socket, &requests);
    for ((request, t), o) in requests.iter().zip(&theirs).zip(&ours) {
        assert_eq!(
            o, t,
            "replies to {request} differ (left: ours, right: Tails')"
        );
    }
    assert!(
        theirs[0].starts_with("[101, \"success\", 3, \"caf\\u00e9\\nend\""),
        "{}",
        theirs[0]
    );
}
