//! The lab, for real: namespaces, bridge, tap, dnsmasq, a DHCP client on the
//! bridge, clean stop, and removal of a killed run's leftovers. Needs root
//! (`ip netns`); as another user every test prints why it is skipped.
//!
//! Nothing here sends a packet outside the namespaces these tests create:
//! isolation is proven by inspection, and the only traffic is DHCP and one
//! DNS query between a lab host and the lab's dnsmasq.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::net::lab::{self, Lab, LabConfig, BRIDGE_ADDR};

mod common;

/// The leftover test kills a lab's owner and expects its namespace to be
/// there until it cleans up; a lab starting concurrently would clean it
/// first. One lab test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("{test}: skipped: needs root to create network namespaces (ip netns)");
    false
}

fn sh(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn dnsmasq_processes_using(dir: &Path) -> Vec<String> {
    let out = sh("pgrep", &["-a", "dnsmasq"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&dir.display().to_string()))
        .map(str::to_owned)
        .collect()
}

/// A lab with its state (dnsmasq's log and leases) in `dir`.
async fn lab_keeping_state_in(dir: &Path) -> Lab {
    Lab::start(LabConfig {
        state_dir: Some(dir.to_owned()),
        ..Default::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn lab_is_isolated_serves_dhcp_and_dns_and_stops_cleanly() {
    if !root_or_skip("lab_is_isolated_serves_dhcp_and_dns_and_stops_cleanly") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let state = tempfile::tempdir().unwrap();
    let mut lab = lab_keeping_state_in(state.path()).await;
    let name = lab.name().to_owned();

    // Isolation, by inspection only.
    lab.verify_isolation().unwrap();
    let links = lab.exec(&["ip", "-o", "link", "show"]).unwrap();
    assert!(links.contains("br0") && links.contains("tap0"), "{links}");
    assert_eq!(links.lines().count(), 3, "only lo, br0, tap0: {links}");
    let routes = lab.exec(&["ip", "route", "show", "table", "all"]).unwrap();
    assert!(!routes.contains("default"), "{routes}");
    let err = lab.exec(&["ip", "route", "get", "1.1.1.1"]).unwrap_err();
    assert!(
        std::error::Error::source(&err)
            .map(|s| s.to_string())
            .unwrap_or_default()
            .contains("unreachable"),
        "{err:?}"
    );
    let tap = lab.exec(&["ip", "-d", "link", "show", "tap0"]).unwrap();
    assert!(
        tap.contains("master br0") && tap.contains("tun type tap"),
        "{tap}"
    );

    // A DHCP client on the bridge, in a namespace of its own.
    let host = lab.add_host(None).unwrap();
    lab.verify_isolation().unwrap();
    let script = state.path().join("udhcpc.script");
    std::fs::write(
        &script,
        "#!/bin/sh\n[ \"$1\" = bound ] && ip addr add \"$ip/24\" dev \"$interface\"\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script_s = script.display().to_string();
    let out = sh(
        "ip",
        &[
            "netns", "exec", &host.name, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t",
            "10", "-T", "1", "-s", &script_s,
        ],
    );
    assert!(
        out.status.success(),
        "udhcpc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lease = lab
        .wait_for_lease(Some(host.mac), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(u32::from(lease.ip) >= u32::from(lab::DHCP_FIRST));
    assert!(u32::from(lease.ip) <= u32::from(lab::DHCP_LAST));
    let addrs = sh(
        "ip",
        &["-n", &host.name, "-4", "-o", "addr", "show", "eth0"],
    );
    assert!(
        String::from_utf8_lossy(&addrs.stdout).contains(&lease.ip.to_string()),
        "the client applied its lease"
    );

    // A DNS query to the lab's resolver is answered with the "Internet"
    // address and shows in its log. (busybox also asks for AAAA, which
    // dnsmasq refuses without an upstream: its exit status says nothing.)
    let server = BRIDGE_ADDR.to_string();
    let out = sh(
        "ip",
        &[
            "netns",
            "exec",
            &host.name,
            "busybox",
            "nslookup",
            "leak.example",
            &server,
        ],
    );
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.contains(&format!("Address: {}", lab::INTERNET_ADDR)),
        "nslookup: {answer}"
    );
    let queries = lab.dns_queries();
    assert!(
        queries
            .iter()
            .any(|q| q.name == "leak.example" && q.from == lease.ip.to_string()),
        "{queries:?}"
    );

    // Clean stop: namespaces, dnsmasq gone.
    let host_ns = host.name.clone();
    lab.stop().unwrap();
    assert!(!Path::new("/run/netns").join(&name).exists());
    assert!(!Path::new("/run/netns").join(&host_ns).exists());
    let list = sh("ip", &["netns", "list"]);
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&name));
    assert_eq!(dnsmasq_processes_using(state.path()), Vec::<String>::new());
}

/// A child process that ends with the test, even when the test panics.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A line from a child's stdout, or a panic naming what was awaited.
fn line_from(out: &mut BufReader<std::process::ChildStdout>, what: &str) -> String {
    let mut line = String::new();
    out.read_line(&mut line)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(!line.is_empty(), "{what}: the child exited first");
    line.trim().to_owned()
}

/// Between two VMs the lab drops the connections its side holds with
/// guests (a killed VM never closes them), and keeps its own: the relays'
/// connections among themselves on the bridge address.
#[tokio::test]
async fn closing_guest_connections_spares_the_labs_own() {
    if !root_or_skip("closing_guest_connections_spares_the_labs_own") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let state = tempfile::tempdir().unwrap();
    let mut lab = lab_keeping_state_in(state.path()).await;
    let guest_addr = "10.203.0.60";
    let guest = lab.add_host(Some(guest_addr.parse().unwrap())).unwrap();
    let python = |netns: &str, script: &str| {
        Killed(
            Command::new("ip")
                .args(["netns", "exec", netns, "python3", "-u", "-c", script])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    };
    // A "relay": listening on the bridge address, with one connection to
    // itself, as relays connect to each other.
    let mut relay = python(
        lab.name(),
        &format!(
            "import socket\n\
             s = socket.socket(); s.bind(('{BRIDGE_ADDR}', 7001)); s.listen()\n\
             own = socket.create_connection(('{BRIDGE_ADDR}', 7001)); kept = [s.accept()]\n\
             print('listening')\n\
             while True: kept.append(s.accept()); print('accepted')\n"
        ),
    );
    let mut relay_out = BufReader::new(relay.0.stdout.take().unwrap());
    assert_eq!(line_from(&mut relay_out, "the relay"), "listening");
    let mut client = python(
        &guest.name,
        &format!(
            "import socket\n\
             c = socket.create_connection(('{BRIDGE_ADDR}', 7001)); print('connected')\n\
             c.settimeout(30)\n\
             try: print('closed' if c.recv(1) == b'' else 'data')\n\
             except ConnectionResetError: print('reset')\n\
             except TimeoutError: print('still open after 30 s')\n"
        ),
    );
    let mut client_out = BufReader::new(client.0.stdout.take().unwrap());
    assert_eq!(line_from(&mut client_out, "the guest"), "connected");
    assert_eq!(line_from(&mut relay_out, "the relay"), "accepted");
    let before = lab.exec(&["ss", "-tn"]).unwrap();
    assert!(before.contains(guest_addr), "{before}");

    lab.close_guest_connections().unwrap();

    // The relay's side was aborted, which resets the guest's.
    assert_eq!(line_from(&mut client_out, "the guest"), "reset");
    let after = lab.exec(&["ss", "-tn"]).unwrap();
    assert!(!after.contains(guest_addr), "{after}");
    let own = format!("{BRIDGE_ADDR}:7001");
    assert_eq!(
        after.lines().filter(|l| l.contains(&own)).count(),
        2,
        "both ends of the lab's own connection stay: {after}"
    );
    drop((relay, client));
    lab.stop().unwrap();
}

/// The censored lab: a guest's connections to the blocked ports go
/// unanswered and are counted, the lab's other ports (a bridge's) still
/// answer, and once the censor is dropped the blocked port answers again.
#[tokio::test]
async fn a_censor_blocks_only_its_ports_until_dropped() {
    if !root_or_skip("a_censor_blocks_only_its_ports_until_dropped") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let state = tempfile::tempdir().unwrap();
    let mut lab = lab_keeping_state_in(state.path()).await;
    let guest = lab.add_host(Some("10.203.0.61".parse().unwrap())).unwrap();
    // A "relay" on 5000 and a "bridge" on 6101, on the bridge address.
    let mut server = Killed(
        Command::new("ip")
            .args(["netns", "exec", lab.name(), "python3", "-u", "-c"])
            .arg(format!(
                "import socket, threading\n\
                 def serve(port):\n\
                 \x20   s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
                 \x20   s.bind(('{BRIDGE_ADDR}', port)); s.listen()\n\
                 \x20   while True: s.accept()[0].close()\n\
                 for p in (5000, 6101): threading.Thread(target=serve, args=(p,), daemon=True).start()\n\
                 print('listening')\n\
                 threading.Event().wait()\n"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut out = BufReader::new(server.0.stdout.take().unwrap());
    assert_eq!(line_from(&mut out, "the servers"), "listening");
    let connects = |port: u16| -> bool {
        let out = sh(
            "ip",
            &[
                "netns", "exec", &guest.name, "python3", "-c",
                &format!(
                    "import socket\n\
                     try: socket.create_connection(('{BRIDGE_ADDR}', {port}), timeout=3); print('open')\n\
                     except OSError as e: print('blocked', e)\n"
                ),
            ],
        );
        String::from_utf8_lossy(&out.stdout).starts_with("open")
    };
    assert!(
        connects(5000) && connects(6101),
        "the servers answer before"
    );
    let censor = lab.censor(BRIDGE_ADDR, &[5000, 5001]).unwrap();
    assert_eq!(censor.ports(), [5000, 5001]);
    assert!(!connects(5000), "5000 must be blocked");
    assert!(connects(6101), "the bridge's port must stay open");
    let blocked = censor.blocked_packets().unwrap();
    assert!(blocked >= 1, "the censor counted {blocked} packets");
    // The lab's own side is not censored (a bridge reaching a relay).
    let own = lab
        .exec(&[
            "python3", "-c",
            &format!("import socket; socket.create_connection(('{BRIDGE_ADDR}', 5000), timeout=3); print('open')"),
        ])
        .unwrap();
    assert_eq!(own.trim(), "open");
    drop(censor);
    assert!(connects(5000), "5000 must answer once the censor is gone");
    let tables = lab.exec(&["nft", "list", "tables"]).unwrap();
    assert!(!tables.contains("tailor_censor"), "{tables}");
    drop(server);
    lab.stop().unwrap();
}

#[tokio::test]
async fn lab_advertises_an_ipv6_prefix_when_asked_and_stays_isolated() {
    if !root_or_skip("lab_advertises_an_ipv6_prefix_when_asked_and_stays_isolated") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let mut lab = Lab::start(LabConfig {
        ipv6_router_advertisements: true,
        ..Default::default()
    })
    .await
    .unwrap();
    lab.verify_isolation().unwrap();
    let routes = lab
        .exec(&["ip", "-6", "route", "show", "table", "all"])
        .unwrap();
    assert!(!routes.contains("default"), "{routes}");

    // A host with IPv6 on autoconfigures from the advertisements alone.
    let host = lab.add_host(None).unwrap();
    let out = sh(
        "ip",
        &[
            "netns",
            "exec",
            &host.name,
            "sysctl",
            "-qw",
            "net.ipv6.conf.eth0.disable_ipv6=0",
            "net.ipv6.conf.eth0.accept_ra=2",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let host_name = host.name.clone();
    let addr = harness::wait::wait_until::<_, std::convert::Infallible, _, _>(
        "an autoconfigured fd00:203:: address on the lab host",
        harness::wait::scaled(Duration::from_secs(30)),
        Duration::from_millis(200),
        || {
            let out = sh(
                "ip",
                &["-n", &host_name, "-6", "-o", "addr", "show", "eth0"],
            );
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            async move {
                match text.split_whitespace().find(|w| w.starts_with("fd00:203:")) {
                    Some(a) => harness::wait::Check::Ready(a.to_owned()),
                    None => harness::wait::Check::NotYet(text),
                }
            }
        },
    )
    .await
    .unwrap();
    assert!(addr.ends_with("/64"), "{addr}");
    let host_routes = sh("ip", &["-n", &host_name, "-6", "route", "show"]);
    assert!(
        String::from_utf8_lossy(&host_routes.stdout).contains("default via fe80::"),
        "the lab presents itself as a default router: {host_routes:?}"
    );
    lab.verify_isolation().unwrap();
    lab.stop().unwrap();
}

/// Run by `leftovers_of_a_killed_run_are_removed` in a child process: holds
/// a lab until killed.
#[tokio::test]
#[ignore = "a helper run in a child process by leftovers_of_a_killed_run_are_removed"]
async fn child_holds_a_lab() {
    if std::env::var_os("TAILOR_LAB_CHILD").is_none() {
        return;
    }
    let mut lab = Lab::start(LabConfig::default()).await.unwrap();
    let host = lab.add_host(None).unwrap();
    println!("LAB {} {} {}", lab.name(), host.name, lab.dir().display());
    // Block until killed: the parent holds our stdin open.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn leftovers_of_a_killed_run_are_removed() {
    if !root_or_skip("leftovers_of_a_killed_run_are_removed") {
        return;
    }
    let _serial = SERIAL.blocking_lock();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_a_lab",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TAILOR_LAB_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest's "test child_holds_a_lab ... " precedes it on the line.
        .find_map(|l| l.split_once("LAB ").map(|(_, rest)| rest.to_owned()))
        .expect("the child reports its lab");
    let mut words = line.split_whitespace();
    let (name, host, dir) = (
        words.next().unwrap().to_owned(),
        words.next().unwrap().to_owned(),
        words.next().unwrap().to_owned(),
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    assert!(
        Path::new("/run/netns").join(&name).exists(),
        "the killed run left {name}"
    );
    assert!(
        Path::new("/run/netns").join(&host).exists(),
        "the killed run left {host}"
    );

    let removed = lab::cleanup_leftovers();
    assert!(removed.contains(&name), "{removed:?}");
    assert!(removed.contains(&host), "{removed:?}");
    assert!(!Path::new("/run/netns").join(&name).exists());
    assert!(!Path::new("/run/netns").join(&host).exists());
    assert_eq!(
        dnsmasq_processes_using(Path::new(&dir)),
        Vec::<String>::new()
    );
    // Its temporary state folder is left too, until the next lab starts.
    assert!(Path::new(&dir).is_dir(), "the killed run left {dir}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut next = rt.block_on(Lab::start(LabConfig::default())).unwrap();
    assert!(
        !Path::new(&dir).exists(),
        "the next lab did not remove the killed run's {dir}"
    );
    next.stop().unwrap();
}

#[test]
fn cleanup_spares_labs_of_live_processes() {
    if !root_or_skip("cleanup_spares_labs_of_live_processes") {
        return;
    }
    let _serial = SERIAL.blocking_lock();
    // A namespace named as if this (live) process made it.
    let name = format!("tailor-{}-9999", std::process::id());
    assert!(sh("ip", &["netns", "add", &name]).status.success());
    let removed = lab::cleanup_leftovers();
    let still_there = Path::new("/run/netns").join(&name).exists();
    sh("ip", &["netns", "del", &name]);
    assert!(!removed.contains(&name));
    assert!(still_there);
}

/// Run as an unprivileged user by `rootless_lab_works_or_says_why`.
#[tokio::test]
#[ignore = "a helper run as an unprivileged user by rootless_lab_works_or_says_why"]
async fn rootless_child() {
    if std::env::var_os("TAILOR_LAB_ROOTLESS_CHILD").is_none() {
        return;
    }
    match Lab::start(LabConfig::default()).await {
        Ok(mut lab) => {
            lab.verify_isolation().unwrap();
            let tap = lab.exec(&["ip", "-d", "link", "show", "tap0"]).unwrap();
            assert!(tap.contains("master br0"), "{tap}");
            // The Tor network's safety check enters the lab the same way.
            harness::tor::check_no_route_out(&lab.namespace()).unwrap();
            for args in [
                &[
                    "ip", "link", "add", "out0", "type", "veth", "peer", "name", "out1",
                ][..],
                &["ip", "addr", "add", "192.0.2.2/24", "dev", "out0"],
                &["ip", "link", "set", "out0", "up"],
                &["ip", "link", "set", "out1", "up"],
                &["ip", "route", "add", "default", "via", "192.0.2.1"],
            ] {
                lab.exec(args).unwrap();
            }
            let err = harness::tor::check_no_route_out(&lab.namespace())
                .expect_err("a rootless lab with a default route must be refused");
            assert!(matches!(err, harness::tor::Error::RouteOut { .. }), "{err}");
            lab.stop().unwrap();
            println!("ROOTLESS OK");
        }
        Err(e @ lab::LabError::TunPermission { .. }) => println!("ROOTLESS TUN-DENIED {e}"),
        Err(e) => panic!("rootless lab failed: {e:?}"),
    }
}

#[test]
fn rootless_lab_works_or_says_why() {
    if !root_or_skip("rootless_lab_works_or_says_why (re-runs itself as nobody)") {
        return;
    }
    let _serial = SERIAL.blocking_lock();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&exe)
        .args(["--exact", "rootless_child", "--ignored", "--nocapture"])
        .env("TAILOR_LAB_ROOTLESS_CHILD", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("failed to execute") {
        eprintln!(
            "rootless_lab_works_or_says_why: skipped: nobody cannot run {}",
            exe.display()
        );
        return;
    }
    assert!(out.status.success(), "{text}\n{stderr}");
    if text.contains("ROOTLESS TUN-DENIED") {
        assert!(text.contains("/dev/net/tun is mode"), "{text}");
    } else {
        assert!(text.contains("ROOTLESS OK"), "{text}");
    }
}

/// As nobody with /dev/net/tun granted for the test (this machine ships it
/// 0600): the rootless lab works, proves its isolation, and the Tor
/// network's route check works inside it, refusing it once it has a route.
#[test]
fn rootless_lab_with_tun_access_works() {
    if !root_or_skip("rootless_lab_with_tun_access_works (re-runs itself as nobody)") {
        return;
    }
    let _serial = SERIAL.blocking_lock();
    let home = common::Home::new();
    let _tun = common::TunGrant::to_group(common::NOBODY);
    let out = home
        .command(&std::env::current_exe().unwrap())
        .args(["--exact", "rootless_child", "--ignored", "--nocapture"])
        .env("TAILOR_LAB_ROOTLESS_CHILD", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("ROOTLESS OK"),
        "{text}\n{stderr}"
    );
}

// The lab's VPN (harness::vpn): a WireGuard server on the LAN and an
// Internet behind it. A LAN host stands in for the guest, with the same
// wg-quick file the guest is handed, run by wireguard-go (the host kernel
// has no WireGuard).

/// Whether `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z"))
        .unwrap_or(true)
}

fn assert_gone_soon(pids: &[u32], what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !pids.iter().all(|&p| gone(p)) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: still running: {:?}",
            pids.iter().filter(|&&p| !gone(p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `curl URL` from namespace `ns`: the body, or why not. A packet that
/// goes nowhere is dropped silently, so a failure takes the whole timeout.
fn fetch_from(ns: &str, url: &str) -> Result<String, String> {
    let out = sh(
        "ip",
        &[
            "netns",
            "exec",
            ns,
            "curl",
            "--silent",
            "--show-error",
            "--max-time",
            "2",
            url,
        ],
    );
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A WireGuard client on lab host `host` with the guest's configuration:
/// all of the Internet's network into the tunnel.
async fn vpn_client(
    host: &lab::LabHost,
    vpn: &harness::vpn::VpnLab,
    dir: &Path,
) -> harness::vpn::wireguard::Daemon {
    use harness::vpn::wireguard::Daemon;
    let client = Daemon::start(&host.netns, "wg0", &dir.join("client.log"))
        .await
        .unwrap();
    client
        .set_config(&harness::vpn::setconf_form(&vpn.client_config()), dir)
        .unwrap();
    let guest = format!("{}/32", harness::vpn::TUNNEL_GUEST);
    for args in [
        vec!["addr", "add", guest.as_str(), "dev", "wg0"],
        vec!["link", "set", "wg0", "up"],
        vec!["route", "replace", "198.51.100.0/24", "dev", "wg0"],
    ] {
        let mut full = vec!["-n", host.name.as_str()];
        full.extend(args);
        assert!(sh("ip", &full).status.success(), "ip {full:?}");
    }
    client
}

#[tokio::test]
async fn vpn_carries_a_lan_client_to_the_internet_and_nothing_else_reaches_it() {
    if !root_or_skip("vpn_carries_a_lan_client_to_the_internet_and_nothing_else_reaches_it") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let state = tempfile::tempdir().unwrap();
    let mut lab = lab_keeping_state_in(&state.path().join("lab")).await;
    let started = std::time::Instant::now();
    let mut vpn = harness::vpn::VpnLab::start(&mut lab, &state.path().join("vpn"))
        .await
        .unwrap();
    eprintln!(
        "VPN up (probe handshake and page) in {:?}",
        started.elapsed()
    );
    vpn.verify_isolation().unwrap();
    lab.verify_isolation().unwrap();
    let web = format!("http://{}/", harness::vpn::WEB_ADDR);

    // A LAN host: its default route (the lab, the LAN's router) leads
    // nowhere, and the VPN server does not forward what the LAN sends it.
    let host = lab.add_host(Some("10.203.0.60".parse().unwrap())).unwrap();
    assert!(sh(
        "ip",
        &[
            "-n",
            &host.name,
            "route",
            "add",
            "default",
            "via",
            "10.203.0.1"
        ]
    )
    .status
    .success());
    assert!(
        fetch_from(&host.name, &web).is_err(),
        "reached the Internet through the LAN's router"
    );
    assert!(sh(
        "ip",
        &[
            "-n",
            &host.name,
            "route",
            "add",
            "198.51.100.0/24",
            "via",
            "10.203.0.3"
        ]
    )
    .status
    .success());
    assert!(
        fetch_from(&host.name, &web).is_err(),
        "the VPN server forwarded LAN traffic"
    );

    // Through the tunnel: the page, a name, and only the VPN's address seen.
    let mut client = vpn_client(&host, &vpn, state.path()).await;
    let page = fetch_from(&host.name, &web).unwrap();
    assert_eq!(page, vpn.web().page());
    let handshake = vpn
        .guest_handshake()
        .unwrap()
        .expect("a handshake with the guest's key");
    assert_eq!(handshake.from.ip().to_string(), "10.203.0.60");
    let answer = sh(
        "ip",
        &[
            "netns",
            "exec",
            &host.name,
            "busybox",
            "nslookup",
            "www.example.com",
            "198.51.100.53",
        ],
    );
    assert!(
        String::from_utf8_lossy(&answer.stdout).contains("Address: 198.51.100.80"),
        "{answer:?}"
    );
    let requests = vpn.web().requests().unwrap();
    assert!(
        requests.len() >= 2,
        "the probe's and the client's: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .all(|r| *r.source.ip() == harness::vpn::EXIT_ADDR),
        "{requests:?}"
    );
    assert!(vpn
        .resolver_queries()
        .iter()
        .any(|q| q.name == "www.example.com" && q.from == "198.51.100.1"));

    // The server goes away and comes back, proven by its probe again.
    vpn.stop_server();
    assert!(!vpn.server_running());
    assert!(
        fetch_from(&host.name, &web).is_err(),
        "a page without the VPN server"
    );
    vpn.start_server().await.unwrap();
    client.stop();
    let _client = vpn_client(&host, &vpn, state.path()).await;
    assert_eq!(fetch_from(&host.name, &web).unwrap(), vpn.web().page());

    // Clean stop: the daemons and every namespace are gone, and nothing of
    // wireguard-go's is on the host's /run.
    let pids = vpn.daemon_pids();
    let names: Vec<String> = sh("ip", &["netns", "list"])
        .stdout
        .split(|b| *b == b'\n')
        .map(|l| {
            String::from_utf8_lossy(l)
                .split(' ')
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .filter(|n| n.starts_with(lab.name()))
        .collect();
    assert!(
        names.len() >= 5,
        "the lab, its server, Internet, probe and host: {names:?}"
    );
    drop(_client);
    vpn.stop();
    lab.stop().unwrap();
    assert_gone_soon(&pids, "the VPN's daemons after stop");
    for name in &names {
        assert!(!Path::new("/run/netns").join(name).exists(), "{name} left");
    }
    assert!(
        !Path::new("/run/wireguard/wg0.sock").exists(),
        "a control socket on the host"
    );
}

#[tokio::test]
async fn two_labs_with_their_vpns_at_once_do_not_collide() {
    if !root_or_skip("two_labs_with_their_vpns_at_once_do_not_collide") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let state = tempfile::tempdir().unwrap();
    let dirs: Vec<std::path::PathBuf> = ["a", "b", "vpn-a", "vpn-b"]
        .iter()
        .map(|d| state.path().join(d))
        .collect();
    let (mut a, mut b) = tokio::join!(
        lab_keeping_state_in(&dirs[0]),
        lab_keeping_state_in(&dirs[1]),
    );
    assert_ne!(a.name(), b.name());
    // Same interface names, ports and addresses in both: each started and
    // proved itself with its own probe.
    let (va, vb) = tokio::join!(
        harness::vpn::VpnLab::start(&mut a, &dirs[2]),
        harness::vpn::VpnLab::start(&mut b, &dirs[3]),
    );
    let (mut va, mut vb) = (va.unwrap(), vb.unwrap());
    assert_ne!(va.client_config(), vb.client_config(), "keys are per lab");
    let pids: Vec<u32> = va
        .daemon_pids()
        .into_iter()
        .chain(vb.daemon_pids())
        .collect();
    va.stop();
    vb.stop();
    a.stop().unwrap();
    b.stop().unwrap();
    assert_gone_soon(&pids, "both VPNs' daemons");
}

/// Run by `vpn_leftovers_of_a_killed_run_are_removed` in a child process:
/// holds a lab with its VPN until killed.
#[tokio::test]
#[ignore = "a helper run in a child process by vpn_leftovers_of_a_killed_run_are_removed"]
async fn child_holds_a_lab_with_its_vpn() {
    if std::env::var_os("TAILOR_LAB_VPN_CHILD").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut lab = Lab::start(LabConfig::default()).await.unwrap();
    let vpn = harness::vpn::VpnLab::start(&mut lab, dir.path())
        .await
        .unwrap();
    let pids: Vec<String> = vpn.daemon_pids().iter().map(u32::to_string).collect();
    println!("VPNLAB {} {}", lab.name(), pids.join(","));
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn vpn_leftovers_of_a_killed_run_are_removed() {
    if !root_or_skip("vpn_leftovers_of_a_killed_run_are_removed") {
        return;
    }
    let _serial = SERIAL.blocking_lock();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_a_lab_with_its_vpn",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TAILOR_LAB_VPN_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split_once("VPNLAB ").map(|(_, rest)| rest.to_owned()))
        .expect("the child reports its lab");
    let (name, pids) = line.split_once(' ').unwrap();
    let pids: Vec<u32> = pids.split(',').map(|p| p.parse().unwrap()).collect();
    assert_eq!(pids.len(), 3, "server, web server, resolver");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    // Its daemons die with it (PDEATHSIG); its namespaces wait for the
    // next lab, which removes them.
    assert_gone_soon(&pids, "the killed run's VPN daemons");
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n == name || n.starts_with(&format!("{name}-h")))
        .collect();
    assert_eq!(
        left.len(),
        4,
        "the lab and the VPN's three namespaces: {left:?}"
    );
    let removed = lab::cleanup_leftovers();
    for n in &left {
        assert!(removed.contains(n), "{n} not removed: {removed:?}");
        assert!(!Path::new("/run/netns").join(n).exists());
    }
    assert!(
        !Path::new("/run/wireguard").exists(),
        "wireguard-go used the host's /run"
    );
}
