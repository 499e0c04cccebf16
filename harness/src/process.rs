//! Child processes that never outlive the harness.
//!
//! Every daemon Tailor starts (QEMU, dnsmasq, tor) goes through [`spawn`]:
//! the child gets its own process group (so a terminal's Ctrl-C reaches the
//! harness, which then tears down in order) and `PR_SET_PDEATHSIG(SIGKILL)`
//! (so a SIGKILLed harness still takes its children with it). The death
//! signal fires when the *thread* that forked the child exits, not the
//! process, so all forks happen on one spawner thread that lives as long as
//! the process; a tokio blocking-pool thread would retire after 10 s idle and
//! kill the VM with it.
//!
//! [`ChildGuard`] ends the group on drop: SIGTERM, a grace period, SIGKILL,
//! and reports whatever lingers.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Errors from starting or stopping a child process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{program}` is not installed or not on PATH (install it: {hint})")]
    NotFound { program: String, hint: String },
    #[error("could not start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not open network namespace {path}")]
    Netns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the process spawner thread is gone")]
    SpawnerGone,
}

/// How a child is started: its command line, where its output goes, and an
/// optional network namespace it is placed in before `exec`.
#[derive(Debug)]
pub struct Spec {
    pub program: OsString,
    pub args: Vec<OsString>,
    /// stdout and stderr are appended to this file (created if missing); the
    /// tail is quoted in errors. `None` discards them.
    pub log: Option<PathBuf>,
    /// `/run/netns/NAME` or `/proc/PID/ns/net`: the child joins this network
    /// namespace before exec.
    pub netns: Option<PathBuf>,
    pub env: Vec<(OsString, OsString)>,
    pub current_dir: Option<PathBuf>,
}

/// How a process gets into a network namespace it did not create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// Join the namespace at this path (`/run/netns/NAME`) before exec:
    /// needs CAP_SYS_ADMIN over it, i.e. root for a root-made namespace.
    Join(PathBuf),
    /// Run through `nsenter --user --net` into the namespaces of process
    /// `target`: a rootless lab's network namespace belongs to a user
    /// namespace, and only inside that one may we configure and use it.
    UserAndNet { target: u32 },
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Namespace::Join(path) => write!(f, "{}", path.display()),
            Namespace::UserAndNet { target } => {
                write!(f, "the user and network namespaces of pid {target}")
            }
        }
    }
}

/// A namespace bound at a path (`/run/netns/NAME`) is joined.
impl From<PathBuf> for Namespace {
    fn from(path: PathBuf) -> Self {
        Namespace::Join(path)
    }
}

impl From<&Path> for Namespace {
    fn from(path: &Path) -> Self {
        Namespace::Join(path.to_owned())
    }
}

impl From<&PathBuf> for Namespace {
    fn from(path: &PathBuf) -> Self {
        Namespace::Join(path.clone())
    }
}

impl From<&Namespace> for Namespace {
    fn from(namespace: &Namespace) -> Self {
        namespace.clone()
    }
}

impl Namespace {
    /// `spec` made to start inside this namespace.
    pub fn apply(&self, spec: Spec) -> Spec {
        match self {
            Namespace::Join(path) => spec.netns(path),
            Namespace::UserAndNet { target } => {
                let mut args: Vec<OsString> = vec![
                    "--target".into(),
                    target.to_string().into(),
                    "--user".into(),
                    "--net".into(),
                    "--preserve-credentials".into(),
                    "--".into(),
                    spec.program.clone(),
                ];
                args.extend(spec.args.iter().cloned());
                Spec {
                    program: "nsenter".into(),
                    args,
                    ..spec
                }
            }
        }
    }
}

impl Spec {
    /// The command with its arguments, environment and folder, stdin
    /// closed, and its network namespace opened (entered by the caller
    /// between fork and exec, with whatever else the child needs there).
    fn command(&self) -> std::io::Result<(Command, Option<File>)> {
        let netns = self.netns.as_ref().map(File::open).transpose()?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        Ok((cmd, netns))
    }

    pub fn new(program: impl Into<OsString>) -> Self {
        Spec {
            program: program.into(),
            args: Vec::new(),
            log: None,
            netns: None,
            env: Vec::new(),
            current_dir: None,
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn log(mut self, path: impl Into<PathBuf>) -> Self {
        self.log = Some(path.into());
        self
    }

    pub fn netns(mut self, path: impl Into<PathBuf>) -> Self {
        self.netns = Some(path.into());
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.current_dir = Some(dir.into());
        self
    }

    /// The command line as a shell would show it, for logs and errors.
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

type SpawnRequest = (Spec, mpsc::Sender<Result<Child, Error>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("tailor-spawner".into())
            .spawn(move || {
                for (spec, reply) in rx {
                    let _ = reply.send(spawn_here(spec));
                }
            })
            .expect("cannot start the spawner thread");
        Mutex::new(tx)
    })
}

fn spawn_here(spec: Spec) -> Result<Child, Error> {
    let command_line = spec.display();
    let (mut cmd, netns) = spec.command().map_err(|source| Error::Netns {
        path: spec.netns.clone().unwrap_or_default(),
        source,
    })?;
    match &spec.log {
        Some(path) => {
            let open = || {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
            };
            let spawn_err = |source| Error::Spawn {
                command: command_line.clone(),
                source,
            };
            cmd.stdout(open().map_err(spawn_err)?);
            cmd.stderr(open().map_err(spawn_err)?);
        }
        None => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    let parent = std::process::id() as i32;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The harness may have died between fork and prctl.
            if nix::unistd::getppid().as_raw() != parent {
                nix::libc::_exit(1);
            }
            if let Some(ns) = &netns {
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                program: spec.program.to_string_lossy().into_owned(),
                hint: install_hint(&spec.program.to_string_lossy()),
            }
        } else {
            Error::Spawn {
                command: command_line,
                source,
            }
        }
    })
}

/// The Debian package that provides a program Tailor runs.
pub fn install_hint(program: &str) -> String {
    let name = Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let package = match name.as_str() {
        n if n.starts_with("qemu-system") => "qemu-system-x86",
        "qemu-img" => "qemu-utils",
        "tor" | "tor-gencert" => "tor",
        "dnsmasq" => "dnsmasq-base",
        "ip" => "iproute2",
        "nft" => "nftables",
        "xorriso" => "xorriso",
        "obfs4proxy" => "obfs4proxy",
        _ => return format!("a package that provides `{name}`"),
    };
    format!("apt-get install {package}")
}

/// Start a child in its own process group, tied to the harness's life.
pub fn spawn(spec: Spec) -> Result<ChildGuard, Error> {
    let name = spec
        .program
        .to_string_lossy()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let log = spec.log.clone();
    tracing::debug!(command = %spec.display(), "spawning");
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()
        .lock()
        .map_err(|_| Error::SpawnerGone)?
        .send((spec, reply_tx))
        .map_err(|_| Error::SpawnerGone)?;
    let child = reply_rx.recv().map_err(|_| Error::SpawnerGone)??;
    Ok(ChildGuard {
        child: Some(child),
        name,
        log,
    })
}

/// Owns a running child and its process group; ends both on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    name: String,
    log: Option<PathBuf>,
}

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// The exit status if the child has exited, without blocking.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The last `lines` lines of the child's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        self.log
            .as_deref()
            .map(|p| tail_of_file(p, lines))
            .unwrap_or_default()
    }

    /// SIGTERM the group, wait up to `grace`, then SIGKILL. Returns the exit
    /// status when the child was reaped.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pgid = Pid::from_raw(child.id() as i32);
        if let Ok(Some(status)) = child.try_wait() {
            let _ = killpg(pgid, Signal::SIGKILL);
            return Some(status);
        }
        let _ = killpg(pgid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                let _ = killpg(pgid, Signal::SIGKILL);
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(
            name = %self.name,
            pid = child.id(),
            "did not exit {grace:?} after SIGTERM; sending SIGKILL"
        );
        let _ = killpg(pgid, Signal::SIGKILL);
        child.wait().ok()
    }
}

impl ChildGuard {
    /// SIGKILL the group at once and reap the child: for daemons that keep
    /// no state worth a clean exit and are slow to make one.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        child.wait().ok()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// The last `lines` lines of a text file (lossy UTF-8), or "" when unreadable.
pub fn tail_of_file(path: &Path, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Run a short command to completion (no guard needed) and return its
/// stdout, or an error carrying its stderr.
pub fn run_output(program: &str, args: &[&str]) -> Result<String, RunError> {
    run_spec(&Spec::new(program).args(args))
}

/// [`run_output`] for a [`Spec`]: in its network namespace, with its
/// environment and folder (its `log` is not used: the output is returned).
pub fn run_spec(spec: &Spec) -> Result<String, RunError> {
    let command = spec.display();
    let program = spec.program.to_string_lossy().into_owned();
    let (mut cmd, netns) = spec.command().map_err(|source| RunError::Io {
        command: command.clone(),
        source,
    })?;
    if let Some(ns) = netns {
        // SAFETY: setns is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                Ok(())
            });
        }
    }
    let out = cmd.output().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            RunError::NotFound {
                hint: install_hint(&program),
                program: program.clone(),
            }
        } else {
            RunError::Io {
                command: command.clone(),
                source,
            }
        }
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(RunError::Failed {
            command,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Errors from [`run_output`].
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("`{program}` is not installed or not on PATH (install it: {hint})")]
    NotFound { program: String, hint: String },
    #[error("could not run `{command}`")]
    Io {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_names_the_package() {
        let err = spawn(Spec::new("qemu-system-doesnotexist")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("qemu-system-doesnotexist"), "{text}");
        assert!(text.contains("apt-get install qemu-system-x86"), "{text}");
    }

    #[test]
    fn guard_stops_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let mut guard = spawn(
            Spec::new("sh")
                .arg("-c")
                .arg(format!("sleep 600 & echo $! > {}; wait", pidfile.display())),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
            assert!(Instant::now() < deadline, "sh did not start its child");
            std::thread::sleep(Duration::from_millis(10));
        }
        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        guard.stop(Duration::from_secs(2));
        // The grandchild is reparented to init and reaped there; give it a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Path::new(&format!("/proc/{grandchild}")).exists()
            && !std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .unwrap_or_default()
                .contains(") Z")
        {
            assert!(
                Instant::now() < deadline,
                "grandchild {grandchild} survived"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
