//! Process hygiene and failure reporting with a real QEMU: no QEMU outlives
//! the harness however it ends, and a QEMU that dies mid-scenario is
//! reported as such, not as a hang or a panic.
#![cfg(feature = "vm")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::vm::{Vm, VmConfig, VmError, VmOptions};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const CHILD_MODE: &str = "TAILOR_TEST_CHILD_MODE";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn smoke_config() -> VmConfig {
    let status = Command::new("bash")
        .arg(root().join("tests/images/build-smoke-iso.sh"))
        .arg(root().join(".cache/smoke.iso"))
        .status()
        .expect("run build-smoke-iso.sh");
    assert!(status.success(), "building the smoke ISO failed");
    VmConfig::load(&root().join("vm-configs/smoke.toml")).expect("smoke vm-config")
}

fn alive(pid: u32) -> bool {
    // A zombie is dead for our purpose: it holds no resources but its slot.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}

fn assert_gone_within(pid: u32, timeout: Duration, how: &str) {
    let start = Instant::now();
    loop {
        // As subreaper we inherit the killed child's QEMU: reap it, so no
        // zombie is left on hosts whose init does not reap.
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(pid as i32),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        if !alive(pid) {
            break;
        }
        assert!(
            start.elapsed() < timeout,
            "QEMU (pid {pid}) still runs {timeout:?} after {how}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Not a test on its own: the body of the child process the tests below
/// start and then end in various ways. Without the env var it does nothing.
#[test]
fn child_holds_a_vm() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    // A test run started in the background of a shell inherits SIGINT
    // ignored; a person's Ctrl-C reaches a foreground harness, so act as one.
    // SAFETY: no handler is installed, only the default restored.
    unsafe { nix::sys::signal::signal(Signal::SIGINT, nix::sys::signal::SigHandler::SigDfl) }
        .expect("restore SIGINT's default action");
    let config = smoke_config();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let vm = Vm::start(&config, VmOptions::default())
            .await
            .expect("start VM");
        println!("QEMU_PID={}", vm.pid());
        println!("SCRATCH={}", vm.paths().dir.display());
        if mode == "panic" {
            panic!("deliberate panic with a running VM");
        }
        // Wait to be killed.
        tokio::time::sleep(Duration::from_secs(600)).await;
        drop(vm);
    });
}

/// Start the child, return it with the QEMU pid and scratch dir it reports.
fn start_child(mode: &str) -> (std::process::Child, u32, PathBuf) {
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_a_vm",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start child test process");
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let (mut pid, mut scratch) = (None, None);
    let mut line = String::new();
    while pid.is_none() || scratch.is_none() {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            panic!("child exited before reporting its VM");
        }
        // libtest prints "test NAME ... " without a newline before them.
        if let Some((_, p)) = line.trim().split_once("QEMU_PID=") {
            pid = Some(p.parse().unwrap());
        }
        if let Some((_, s)) = line.trim().split_once("SCRATCH=") {
            scratch = Some(PathBuf::from(s));
        }
    }
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    (child, pid.unwrap(), scratch.unwrap())
}

#[test]
fn sigkill_of_the_harness_takes_qemu_with_it() {
    let (mut child, qemu, scratch) = start_child("wait");
    assert!(alive(qemu), "QEMU should run while the harness does");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    assert_gone_within(qemu, Duration::from_secs(10), "SIGKILL of the harness");
    // The next start removes what the killed run could not.
    assert!(scratch.exists(), "a SIGKILLed run cannot clean up itself");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let vm = Vm::start(&smoke_config(), VmOptions::default())
            .await
            .unwrap();
        vm.shutdown().await.unwrap();
    });
    assert!(
        !scratch.exists(),
        "leftover {} was not removed",
        scratch.display()
    );
}

#[test]
fn sigint_of_the_harness_takes_qemu_with_it() {
    let (mut child, qemu, _) = start_child("wait");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    child.wait().unwrap();
    assert_gone_within(qemu, Duration::from_secs(10), "SIGINT of the harness");
}

#[test]
fn panic_in_the_harness_takes_qemu_with_it() {
    let (mut child, qemu, scratch) = start_child("panic");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child should fail by its panic");
    assert_gone_within(qemu, Duration::from_secs(10), "a panic in the harness");
    assert!(
        !scratch.exists(),
        "unwinding should remove {}",
        scratch.display()
    );
}

#[tokio::test]
async fn drop_stops_qemu_and_removes_its_files() {
    let vm = Vm::start(&smoke_config(), VmOptions::default())
        .await
        .unwrap();
    let (pid, dir) = (vm.pid(), vm.paths().dir.clone());
    assert!(alive(pid));
    drop(vm);
    assert_gone_within(pid, Duration::from_secs(5), "dropping the Vm");
    assert!(!Path::new(&dir).exists(), "{} left behind", dir.display());
}

#[tokio::test]
async fn qemu_dying_mid_scenario_is_reported_with_its_log() {
    let mut vm = Vm::start(&smoke_config(), VmOptions::default())
        .await
        .unwrap();
    kill(Pid::from_raw(vm.pid() as i32), Signal::SIGKILL).unwrap();
    let err = vm
        .screendump()
        .await
        .expect_err("screendump of a dead QEMU");
    assert!(
        matches!(err, VmError::Exited { .. }),
        "unexpected error: {err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("QEMU exited") && text.contains("screendump"),
        "{text}"
    );
}

#[tokio::test]
async fn qemu_refusing_to_start_shows_its_stderr() {
    let mut config = smoke_config();
    config.memory_mib = 64;
    let err = match Vm::start(
        &config,
        VmOptions {
            extra_args: vec!["-device".into(), "no-such-device".into()],
            ..Default::default()
        },
    )
    .await
    {
        Err(e) => e.to_string(),
        Ok(_) => panic!("QEMU started with a bogus device"),
    };
    assert!(
        err.contains("while starting") && err.contains("no-such-device"),
        "{err}"
    );
}

/// Folders in `dir` whose name starts with `prefix`.
fn folders(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// A whole `tailor run` killed with SIGKILL while its VM runs: QEMU dies
/// with it, and the next run removes the killed run's VM scratch folder and
/// checkpoint store. (The lab's and the Tor network's folders are covered
/// by tests/lab.rs and tests/tor_network.rs.)
#[test]
fn a_sigkilled_tailor_run_is_cleaned_up_by_the_next_run() {
    if std::env::var_os(CHILD_MODE).is_some() {
        return;
    }
    smoke_config();
    let tmp = tempfile::tempdir().unwrap();
    let tailor = |artifacts: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tailor"));
        cmd.args(["run", "features/smoke.feature:10", "--artifacts"])
            .arg(tmp.path().join(artifacts))
            .current_dir(root())
            .env("TMPDIR", tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    let mut killed = tailor("first").spawn().unwrap();
    let prefix = format!("tailor-vm-{}-", killed.id());
    // Wait until its VM runs: the scratch folder holds QEMU's QMP socket.
    let start = Instant::now();
    let scratch = loop {
        if let Some(dir) = folders(tmp.path(), &prefix)
            .into_iter()
            .find(|d| d.join("qmp.sock").exists())
        {
            break dir;
        }
        assert!(
            killed.try_wait().unwrap().is_none(),
            "tailor run ended before its VM ran"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no VM of tailor run after 2 min"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let qemu = find_qemu_using(&scratch).expect("the run's QEMU");
    kill(Pid::from_raw(killed.id() as i32), Signal::SIGKILL).unwrap();
    killed.wait().unwrap();
    assert_gone_within(qemu, Duration::from_secs(10), "SIGKILL of tailor run");
    let checkpoints = format!("tailor-checkpoints-{}-", killed.id());
    assert!(scratch.exists(), "a SIGKILLed run cannot clean up itself");
    assert_eq!(folders(tmp.path(), &checkpoints).len(), 1);

    let status = tailor("second").status().unwrap();
    assert!(status.success(), "the next run failed: {status}");
    assert_eq!(folders(tmp.path(), &prefix), Vec::<PathBuf>::new());
    assert_eq!(folders(tmp.path(), &checkpoints), Vec::<PathBuf>::new());
}

/// The pid of the QEMU whose command line names `dir`.
fn find_qemu_using(dir: &Path) -> Option<u32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.starts_with("qemu-system") && c.contains(&needle)
                })
                .unwrap_or(false)
        })
}
