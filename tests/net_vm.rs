//! A real guest on the lab, captured by QEMU's filter-dump: the capture
//! shows the guest's DHCP exchange from its NIC's MAC, and the verdicts
//! judge it. The "guest" is QEMU's own network boot firmware (iPXE, from
//! Debian's ipxe-qemu, a dependency of qemu-system-x86): booting with
//! `-boot order=n` it runs DHCP on the NIC at once, without a guest OS to
//! build. It does not spoof its MAC, so the MAC check must say so.
//!
//! Needs QEMU: `cargo test --features vm --test net_vm`. Run as root, it
//! also re-runs the same flow as an unprivileged user (nobody), where the
//! lab is a user+network namespace and QEMU enters it through nsenter.
#![cfg(feature = "vm")]

use std::time::Duration;

use harness::net::analysis::{analyse_path, MacAddr};
use harness::net::capture::Capture;
use harness::net::lab::{Lab, LabConfig, BRIDGE_ADDR, BRIDGE_MAC};
use harness::net::policy::{Class, Offence, Policy};
use harness::vm::{Vm, VmConfig, VmOptions, NETDEV_ID};

mod common;

#[tokio::test]
async fn capture_shows_the_guests_dhcp_from_its_mac() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("capture_shows_the_guests_dhcp_from_its_mac: skipped: needs root for the lab");
        return;
    }
    dhcp_capture_flow().await;
}

/// Run as nobody by `rootless_vm_on_a_rootless_lab`.
#[tokio::test]
#[ignore = "a helper run as an unprivileged user by rootless_vm_on_a_rootless_lab"]
async fn rootless_child() {
    if std::env::var_os("TAILOR_NET_VM_ROOTLESS_CHILD").is_none() {
        return;
    }
    assert!(!nix::unistd::geteuid().is_root());
    dhcp_capture_flow().await;
    println!("ROOTLESS VM OK");
}

#[test]
fn rootless_vm_on_a_rootless_lab() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "rootless_vm_on_a_rootless_lab: skipped: run as root, it re-runs itself as nobody"
        );
        return;
    }
    // nobody's home does not exist: it gets one of its own; and a tap
    // needs /dev/net/tun, 0600 on this machine.
    let home = common::Home::new();
    let _tun = common::TunGrant::to_group(common::NOBODY);
    let out = home
        .command(&std::env::current_exe().unwrap())
        .args(["--exact", "rootless_child", "--ignored", "--nocapture"])
        .env("TAILOR_NET_VM_ROOTLESS_CHILD", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("ROOTLESS VM OK"),
        "the same flow as nobody failed:\n{text}\n{stderr}"
    );
}

/// Boot the firmware on a fresh lab, capture its DHCP, judge the capture.
async fn dhcp_capture_flow() {
    let dir = tempfile::tempdir().unwrap();
    let lab = Lab::start(LabConfig {
        state_dir: Some(dir.path().join("lab")),
        ..Default::default()
    })
    .await
    .unwrap();
    // A blank disk: the firmware finds nothing to boot on it and the boot
    // order puts the network first anyway.
    let blank = dir.path().join("blank.img");
    std::fs::write(&blank, vec![0u8; 1 << 20]).unwrap();
    let config_text = format!(
        "name = \"pxe\"\nmemory_mib = 128\ncpus = 1\n[boot]\ndisk = \"{}\"\n\
         [nic]\nmodel = \"virtio-net-pci\"\nnetwork = \"lab\"\n",
        blank.display()
    );
    let config = VmConfig::parse(&config_text, &dir.path().join("pxe.toml"), dir.path()).unwrap();
    let nic_mac: MacAddr = config.mac_string().parse().unwrap();
    let mut vm = Vm::start(
        &config,
        VmOptions {
            lab: Some(lab.attachment()),
            // Paused until the capture runs, so it holds the first frame.
            extra_args: vec!["-boot".into(), "order=n".into(), "-S".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let pcap = dir.path().join("scenario.pcap");
    let capture = Capture::start(vm.qmp(), NETDEV_ID, &pcap).await.unwrap();
    vm.execute(qapi::qmp::cont {}).await.unwrap();

    let lease = lab
        .wait_for_lease(Some(nic_mac), Duration::from_secs(120))
        .await
        .unwrap();
    let path = capture.stop(vm.qmp()).await.unwrap();
    vm.shutdown().await.unwrap();

    let analysis = analyse_path(&path).unwrap();
    println!("{analysis}");
    let mut policy = Policy::new([], Some(BRIDGE_ADDR.into()));
    policy.lab_macs.insert(BRIDGE_MAC);
    let dhcp_from_guest = analysis.flows.iter().any(|f| {
        policy.classify(&f.key) == Class::Dhcp && f.key.src_port == Some(68) && f.packets > 0
    });
    assert!(
        dhcp_from_guest,
        "no DHCP from the guest in {}:\n{analysis}",
        path.display()
    );
    let guest = analysis
        .macs
        .iter()
        .find(|m| m.mac == nic_mac)
        .unwrap_or_else(|| panic!("no frame from {nic_mac} in {analysis}"));
    assert!(guest.frames >= 2, "DISCOVER and REQUEST at least");
    println!("lease {} for {}", lease.ip, lease.mac);

    let only_tor = policy.only_tor(&analysis);
    println!("{only_tor}");
    assert!(only_tor.passed(), "{only_tor}");
    let mac = policy.mac_spoofed(&analysis, nic_mac);
    println!("{mac}");
    assert!(
        mac.offences
            .iter()
            .any(|o| matches!(o, Offence::UnspoofedMac { seen, .. } if seen.mac == nic_mac)),
        "the firmware uses the configured MAC: {mac}"
    );
}
