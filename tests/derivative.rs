//! The reference derivative, booted for real: build (or reuse) the ISO,
//! boot it under QEMU, drive the greeter with the keyboard, and check the
//! running system through the guest agent, and check what the harmless
//! `branding` customization adds. The leaky customizations are proven end
//! to end by `tests/leaks.rs`: each is caught, with its leak named, by the
//! feature it breaks.
//!
//! The VMs use `-netdev user,restrict=on`: the guest gets DHCP from QEMU but
//! nothing it sends can leave this machine (the leak tests of the features
//! run in the lab instead). VMs run one at a time: CI has 2 cores.
//!
//! The VMs are `harness::vm::Vm`s (QEMU in a process guard: it dies with the
//! test).
//!
//! The reference images are cut per element (`tailor crop`), so they are
//! not rewritten from here: see the README's "Add a reference image".
#![cfg(feature = "vm")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::derivative::{build, markers, BuildOptions, GUEST_LAB_TORRC};
use harness::guest::Guest;
use harness::screen::{reference::Reference, waiting};
use harness::vm::{BootMedium, Vm, VmConfig, VmOptions};
use harness::wait::scaled;

/// The NIC's MAC as the VM is configured: the guest must change it.
const CONFIGURED_MAC: &str = "52:54:00:12:34:56";

static ONE_VM_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn customization(name: &str) -> PathBuf {
    repo()
        .join("derivative/customizations")
        .join(format!("{name}.toml"))
}

/// Build the ISO with these customizations into the cache; the key keeps
/// the variants apart, so each is built once and reused afterwards.
fn iso(customizations: &[&str]) -> PathBuf {
    let name = if customizations.is_empty() {
        "reference".to_owned()
    } else {
        customizations.join("+")
    };
    let out = repo()
        .join(".cache/derivative/test-isos")
        .join(format!("{name}.iso"));
    let mut opts = BuildOptions::new(repo(), &out);
    for c in customizations {
        opts = opts.customization(customization(c));
    }
    let start = Instant::now();
    let built = build(&opts).unwrap_or_else(|e| panic!("building the {name} ISO: {}", chain(&e)));
    eprintln!(
        "{name} ISO {} in {:.1?} ({} bytes)",
        if built.cached {
            "from the cache"
        } else {
            "built"
        },
        start.elapsed(),
        std::fs::metadata(&built.iso).map(|m| m.len()).unwrap_or(0)
    );
    built.iso
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

struct TestVm {
    vm: Vm,
    guest: Guest,
    booted: Instant,
}

impl TestVm {
    /// Boot `iso` with a virtio NIC on QEMU's isolated user network, the
    /// MAC the guest must replace, and the guest agent's port.
    async fn boot(iso: &Path) -> TestVm {
        let mut config = VmConfig::load(&repo().join("vm-configs/derivative.toml"))
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        config.boot = Some(BootMedium::from_path(iso.to_owned()));
        assert_eq!(config.mac_string(), CONFIGURED_MAC);
        let booted = Instant::now();
        let vm = Vm::start(&config, VmOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        let guest = Guest::for_vm(&vm);
        TestVm { vm, guest, booted }
    }

    /// Wait for a marker line on the serial console.
    async fn wait_serial(&mut self, marker: &str, timeout: Duration) {
        self.vm
            .wait_serial(marker, timeout)
            .await
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
    }

    async fn keys(&mut self, keys: &[&str]) {
        for key in keys {
            self.vm
                .press(key)
                .await
                .unwrap_or_else(|e| panic!("{}", chain(&e)));
        }
    }

    async fn type_text(&mut self, text: &str) {
        self.vm
            .type_text(text)
            .await
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
    }

    /// Wait until `screenshots/NAME.png` is on screen.
    async fn assert_screen(&mut self, name: &str) {
        let dir = repo().join("screenshots");
        let reference = Reference::load(&dir, name).unwrap_or_else(|e| panic!("{}", chain(&e)));
        let artifacts = repo().join("artifacts/derivative");
        waiting::wait_for(
            &mut self.vm,
            &reference,
            Duration::from_secs(20),
            &artifacts,
        )
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    }

    async fn sh(&self, command: &str) -> String {
        let out = self
            .guest
            .exec(command, scaled(Duration::from_secs(20)))
            .await
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        out.ensure_success().unwrap_or_else(|e| panic!("{e}"));
        out.stdout
    }

    /// From the welcome screen (Start focused): Enter, then wait until the
    /// start script has started tor.
    async fn start(&mut self) {
        self.keys(&["ret"]).await;
        self.wait_serial(markers::TOR_STARTED, Duration::from_secs(60))
            .await;
    }

    /// Boot to the greeter and the guest agent.
    async fn boot_to_greeter(iso: &Path) -> TestVm {
        let mut vm = TestVm::boot(iso).await;
        vm.wait_serial(markers::GREETER_SHOWN, Duration::from_secs(60))
            .await;
        eprintln!("greeter after {:.1?}", vm.booted.elapsed());
        vm.guest
            .wait_ready(scaled(Duration::from_secs(30)))
            .await
            .unwrap_or_else(|e| panic!("{}", chain(&e)));
        vm
    }
}

/// The output chain's rules, one per line, without counters' numbers.
async fn output_rules(vm: &TestVm) -> Vec<String> {
    vm.sh("nft list chain inet tailor output")
        .await
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("table") && !l.starts_with("chain") && *l != "}"
        })
        .map(without_counter_values)
        .collect()
}

/// "tcp dport 53 counter packets 3 bytes 180 accept" -> "tcp dport 53 accept"
fn without_counter_values(rule: &str) -> String {
    let words: Vec<&str> = rule.split_whitespace().collect();
    let mut kept = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if words[i] == "counter" && words.get(i + 1) == Some(&"packets") {
            i += 5; // counter packets N bytes M
        } else {
            kept.push(words[i]);
            i += 1;
        }
    }
    kept.join(" ")
}

const REFERENCE_OUTPUT_RULES: [&str; 6] = [
    "type filter hook output priority filter; policy drop;",
    "oifname \"lo\" tcp dport 9051 meta skuid != 0 counter name \"rejected_control_port\" reject with tcp reset",
    "oifname \"lo\" accept",
    "meta nfproto ipv6 counter name \"dropped_ipv6\" drop",
    "meta skuid 101 accept",
    "counter name \"rejected_output\" reject",
];

#[tokio::test]
async fn reference_iso_boots_to_greeter_and_starts_tor_behind_the_firewall() {
    let iso = iso(&[]);
    let _slot = ONE_VM_AT_A_TIME.lock().await;
    let mut vm = TestVm::boot_to_greeter(&iso).await;
    vm.assert_screen("greeter-welcome").await;

    // The harness points tor at its network before Start, as with chutney.
    vm.guest
        .write_file(
            GUEST_LAB_TORRC,
            b"# written by the harness\nSafeLogging 1\n",
        )
        .await
        .unwrap();
    assert_eq!(
        vm.guest.read_file(GUEST_LAB_TORRC).await.unwrap(),
        b"# written by the harness\nSafeLogging 1\n"
    );

    // Additional settings: set an administration password.
    vm.keys(&["down", "ret"]).await;
    vm.type_text("secret").await;
    vm.keys(&["ret"]).await;
    vm.wait_serial(markers::ADMIN_PASSWORD_SET, Duration::from_secs(20))
        .await;
    let shadow = vm.sh("grep '^root:' /etc/shadow").await;
    assert!(
        shadow.starts_with("root:$6$"),
        "root has no SHA-512 password: {shadow}"
    );

    vm.start().await;
    let mac = vm.sh("cat /sys/class/net/eth0/address").await;
    assert_ne!(mac.trim(), CONFIGURED_MAC, "MAC not spoofed");
    assert!(mac.starts_with("52:54:00:"), "vendor part kept: {mac}");
    assert_eq!(output_rules(&vm).await, REFERENCE_OUTPUT_RULES);
    vm.sh("pidof tor").await;
    vm.guest
        .wait_for_success(
            "grep -q 'Including configuration file \"/etc/tor/torrc.d/50-lab.conf\"' /var/log/tor/notices.log",
            scaled(Duration::from_secs(30)),
        )
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert_eq!(
        vm.sh("cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6")
            .await
            .trim(),
        "1"
    );
    assert_eq!(
        vm.sh("cat /etc/resolv.conf").await.trim(),
        "nameserver 127.0.0.1"
    );

    // amnesia's direct TCP is rejected and counted.
    let lease = vm.sh("cat /run/tailor/lease.eth0").await;
    assert!(lease.contains("ip=10.0.2.15"), "{lease}");
    let _ = vm
        .guest
        .exec(
            "su -s /bin/sh amnesia -c 'nc -w 2 10.0.2.2 80 </dev/null'",
            scaled(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    let counter = vm.sh("nft list counter inet tailor rejected_output").await;
    assert!(
        !counter.contains("packets 0 "),
        "reject not counted: {counter}"
    );

    // No Tor network here (the lab brings one): stand in for tor's last
    // bootstrap line to check that the greeter follows tor's log.
    vm.sh("echo '[notice] Bootstrapped 100% (done): Done' >> /var/log/tor/notices.log")
        .await;
    vm.wait_serial(markers::TOR_READY, Duration::from_secs(20))
        .await;
    vm.sh("test -e /run/tailor/tor-ready").await;
    vm.assert_screen("greeter-tor-ready").await;
}

#[tokio::test]
async fn branding_changes_only_the_look() {
    let iso = iso(&["branding"]);
    let _slot = ONE_VM_AT_A_TIME.lock().await;
    let mut vm = TestVm::boot_to_greeter(&iso).await;
    vm.assert_screen("branding/greeter-welcome").await;
    assert!(vm
        .sh("cat /etc/tailor/branding")
        .await
        .contains("TITLE=Example Live"));
    assert_eq!(
        vm.sh("cat /etc/motd").await,
        "Welcome to Example Live, a Tailor derivative.\n"
    );
    // The extra package's executable runs (its libraries came along).
    assert!(vm.sh("tree --version").await.starts_with("tree v"));
    vm.start().await;
    assert_ne!(
        vm.sh("cat /sys/class/net/eth0/address").await.trim(),
        CONFIGURED_MAC
    );
    assert_eq!(output_rules(&vm).await, REFERENCE_OUTPUT_RULES);
    assert_eq!(
        vm.sh("cat /etc/resolv.conf").await.trim(),
        "nameserver 127.0.0.1"
    );
}
