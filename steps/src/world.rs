//! The per-scenario state and the run-wide settings it reads.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use harness::screen::matcher::Match;
use harness::screen::waiting::WaitOutcome;
use harness::vm::{BootMedium, Vm, VmConfig};

/// Run-wide settings: where features find their inputs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Folders of reference images (`NAME.png` + optional `NAME.toml`),
    /// searched in order.
    pub screenshots: Vec<PathBuf>,
    /// Folder of vm-configs (`NAME.toml`).
    pub vm_configs: PathBuf,
    /// Folder of recorded fingerprints, one baseline per kind of
    /// derivative (`KIND.toml`, see `crate::fingerprint_steps`).
    pub fingerprints: PathBuf,
    /// Replaces every boot's vm-config (`--vm-config`).
    pub vm_config: Option<PathBuf>,
    /// Replaces every boot's medium (`--iso`).
    pub iso: Option<PathBuf>,
    /// This run's artifact folder (`artifacts/<run>`); each scenario gets
    /// a folder below it.
    pub artifacts: PathBuf,
    /// Keep a failed scenario's VM for a person to look at.
    pub pause_on_failure: bool,
    /// The kind of derivative under test (see `harness::derivative::kind`):
    /// what the lab starts, what the guest is told, how captures are judged.
    pub kind: harness::derivative::Kind,
}

impl Settings {
    /// Settings for a checkout rooted at `root`.
    pub fn for_checkout(root: &Path) -> Self {
        Settings {
            screenshots: vec![root.join("screenshots")],
            vm_configs: root.join("vm-configs"),
            fingerprints: root.join("fingerprints"),
            vm_config: None,
            iso: None,
            artifacts: root.join("artifacts"),
            pause_on_failure: false,
            kind: harness::derivative::Kind::default(),
        }
    }

    /// The kind of derivative a run tests, and where that came from: the
    /// option, else the lab vm-config's `kind`, else what its ISO (or
    /// `--iso`) says of itself, else Tor.
    pub fn resolve_kind(
        &self,
        option: Option<harness::derivative::Kind>,
    ) -> anyhow::Result<(harness::derivative::Kind, String)> {
        use harness::derivative::kind;
        if let Some(k) = option {
            return Ok((k, "--kind".into()));
        }
        let config = self.vm_config_for(LAB_VM_CONFIG).ok();
        if let Some(k) = config.as_ref().and_then(|c| c.kind) {
            return Ok((k, format!("the vm-config {}", LAB_VM_CONFIG)));
        }
        // A hybrid ISO written raw to a USB stick is read as the ISO it is.
        let iso = match config.and_then(|c| c.boot) {
            Some(BootMedium::Iso(path))
            | Some(BootMedium::Usb {
                path,
                format: harness::vm::config::DiskFormat::Raw,
            }) => Some(path),
            _ => self.iso.clone(),
        };
        if let Some(iso) = iso.filter(|p| p.is_file()) {
            if let Some(info) = kind::read_iso_info(&iso)? {
                return Ok((
                    info.kind,
                    format!("{} in {}", kind::ISO_INFO_PATH, iso.display()),
                ));
            }
            return Ok((
                harness::derivative::Kind::default(),
                format!(
                    "the default: {} has no {} (say --kind if it is not a direct-Tor derivative)",
                    iso.display(),
                    kind::ISO_INFO_PATH
                ),
            ));
        }
        Ok((harness::derivative::Kind::default(), "the default".into()))
    }

    /// The folder that holds reference `name`: the first of
    /// [`Settings::screenshots`] with `NAME.png` (or the first folder, so
    /// a missing reference is reported there).
    pub fn reference_dir(&self, name: &str) -> &Path {
        self.screenshots
            .iter()
            .find(|dir| dir.join(format!("{name}.png")).is_file())
            .or(self.screenshots.first())
            .map(PathBuf::as_path)
            .unwrap_or(Path::new("screenshots"))
    }

    /// The vm-config a step named `name` boots: `--vm-config` if given,
    /// else `vm-configs/NAME.toml`, else `name` as a path to an ISO or disk
    /// image; `--iso` then replaces the medium.
    pub fn vm_config_for(&self, name: &str) -> Result<VmConfig, harness::vm::VmError> {
        let named = self.vm_configs.join(format!("{name}.toml"));
        let mut config = match &self.vm_config {
            Some(path) => VmConfig::load(path)?,
            None if named.exists() => VmConfig::load(&named)?,
            None => VmConfig::for_medium(BootMedium::from_path(PathBuf::from(name))),
        };
        if let Some(iso) = &self.iso {
            config.boot = Some(match &config.boot {
                Some(medium) => medium.with_path(iso.clone()),
                None => BootMedium::from_path(iso.clone()),
            });
        }
        Ok(config)
    }
}

/// The vm-config that boots the derivative on the lab.
pub const LAB_VM_CONFIG: &str = "derivative-lab";

static SETTINGS: RwLock<Option<Settings>> = RwLock::new(None);

/// Set the run's settings before a run (each run sets its own).
pub fn set_settings(settings: Settings) {
    *SETTINGS.write().unwrap_or_else(|e| e.into_inner()) = Some(settings);
}

/// The run's settings; defaults to the current folder as the checkout.
pub fn settings() -> Settings {
    SETTINGS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| Settings::for_checkout(Path::new(".")))
}

/// One scenario's state: the VM it drives and what its steps saw last.
#[derive(cucumber::World)]
#[world(init = Self::new)]
pub struct TailorWorld {
    pub vm: Option<Vm>,
    /// The last reference found on screen (for "When I click" after "I see").
    pub last_match: Option<Match>,
    /// What the last screen wait ("I see", "I no longer see", "I click")
    /// came to, passed or timed out: the reference and its image, the
    /// match or best candidate with its score and threshold, and the
    /// failure picture in the scenario's folder. For the run report.
    pub last_screen_wait: Option<WaitOutcome>,
    pub settings: Settings,
    /// `artifacts/<run>/<scenario>/`, set when the scenario starts.
    pub scenario_dir: PathBuf,
    /// The last command run in the guest.
    pub last_exec: Option<harness::guest::ExecResult>,
    /// The captures of this scenario's VMs on the lab, each from the VM's
    /// first instruction, in the order the VMs started; all are judged at
    /// the scenario's end (see [`crate::judging`]).
    pub captures: Vec<crate::judging::ScenarioCapture>,
    /// The guest was frozen by the judging step (CPUs stopped, capture
    /// closed); anything that needs it running again must resume it.
    pub frozen: bool,
    /// How many queries the lab's resolver had logged when the capture
    /// started: later ones are this scenario's.
    pub resolver_mark: usize,
    /// How many requests the lab's web server had logged when the capture
    /// started: later ones are this scenario's.
    pub web_mark: usize,
    /// The scenario (or its feature) is tagged
    /// `@attempts-blocked-traffic` ([`crate::judging::DELIBERATE_TAG`]).
    pub deliberate: bool,
    /// The firewall as noted by `When I note the firewall's state`.
    pub firewall_noted: Option<harness::derivative::inspect::FirewallState>,
    /// Which bridges this scenario's guest was given and chose.
    pub bridges: crate::bridge_steps::BridgeState,
}

impl TailorWorld {
    fn new() -> Self {
        TailorWorld {
            vm: None,
            last_match: None,
            last_screen_wait: None,
            last_exec: None,
            captures: Vec::new(),
            frozen: false,
            deliberate: false,
            firewall_noted: None,
            bridges: Default::default(),
            resolver_mark: 0,
            web_mark: 0,
            scenario_dir: settings().artifacts,
            settings: settings(),
        }
    }

    /// Before hook: name this scenario's artifact folder.
    pub fn begin_scenario(
        &mut self,
        feature: &cucumber::gherkin::Feature,
        scenario: &cucumber::gherkin::Scenario,
    ) {
        self.deliberate = feature
            .tags
            .iter()
            .chain(&scenario.tags)
            .any(|t| t.trim_start_matches('@') == crate::judging::DELIBERATE_TAG);
        let slug: String = scenario
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let slug = slug
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        self.scenario_dir = self
            .settings
            .artifacts
            .join(format!("{}-line{}", slug, scenario.position.line));
    }

    /// After hook: on failure keep what a person needs to see why (last
    /// screen, serial and QEMU logs, the guest's own logs) and say where it
    /// is.
    pub async fn end_scenario(&mut self, finished: &cucumber::event::ScenarioFinished) {
        use cucumber::event::ScenarioFinished;
        let failed = matches!(
            finished,
            ScenarioFinished::StepFailed(..) | ScenarioFinished::BeforeHookFailed(_)
        );
        if !failed {
            return;
        }
        // The judging step did not run: judge the captures anyway, so the
        // report and the artifacts show any leak next to the failure.
        if !self.frozen && !self.captures.is_empty() {
            crate::judging::judge_for_the_record(self).await;
        }
        if self.frozen {
            if let Some(vm) = self.vm.as_mut() {
                // The guest's own logs are read through its agent.
                let _ = vm.resume().await;
            }
        }
        let dir = self.scenario_dir.clone();
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("cannot create the artifact folder {}: {e}", dir.display());
            return;
        }
        if let Some(vm) = self.vm.as_mut() {
            match vm.screendump().await {
                Ok(screen) => {
                    let _ = screen.save(dir.join("last-screen.png"));
                }
                Err(e) => {
                    let _ = std::fs::write(
                        dir.join("last-screen.txt"),
                        format!("no screenshot: {e}\n"),
                    );
                }
            }
            let paths = vm.paths().clone();
            let _ = std::fs::copy(&paths.serial_log, dir.join("serial.log"));
            let _ = std::fs::copy(&paths.qemu_log, dir.join("qemu.log"));
            // tor's log, the firewall's counters and rules, the network:
            // from the guest itself while it still runs.
            let guest = harness::guest::Guest::for_vm(vm);
            for problem in harness::derivative::inspect::save_guest_logs(
                &guest,
                &dir.join("guest"),
                Duration::from_secs(5),
            )
            .await
            {
                eprintln!("guest logs: {problem}");
            }
            if self.settings.pause_on_failure {
                pause(&paths);
            }
        }
        eprintln!("{}", crate::runner::failure_banner(&dir));
    }

    /// Stop the running VM, if any, keeping its last screen for the report:
    /// the report may not have taken the last step's screen yet.
    pub async fn retire_vm(&mut self) {
        if let Some(mut old) = self.vm.take() {
            // Close its capture cleanly (QEMU would, exiting; this way the
            // last frame is whole before anyone reads the file).
            if old.capture().is_some() {
                if let Err(e) = old.stop_capture().await {
                    tracing::warn!("closing the capture of the VM that is leaving: {e}");
                }
                if let Some(c) = self.captures.last_mut() {
                    c.closed = true;
                }
            }
            // Best effort: a wedged QEMU must not hold up the next boot.
            let departing = tokio::time::timeout(Duration::from_secs(5), old.screendump()).await;
            if let Ok(Ok(screen)) = departing {
                crate::report::vm_leaving(old.paths(), screen);
            }
        }
    }

    /// Start a VM for `config` in place of any running one: on the lab
    /// (with a capture into the scenario's folder) when its network is "lab".
    pub async fn start_vm(
        &mut self,
        config: &harness::vm::VmConfig,
        mut options: harness::vm::VmOptions,
    ) -> anyhow::Result<()> {
        self.retire_vm().await;
        self.frozen = false;
        let on_lab = config.network == harness::vm::Network::Lab;
        // The guest's log stream, for the whole scenario, with its artifacts.
        options
            .guest_journal
            .get_or_insert_with(|| self.scenario_dir.join(crate::boot::GUEST_JOURNAL));
        if on_lab {
            options.lab = Some(crate::lab_steps::lab_attachment(&self.scenario_dir).await?);
            // Captured from the first instruction: a boot is judged too.
            std::fs::create_dir_all(&self.scenario_dir)?;
            let name = match self.captures.len() {
                0 => "capture.pcap".to_owned(),
                n => format!("capture-{}.pcap", n + 1),
            };
            let path = std::path::absolute(self.scenario_dir.join(name))?;
            options.capture = Some(path.clone());
            if self.captures.is_empty() {
                // Queries the lab's resolver and requests its web server
                // logs from now on are this scenario's.
                self.resolver_mark = crate::lab_steps::resolver_queries().await.len();
                self.web_mark = crate::lab_steps::web_requests().await?.len();
            }
            self.captures.push(crate::judging::ScenarioCapture {
                path,
                vm: config.name.clone(),
                nic_mac: config.mac_string().parse().ok(),
                restored_from: options.start_from.clone(),
                network_used: false,
                anonymity_traffic_expected: false,
                closed: false,
            });
        }
        let vm = match harness::vm::Vm::start(config, options).await {
            Ok(vm) => vm,
            Err(e) => {
                if on_lab {
                    self.captures.pop();
                }
                return Err(e.into());
            }
        };
        crate::report::vm_started(vm.paths());
        self.vm = Some(vm);
        Ok(())
    }

    /// The running VM, or an error that says which step is missing.
    pub fn vm(&mut self) -> anyhow::Result<&mut Vm> {
        self.vm.as_mut().ok_or_else(|| {
            anyhow::anyhow!(
                "no computer is running: start one with `Given the computer boots from \"NAME\"`"
            )
        })
    }
}

/// `--pause-on-failure`: say how to look at the VM, wait for Enter.
fn pause(paths: &harness::vm::VmPaths) {
    eprintln!(
        "\nPaused on failure. The VM and its lab are still running.\n  watch it:  vncviewer {vnc}   (or: socat TCP-LISTEN:5900,bind=127.0.0.1 UNIX-CONNECT:{vnc})\n  QMP:       the harness holds {qmp}; a second monitor is free: socat READLINE UNIX-CONNECT:{observer}\n             (send {{\"execute\":\"qmp_capabilities\"}} first; disconnect before pressing Enter)\n  serial:    {serial}\n  guest:     the agent at {agent} (the harness does not hold it)\nPress Enter to tear down and continue.",
        vnc = paths.vnc_socket.display(),
        qmp = paths.qmp_socket.display(),
        observer = paths.observer_socket.display(),
        serial = paths.serial_log.display(),
        agent = paths.agent_socket.display(),
    );
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

impl std::fmt::Debug for TailorWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailorWorld")
            .field("vm", &self.vm.as_ref().map(|vm| vm.config().name.clone()))
            .field("last_match", &self.last_match)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ISO holding only `/tailor/derivative.toml` saying `kind`.
    fn iso_saying(dir: &Path, kind: &str) -> PathBuf {
        let tree = dir.join("tree/tailor");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("derivative.toml"), format!("kind = \"{kind}\"\n")).unwrap();
        let iso = dir.join("x.iso");
        let out = std::process::Command::new("xorriso")
            .args(["-as", "mkisofs", "-quiet", "-o"])
            .arg(&iso)
            .arg(dir.join("tree"))
            .output()
            .expect("xorriso (scripts/setup-host.sh installs it)");
        assert!(out.status.success(), "{out:?}");
        iso
    }

    fn lab_config(dir: &Path, medium: &str) -> Settings {
        let configs = dir.join("vm-configs");
        std::fs::create_dir_all(&configs).unwrap();
        std::fs::write(
            configs.join(format!("{LAB_VM_CONFIG}.toml")),
            format!("name = \"{LAB_VM_CONFIG}\"\n\n[boot]\n{medium}\n"),
        )
        .unwrap();
        Settings::for_checkout(dir)
    }

    #[test]
    fn the_kind_is_read_from_the_lab_iso_on_a_cd_or_a_usb_stick() {
        let tmp = tempfile::tempdir().unwrap();
        let iso = iso_saying(tmp.path(), "vpn");
        for medium in [
            format!("iso = {:?}", iso.display().to_string()),
            format!("usb = {:?}", iso.display().to_string()),
        ] {
            let settings = lab_config(tmp.path(), &medium);
            let (kind, why) = settings.resolve_kind(None).unwrap();
            assert_eq!(kind, harness::derivative::Kind::Vpn, "{medium}: {why}");
            assert!(why.contains(&iso.display().to_string()), "{medium}: {why}");
        }
        // The option wins over what the ISO says.
        let settings = lab_config(
            tmp.path(),
            &format!("usb = {:?}", iso.display().to_string()),
        );
        let (kind, why) = settings
            .resolve_kind(Some(harness::derivative::Kind::Bridges))
            .unwrap();
        assert_eq!(
            (kind, why.as_str()),
            (harness::derivative::Kind::Bridges, "--kind")
        );
    }
}
