//! One QEMU virtual machine: its command line, its process, QMP, screen,
//! keyboard and mouse, serial console and checkpoints.
//!
//! ```no_run
//! # async fn demo() -> Result<(), harness::vm::VmError> {
//! use harness::vm::{Vm, VmConfig, VmOptions};
//! let config = VmConfig::load("vm-configs/smoke.toml".as_ref())?;
//! let mut vm = Vm::start(&config, VmOptions::default()).await?;
//! vm.wait_serial("login:", std::time::Duration::from_secs(60)).await?;
//! vm.type_text("echo hello\n").await?;
//! let screen = vm.screendump().await?;
//! vm.save_checkpoint("booted").await?;
//! vm.shutdown().await?;
//! # let _ = screen; Ok(()) }
//! ```

pub mod accel;
pub mod boot_menu;
mod channels;
pub mod config;
pub mod media;

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use image::RgbImage;
use qapi::qmp;

pub use accel::Accelerator;
pub use config::{AgentKind, BootMedium, ConfigError, Firmware, Network, VmConfig};

use crate::input::{self, InputError, TypingRate};
use crate::net::capture::Capture;
use crate::process::{self, ChildGuard, Spec};
use crate::qmp::Qmp;
use crate::wait::{self, scaled, Check, Timeout};

/// Errors from starting or driving a VM. Each says what was expected, what
/// was seen, and where QEMU's own log is.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the vm-config {config} names no boot medium (set [boot] iso or disk, or pass --iso)")]
    NoMedium { config: PathBuf },
    #[error("boot medium {path} does not exist{hint}")]
    MissingMedium { path: PathBuf, hint: String },
    #[error(transparent)]
    Accel(#[from] accel::AccelError),
    #[error(transparent)]
    Process(#[from] process::Error),
    #[error("could not create the VM's scratch files in {dir}")]
    Scratch {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("firmware file {file} is missing: {hint}")]
    Firmware { file: PathBuf, hint: String },
    #[error("qemu-img could not create {what}: {detail}")]
    QemuImg { what: String, detail: String },
    #[error("QEMU exited ({status}) {when}; its log {log}:\n{tail}")]
    Exited {
        status: String,
        when: String,
        log: PathBuf,
        tail: String,
    },
    #[error("QEMU did not open its QMP socket {socket} within {waited:?}; its log {log}:\n{tail}")]
    QmpSocket {
        socket: PathBuf,
        waited: Duration,
        log: PathBuf,
        tail: String,
    },
    #[error("QMP {action}")]
    Qmp {
        action: String,
        #[source]
        source: crate::qmp::Error,
    },
    #[error("expected accelerator {expected}, but QMP query-kvm says KVM enabled={kvm_enabled}")]
    AccelMismatch {
        expected: Accelerator,
        kvm_enabled: bool,
    },
    #[error("screendump could not be read from {path}: {detail}")]
    Screendump { path: PathBuf, detail: String },
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{timeout}; serial log {log}, last lines:\n{tail}")]
    Serial {
        timeout: Timeout,
        log: PathBuf,
        tail: String,
    },
    #[error("{timeout}")]
    Screen { timeout: Timeout },
    #[error(transparent)]
    Capture {
        #[from]
        source: crate::net::capture::CaptureError,
    },
    #[error("checkpoint `{name}`: {action} failed: {detail}")]
    Checkpoint {
        name: String,
        action: &'static str,
        detail: String,
    },
}

/// Where the VM's NIC plugs into the lab (see `harness::net`).
#[derive(Debug, Clone)]
pub struct LabAttachment {
    /// How QEMU gets into the lab's network namespace (root or rootless):
    /// from `harness::net::lab::Lab::attachment`.
    pub namespace: crate::process::Namespace,
    /// The tap device inside that namespace.
    pub tap: String,
}

/// Per-start options that are not part of the VM's description.
#[derive(Debug, Clone, Default)]
pub struct VmOptions {
    /// Required when the config's network is `lab`.
    pub lab: Option<LabAttachment>,
    pub typing: TypingRate,
    /// Extra QEMU arguments (appended last).
    pub extra_args: Vec<String>,
    /// A folder whose qcow2 (the checkpoint disk of an ISO boot, the overlay
    /// of a disk boot) outlives this VM, so a later VM of the same config
    /// can start from a checkpoint saved here. `None`: the VM's scratch.
    pub persistent_state: Option<PathBuf>,
    /// Start from this checkpoint (saved earlier in `persistent_state`)
    /// instead of booting.
    pub start_from: Option<String>,
    /// Where QEMU appends what the guest streams on its journal port (a
    /// scenario's artifacts); `None`: `journal.log` in the VM's scratch.
    pub guest_journal: Option<PathBuf>,
    /// Capture the NIC's traffic into this pcap (an absolute path) from
    /// the first instruction on: QEMU starts the capture itself, before
    /// the guest runs (see [`crate::net::capture`]).
    pub capture: Option<PathBuf>,
}

const SCRATCH_PREFIX: &str = "tailor-vm-";

/// Remove `tailor-vm-<pid>-*` folders whose process is gone: what a
/// SIGKILLed harness left behind (its QEMU died with it).
fn remove_orphaned_scratch(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(SCRATCH_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            tracing::info!(
                "removing {} left by a run that was killed",
                entry.path().display()
            );
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The netdev id of the VM's NIC (for `filter-dump` and `set_link`).
pub const NETDEV_ID: &str = "net0";

/// A running QEMU. Dropping it stops QEMU (SIGTERM, then SIGKILL) and
/// removes its scratch files.
pub struct Vm {
    qmp: Qmp,
    // Field order matters: QEMU must stop before its files are removed.
    child: ChildGuard,
    config: VmConfig,
    accel: Accelerator,
    typing: TypingRate,
    paths: VmPaths,
    screen_size: (u32, u32),
    /// The capture QEMU started with the VM ([`VmOptions::capture`]).
    capture: Option<Capture>,
    _scratch: tempfile::TempDir,
    _screen_scratch: Option<tempfile::TempDir>,
}

/// The files and sockets of one VM.
#[derive(Debug, Clone)]
pub struct VmPaths {
    pub dir: PathBuf,
    pub qmp_socket: PathBuf,
    /// A second QMP monitor for onlookers that must not disturb the
    /// harness's session (the run report's per-step screenshots; a person
    /// with `socat`). QEMU serves one client per monitor at a time.
    pub observer_socket: PathBuf,
    pub vnc_socket: PathBuf,
    /// The guest agent's socket (QGA or Tails' remote shell, see
    /// `harness::guest`).
    pub agent_socket: PathBuf,
    /// The guest's log stream (its journal port).
    pub journal_log: PathBuf,
    pub serial_log: PathBuf,
    pub qemu_log: PathBuf,
    pub screendump: PathBuf,
}

impl VmPaths {
    /// Every file in `dir` but the screendump, which may live elsewhere
    /// (on tmpfs).
    fn in_dir(dir: PathBuf, screendump: PathBuf) -> VmPaths {
        VmPaths {
            qmp_socket: dir.join("qmp.sock"),
            observer_socket: dir.join("observer.sock"),
            vnc_socket: dir.join("vnc.sock"),
            agent_socket: dir.join("agent.sock"),
            journal_log: dir.join("journal.log"),
            serial_log: dir.join("serial.log"),
            qemu_log: dir.join("qemu.log"),
            screendump,
            dir,
        }
    }
}

impl Vm {
    /// Start QEMU for `config` and connect to it over QMP.
    pub async fn start(config: &VmConfig, options: VmOptions) -> Result<Vm, VmError> {
        let medium = config.boot.clone().ok_or_else(|| VmError::NoMedium {
            config: config.source.clone(),
        })?;
        if !medium.path().exists() {
            return Err(VmError::MissingMedium {
                path: medium.path().to_owned(),
                hint: " (build the reference ISO with `tailor build-iso`, or pass --iso PATH)"
                    .into(),
            });
        }
        let accel = accel::choose(config.accelerator, &accel::HostPaths::system())?;

        remove_orphaned_scratch(&std::env::temp_dir());
        // The PID in the name lets a later run tell our leftovers (after a
        // SIGKILL nothing runs our cleanup) from a live run's files.
        let scratch = tempfile::Builder::new()
            .prefix(&format!("{SCRATCH_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|source| VmError::Scratch {
                dir: std::env::temp_dir(),
                source,
            })?;
        // Screendumps go to tmpfs when there is one: they are written and
        // read back many times a second while waiting for the screen.
        // Named after this process, so the next run reaps what a SIGKILL
        // left behind.
        let screen_scratch =
            crate::leftovers::tempdir_in(Path::new("/dev/shm"), "tailor-screen-", "").ok();
        let dir = scratch.path().to_owned();
        let screendump = screen_scratch
            .as_ref()
            .map(|d| d.path().join("screen.ppm"))
            .unwrap_or_else(|| dir.join("screen.ppm"));
        let mut paths = VmPaths::in_dir(dir, screendump);
        if let Some(journal) = &options.guest_journal {
            if let Some(parent) = journal.parent() {
                std::fs::create_dir_all(parent).map_err(|source| VmError::Scratch {
                    dir: parent.to_owned(),
                    source,
                })?;
            }
            paths.journal_log = std::path::absolute(journal).unwrap_or_else(|_| journal.clone());
        }

        let mut args = command_line(config, &medium, accel, &paths, &options)?;
        let capture = match &options.capture {
            Some(path) if config.nic_model.is_some() && config.network != Network::None => {
                let (capture, capture_args) = Capture::on_command_line(NETDEV_ID, path)
                    .map_err(|source| VmError::Capture { source })?;
                args.extend(capture_args);
                Some(capture)
            }
            Some(path) => {
                return Err(ConfigError::Invalid {
                    path: config.source.clone(),
                    field: "nic",
                    problem: format!(
                        "a capture into {} was asked for, but the VM has no network",
                        path.display()
                    ),
                }
                .into())
            }
            None => None,
        };
        args.extend(options.extra_args.iter().cloned());
        let mut spec = Spec::new(&config.qemu).args(args).log(&paths.qemu_log);
        if config.network == Network::Lab {
            let lab = options.lab.as_ref().ok_or_else(|| ConfigError::Invalid {
                path: config.source.clone(),
                field: "nic.network",
                problem: "is \"lab\" but no lab was started for this VM".into(),
            })?;
            spec = lab.namespace.apply(spec);
        }
        tracing::info!(command = %spec.display(), "starting QEMU");
        let mut child = process::spawn(spec)?;
        tracing::info!(
            "VM `{}` started (pid {}, {accel}); watch it live: vncviewer {} (or: socat to it), QMP at {}",
            config.name,
            child.pid(),
            paths.vnc_socket.display(),
            paths.qmp_socket.display()
        );

        let qmp = connect_qmp(&mut child, &paths).await?;
        let kvm = qmp
            .execute(qmp::query_kvm {})
            .await
            .map_err(|source| VmError::Qmp {
                action: "query-kvm".into(),
                source,
            })?;
        if kvm.enabled != (accel == Accelerator::Kvm) {
            return Err(VmError::AccelMismatch {
                expected: accel,
                kvm_enabled: kvm.enabled,
            });
        }
        tracing::debug!(
            qemu = qmp.qemu_version(),
            "QMP ready; accelerator confirmed by query-kvm"
        );
        if let Some(capture) = &capture {
            capture
                .verify(&qmp)
                .await
                .map_err(|source| VmError::Capture { source })?;
            tracing::info!(path = %capture.path().display(), "capturing from the first instruction");
        }
        Ok(Vm {
            qmp,
            child,
            config: config.clone(),
            accel,
            typing: options.typing,
            paths,
            screen_size: (config.width, config.height),
            capture,
            _scratch: scratch,
            _screen_scratch: screen_scratch,
        })
    }

    pub fn qmp(&self) -> &Qmp {
        &self.qmp
    }

    /// The capture QEMU started with this VM, if any.
    pub fn capture(&self) -> Option<&Capture> {
        self.capture.as_ref()
    }

    /// Stop the capture QEMU started with this VM (QEMU closes the file)
    /// and return its path. Frames the guest sends later are not recorded.
    pub async fn stop_capture(&mut self) -> Result<Option<PathBuf>, VmError> {
        match self.capture.take() {
            Some(capture) => Ok(Some(
                capture
                    .stop(&self.qmp)
                    .await
                    .map_err(|source| VmError::Capture { source })?,
            )),
            None => Ok(None),
        }
    }

    /// Freeze the guest's CPUs (QMP `stop`): it sends nothing more.
    pub async fn pause(&mut self) -> Result<(), VmError> {
        self.execute(qmp::stop {}).await?;
        Ok(())
    }

    /// Let a paused guest run again (QMP `cont`).
    pub async fn resume(&mut self) -> Result<(), VmError> {
        self.execute(qmp::cont {}).await?;
        Ok(())
    }

    pub fn config(&self) -> &VmConfig {
        &self.config
    }

    pub fn accelerator(&self) -> Accelerator {
        self.accel
    }

    pub fn paths(&self) -> &VmPaths {
        &self.paths
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn typing_rate(&self) -> TypingRate {
        self.typing
    }

    pub fn set_typing_rate(&mut self, rate: TypingRate) {
        self.typing = rate;
    }

    /// The exit status if QEMU has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait()
    }

    /// Turn a QMP failure into the most useful error: if QEMU died, say so
    /// with its log; otherwise the QMP error with what we were doing.
    fn qmp_error(&mut self, action: &str, source: crate::qmp::Error) -> VmError {
        match self.exited_error(&format!("during {action}")) {
            Some(e) => e,
            None => VmError::Qmp {
                action: action.to_owned(),
                source,
            },
        }
    }

    fn exited_error(&mut self, when: &str) -> Option<VmError> {
        // A dying QEMU closes QMP a moment before it is reapable.
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            if let Some(status) = self.child.try_wait() {
                return Some(VmError::Exited {
                    status: status.to_string(),
                    when: when.to_owned(),
                    log: self.paths.qemu_log.clone(),
                    tail: self.child.log_tail(20),
                });
            }
            if !self.qmp.is_closed() || Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Run a typed QMP command, with QEMU's death reported as such.
    pub async fn execute<C>(&mut self, command: C) -> Result<C::Ok, VmError>
    where
        C: qapi::Command + qmp::QmpCommand,
    {
        match self.qmp.execute(command).await {
            Ok(v) => Ok(v),
            Err(e) => Err(self.qmp_error(C::NAME, e)),
        }
    }

    /// The current screen as RGB pixels.
    pub async fn screendump(&mut self) -> Result<RgbImage, VmError> {
        let filename = self.paths.screendump.to_string_lossy().into_owned();
        self.execute(qmp::screendump {
            filename,
            device: None,
            head: None,
            format: None,
        })
        .await?;
        let bytes = std::fs::read(&self.paths.screendump).map_err(|e| VmError::Screendump {
            path: self.paths.screendump.clone(),
            detail: e.to_string(),
        })?;
        let image = crate::screen::decode_ppm(&bytes).map_err(|detail| VmError::Screendump {
            path: self.paths.screendump.clone(),
            detail,
        })?;
        self.screen_size = image.dimensions();
        Ok(image)
    }

    /// Size of the last screendump (the config's display size before one).
    pub fn screen_size(&self) -> (u32, u32) {
        self.screen_size
    }

    /// Type text on the guest's keyboard (US keymap).
    pub async fn type_text(&mut self, text: &str) -> Result<(), VmError> {
        let result = input::type_text(&self.qmp, text, self.typing).await;
        self.input_result(result, "typing")
    }

    /// Press a key combo like "ctrl+alt+t", "Return" or "F2".
    pub async fn press(&mut self, combo: &str) -> Result<(), VmError> {
        let result = input::press(&self.qmp, combo, self.typing).await;
        self.input_result(result, "a key press")
    }

    /// Move the pointer to pixel (x, y).
    pub async fn mouse_move(&mut self, x: u32, y: u32) -> Result<(), VmError> {
        let (w, h) = self.screen_size;
        let result = input::move_to(&self.qmp, x, y, w, h).await;
        self.input_result(result, "a pointer move")
    }

    /// Move to (x, y) and click the left button `count` times (2 = double-click).
    pub async fn click_at(&mut self, x: u32, y: u32, count: u32) -> Result<(), VmError> {
        self.mouse_move(x, y).await?;
        let result = input::click(&self.qmp, qmp::InputButton::left, count, self.typing).await;
        self.input_result(result, "a click")
    }

    fn input_result(
        &mut self,
        result: Result<(), InputError>,
        action: &str,
    ) -> Result<(), VmError> {
        match result {
            Ok(()) => Ok(()),
            Err(InputError::Qmp(e)) => Err(self.qmp_error(action, e)),
            Err(e) => Err(e.into()),
        }
    }

    /// Everything the guest wrote to its serial console so far.
    pub fn serial_text(&self) -> String {
        std::fs::read(&self.paths.serial_log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Bytes of serial output so far; pass to [`Vm::wait_serial_since`] to
    /// wait only for output that comes after this point.
    pub fn serial_len(&self) -> usize {
        std::fs::metadata(&self.paths.serial_log)
            .map(|m| m.len() as usize)
            .unwrap_or(0)
    }

    /// Wait until the serial console shows `text` (anywhere in its log).
    pub async fn wait_serial(&mut self, text: &str, timeout: Duration) -> Result<(), VmError> {
        self.wait_serial_since(0, text, timeout).await
    }

    /// Wait until `text` appears in serial output written after `offset`.
    pub async fn wait_serial_since(
        &mut self,
        offset: usize,
        text: &str,
        timeout: Duration,
    ) -> Result<(), VmError> {
        let timeout = scaled(timeout);
        let log = self.paths.serial_log.clone();
        let what = format!("{text:?} on the serial console");
        let result = {
            let child = &mut self.child;
            wait::wait_until::<(), VmError, _, _>(&what, timeout, Duration::from_millis(50), || {
                let exited = child.try_wait();
                let bytes = std::fs::read(&log).unwrap_or_default();
                let found = bytes
                    .get(offset..)
                    .map(|b| String::from_utf8_lossy(b).contains(text))
                    .unwrap_or(false);
                async move {
                    if found {
                        Check::Ready(())
                    } else if let Some(status) = exited {
                        Check::Fatal(VmError::Exited {
                            status: status.to_string(),
                            when: "while waiting for serial output".into(),
                            log: PathBuf::new(),
                            tail: String::new(),
                        })
                    } else {
                        Check::NotYet("not yet printed".into())
                    }
                }
            })
            .await
        };
        match result {
            Ok(()) => Ok(()),
            Err(wait::WaitError::Timeout(timeout)) => Err(VmError::Serial {
                timeout,
                tail: process::tail_of_file(&log, 15),
                log,
            }),
            Err(wait::WaitError::Fatal(_)) => Err(self
                .exited_error("while waiting for serial output")
                .unwrap_or_else(|| VmError::Exited {
                    status: "unknown".into(),
                    when: "while waiting for serial output".into(),
                    log: self.paths.qemu_log.clone(),
                    tail: self.child.log_tail(20),
                })),
        }
    }

    /// Wait until the screen differs from `before` (at least `min_changed`
    /// pixels).
    pub async fn wait_change(
        &mut self,
        before: &RgbImage,
        min_changed: usize,
        timeout: Duration,
    ) -> Result<RgbImage, VmError> {
        let timeout = scaled(timeout);
        let start = Instant::now();
        let what = format!("the screen to change (at least {min_changed} pixels)");
        let mut progress = wait::Progress::new(&what, timeout);
        let mut last_diff;
        loop {
            let now = self.screendump().await?;
            last_diff = crate::screen::changed_pixels(before, &now).unwrap_or(usize::MAX);
            if last_diff >= min_changed {
                return Ok(now);
            }
            if start.elapsed() >= timeout {
                break;
            }
            progress.tick(Some(&format!("{last_diff} pixels changed")));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(VmError::Screen {
            timeout: Timeout {
                what,
                waited: start.elapsed(),
                last_error: Some(format!("{last_diff} pixels changed")),
            },
        })
    }

    /// Wait until the screen has not changed for `still_for`.
    pub async fn wait_still(
        &mut self,
        still_for: Duration,
        timeout: Duration,
    ) -> Result<RgbImage, VmError> {
        let timeout = scaled(timeout);
        let start = Instant::now();
        let mut reference = self.screendump().await?;
        let mut still_since = Instant::now();
        let mut progress = wait::Progress::new(
            format!("the screen to stay still for {still_for:?}"),
            timeout,
        );
        loop {
            progress.tick(Some(&format!(
                "last change {:.1?} ago",
                still_since.elapsed()
            )));
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.screendump().await?;
            if crate::screen::changed_pixels(&reference, &now) == Some(0) {
                if still_since.elapsed() >= still_for {
                    return Ok(now);
                }
            } else {
                reference = now;
                still_since = Instant::now();
            }
            if start.elapsed() >= timeout {
                return Err(VmError::Screen {
                    timeout: Timeout {
                        what: format!("the screen to stay still for {still_for:?}"),
                        waited: start.elapsed(),
                        last_error: Some(format!("last change {:.1?} ago", still_since.elapsed())),
                    },
                });
            }
        }
    }

    /// Save the whole VM state (RAM, devices, disks) under `name`.
    pub async fn save_checkpoint(&mut self, name: &str) -> Result<(), VmError> {
        self.checkpoint("savevm", name).await
    }

    /// Return the VM to the state saved under `name`.
    pub async fn restore_checkpoint(&mut self, name: &str) -> Result<(), VmError> {
        self.checkpoint("loadvm", name).await
    }

    async fn checkpoint(&mut self, verb: &'static str, name: &str) -> Result<(), VmError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(VmError::Checkpoint {
                name: name.into(),
                action: verb,
                detail: "names may use letters, digits, - _ and . only".into(),
            });
        }
        let start = Instant::now();
        let timeout = scaled(Duration::from_secs(120));
        // QEMU 7.2's QMP snapshot-save/-load are background jobs; the HMP
        // commands do the same synchronously and report errors as text.
        let command = self.qmp.execute_within(
            qmp::human_monitor_command {
                command_line: format!("{verb} {name}"),
                cpu_index: None,
            },
            timeout,
        );
        let out = match wait::reporting(&format!("{verb} {name}"), timeout, command).await {
            Ok(out) => out,
            Err(e) => return Err(self.qmp_error(verb, e)),
        };
        let out = out.trim();
        if !out.is_empty() {
            return Err(VmError::Checkpoint {
                name: name.into(),
                action: verb,
                detail: out.to_owned(),
            });
        }
        tracing::info!("{verb} {name}: {:.2?}", start.elapsed());
        Ok(())
    }

    /// The VM's run state as QEMU reports it ("running", "paused", ...).
    pub async fn status(&mut self) -> Result<String, VmError> {
        let status = self.execute(qmp::query_status {}).await?;
        Ok(serde_json::to_value(status.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default())
    }

    /// Hard reset, like the reset button.
    pub async fn reset(&mut self) -> Result<(), VmError> {
        self.execute(qmp::system_reset {}).await?;
        Ok(())
    }

    /// Plug or unplug the NIC's cable.
    pub async fn set_link(&mut self, up: bool) -> Result<(), VmError> {
        self.execute(qmp::set_link {
            name: NETDEV_ID.into(),
            up,
        })
        .await?;
        Ok(())
    }

    /// Stop QEMU (`quit`) and wait for the process to end.
    pub async fn shutdown(mut self) -> Result<(), VmError> {
        // QEMU may close the socket before it answers `quit`.
        let _ = self.qmp.execute(qmp::quit {}).await;
        let deadline = Instant::now() + scaled(Duration::from_secs(10));
        while Instant::now() < deadline {
            if self.child.try_wait().is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Drop ends it by signal.
        Ok(())
    }
}

/// Screen waits ([`crate::screen::waiting`]) watch a VM through its
/// screendumps.
impl crate::screen::waiting::FrameSource for Vm {
    type Error = VmError;

    async fn frame(&mut self) -> Result<RgbImage, VmError> {
        self.screendump().await
    }
}

/// The screen of a running VM through its observer monitor, from outside
/// the [`Vm`] (e.g. the run report after each step): a connection of its
/// own for one `screendump`, written into the VM's scratch folder.
pub async fn observe_screen(paths: &VmPaths, timeout: Duration) -> Result<RgbImage, VmError> {
    let socket = &paths.observer_socket;
    let qmp = match tokio::time::timeout(timeout, Qmp::connect(socket)).await {
        Ok(connected) => connected.map_err(|source| VmError::Qmp {
            action: format!("connect to the observer monitor {}", socket.display()),
            source,
        })?,
        Err(_) => {
            return Err(VmError::QmpSocket {
                socket: socket.clone(),
                waited: timeout,
                log: paths.qemu_log.clone(),
                tail: process::tail_of_file(&paths.qemu_log, 5),
            })
        }
    };
    let file = paths.dir.join("observer-screen.ppm");
    qmp.execute_within(
        qmp::screendump {
            filename: file.to_string_lossy().into_owned(),
            device: None,
            head: None,
            format: None,
        },
        timeout,
    )
    .await
    .map_err(|source| VmError::Qmp {
        action: "screendump (observer monitor)".into(),
        source,
    })?;
    let bytes = std::fs::read(&file).map_err(|e| VmError::Screendump {
        path: file.clone(),
        detail: e.to_string(),
    })?;
    let _ = std::fs::remove_file(&file);
    crate::screen::decode_ppm(&bytes).map_err(|detail| VmError::Screendump { path: file, detail })
}

async fn connect_qmp(child: &mut ChildGuard, paths: &VmPaths) -> Result<Qmp, VmError> {
    let timeout = scaled(Duration::from_secs(30));
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait() {
            return Err(VmError::Exited {
                status: status.to_string(),
                when: "while starting".into(),
                log: paths.qemu_log.clone(),
                tail: child.log_tail(20),
            });
        }
        if paths.qmp_socket.exists() {
            match Qmp::connect(&paths.qmp_socket).await {
                Ok(qmp) => return Ok(qmp),
                Err(e) if start.elapsed() >= timeout => {
                    return Err(VmError::Qmp {
                        action: "connect".into(),
                        source: e,
                    })
                }
                Err(_) => {}
            }
        }
        if start.elapsed() >= timeout {
            return Err(VmError::QmpSocket {
                socket: paths.qmp_socket.clone(),
                waited: start.elapsed(),
                log: paths.qemu_log.clone(),
                tail: child.log_tail(20),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn qemu_img(args: &[&str], what: &str) -> Result<(), VmError> {
    process::run_output("qemu-img", args)
        .map(|_| ())
        .map_err(|e| VmError::QemuImg {
            what: what.into(),
            detail: e.to_string(),
        })
}

/// The QEMU command line for a config. Creates the qcow2 scratch files the
/// VM writes to (an overlay over a disk image, or an empty disk that holds
/// checkpoints of an ISO-booted VM); the boot medium itself is never written.
fn command_line(
    config: &VmConfig,
    medium: &BootMedium,
    accel: Accelerator,
    paths: &VmPaths,
    options: &VmOptions,
) -> Result<Vec<String>, VmError> {
    let p = |path: &Path| path.to_string_lossy().into_owned();
    let mut args: Vec<String> = vec![
        "-name".into(),
        format!("tailor-{}", config.name),
        "-nodefaults".into(),
        "-no-user-config".into(),
    ];
    args.extend(accel.qemu_args().iter().map(|s| s.to_string()));
    args.extend([
        "-m".into(),
        config.memory_mib.to_string(),
        "-smp".into(),
        config.cpus.to_string(),
        "-display".into(),
        "none".into(),
        "-vnc".into(),
        format!("unix:{}", p(&paths.vnc_socket)),
        "-device".into(),
        format!("VGA,edid=on,xres={},yres={}", config.width, config.height),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", p(&paths.qmp_socket)),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", p(&paths.observer_socket)),
        "-chardev".into(),
        format!("file,id=serial0,path={}", p(&paths.serial_log)),
        "-serial".into(),
        "chardev:serial0".into(),
        // Absolute pointer, so a click lands where the screen says.
        "-device".into(),
        "qemu-xhci,id=xhci".into(),
        "-device".into(),
        "usb-tablet,bus=xhci.0".into(),
    ]);
    // The guest agent's channel (see harness::guest) and its log stream.
    args.extend(channels::channel_args(
        &config.agent,
        &paths.agent_socket,
        &paths.journal_log,
    ));
    let state_dir = options.persistent_state.as_deref().unwrap_or(&paths.dir);
    let state = media::State {
        dir: state_dir,
        start_from: options.start_from.as_deref(),
    };
    args.extend(media::firmware_args(config.firmware, &state)?);
    args.extend(media::medium_args(medium, &state)?);
    if let Some(name) = &options.start_from {
        args.extend(["-loadvm".into(), name.clone()]);
    }
    match (&config.nic_model, config.network) {
        (Some(model), Network::Isolated) => args.extend([
            "-netdev".into(),
            format!("user,id={NETDEV_ID},restrict=on"),
            "-device".into(),
            format!("{model},netdev={NETDEV_ID},mac={}", config.mac_string()),
        ]),
        (Some(model), Network::Lab) => {
            let tap = options
                .lab
                .as_ref()
                .map(|l| l.tap.clone())
                .unwrap_or_default();
            args.extend([
                "-netdev".into(),
                // vnet_hdr=off: otherwise filter-dump writes a virtio-net
                // header before every frame (see GUEST-NOTES.md).
                format!("tap,id={NETDEV_ID},ifname={tap},script=no,downscript=no,vnet_hdr=off"),
                "-device".into(),
                format!("{model},netdev={NETDEV_ID},mac={}", config.mac_string()),
            ]);
        }
        _ => {}
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> VmPaths {
        VmPaths::in_dir(dir.to_owned(), dir.join("s.ppm"))
    }

    #[test]
    fn lab_nic_uses_tap_without_vnet_hdr() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = VmConfig::for_medium(BootMedium::Disk {
            path: dir.path().join("d.raw"),
            format: config::DiskFormat::Raw,
        });
        std::fs::write(dir.path().join("d.raw"), vec![0u8; 512]).unwrap();
        config.network = Network::Lab;
        let options = VmOptions {
            lab: Some(LabAttachment {
                namespace: crate::process::Namespace::Join("/run/netns/x".into()),
                tap: "tap0".into(),
            }),
            ..Default::default()
        };
        let args = command_line(
            &config,
            config.boot.as_ref().unwrap(),
            Accelerator::Tcg,
            &paths(dir.path()),
            &options,
        )
        .unwrap();
        let joined = args.join(" ");
        assert!(
            joined.contains("tap,id=net0,ifname=tap0,script=no,downscript=no,vnet_hdr=off"),
            "{joined}"
        );
        assert!(
            joined.contains("virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56"),
            "{joined}"
        );
        assert!(joined.contains("-accel tcg,thread=multi"), "{joined}");
        assert!(
            joined.contains("-qmp unix:") && joined.contains("observer.sock,server=on,wait=off"),
            "a second QMP monitor for observers: {joined}"
        );
        assert!(dir.path().join("overlay.qcow2").exists(), "overlay created");
    }

    #[tokio::test]
    async fn missing_iso_is_a_clear_error() {
        let config = VmConfig::for_medium(BootMedium::Iso("/nonexistent/derivative.iso".into()));
        let err = match Vm::start(&config, VmOptions::default()).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("started without an ISO"),
        };
        assert!(
            err.contains("/nonexistent/derivative.iso") && err.contains("does not exist"),
            "{err}"
        );
    }
}
