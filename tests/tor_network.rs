//! The lab Tor network with real daemons: bring-up, a fetch through an exit,
//! teardown, and no tor left behind even when the harness is SIGKILLed (and
//! its run folder removed by the next run).
//!
//! Needs root (for `ip netns`), `tor`, `busybox` and `curl`. Each test makes
//! a throwaway namespace `tailor-tortest-<pid>-<tag>` (a bridge with lab
//! addresses, no route out) and deletes it at the end, also on failure.
//! Run directories are kept under /tmp when a test fails; the failure names
//! them.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use harness::tor::{BridgeLine, Bridges, BridgesSpec, Client, Network, NetworkSpec, WebServer};

const RELAYS: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 1);
const WEB: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 2);
/// A third lab address, to make a direct request the log can tell apart.
const DIRECT: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 3);
const CHILD_NETNS: &str = "TAILOR_TORTEST_CHILD_NETNS";

/// Two networks at once on this 2-core machine only slow both down.
static ONE_NETWORK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: needs root to create network namespaces with `ip netns`");
    false
}

/// The error and its sources, one per line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!("\n  caused by: {s}"));
        source = s.source();
    }
    text
}

fn ok<T, E: std::error::Error>(result: Result<T, E>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {}", chain(&e)))
}

fn run(program: &str, args: &[&str]) {
    ok(harness::process::run_output(program, args), program);
}

/// A throwaway lab namespace: br0 with the lab addresses, loopback up, no
/// route out. Deleted on drop.
struct TestNetns {
    name: String,
}

impl TestNetns {
    fn create(tag: &str) -> TestNetns {
        let name = format!("tailor-tortest-{}-{tag}", std::process::id());
        run("ip", &["netns", "add", &name]);
        // From here on, Drop deletes the namespace even if a step fails.
        let ns = TestNetns { name };
        let n = ns.name.as_str();
        run("ip", &["-n", n, "link", "set", "lo", "up"]);
        run("ip", &["-n", n, "link", "add", "br0", "type", "bridge"]);
        for addr in [RELAYS, WEB, DIRECT] {
            run(
                "ip",
                &["-n", n, "addr", "add", &format!("{addr}/24"), "dev", "br0"],
            );
        }
        run("ip", &["-n", n, "link", "set", "br0", "up"]);
        ns
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// Run a command inside the namespace to completion.
    fn exec(&self, args: &[&str]) -> std::process::Output {
        ok(
            Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args(args)
                .stdin(Stdio::null())
                .output(),
            "ip netns exec",
        )
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        if let Err(e) = harness::process::run_output("ip", &["netns", "del", &self.name]) {
            eprintln!("could not delete namespace {}: {e}", self.name);
        }
    }
}

/// A run directory kept on failure: removed only by `remove_on_success`.
fn run_dir(tag: &str) -> PathBuf {
    ok(
        tempfile::Builder::new()
            .prefix(&format!("tailor-tortest-{tag}-"))
            .tempdir(),
        "run dir",
    )
    .keep()
}

fn remove_on_success(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// Live (non-zombie) processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains(needle) && !is_zombie(pid)).then_some((pid, cmdline))
        })
        .collect()
}

/// Live processes whose environment mentions `needle`: the transports tor
/// starts (`obfs4proxy`, whose command line names no run directory, gets
/// its state directory in `TOR_PT_STATE_LOCATION`).
fn processes_with_environment_mentioning(needle: &str) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id())
        .filter_map(|pid| {
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (String::from_utf8_lossy(&environ).contains(needle) && !is_zombie(pid))
                .then_some((pid, cmdline))
        })
        .collect()
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

fn curl(ns: &TestNetns, args: &[&str]) -> String {
    let mut all = vec!["curl", "--silent", "--show-error", "--max-time", "60"];
    all.extend_from_slice(args);
    let out = ns.exec(&all);
    assert!(
        out.status.success(),
        "{} failed ({}): {}",
        all.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_through_the_lab_network_arrives_from_an_exit() {
    if !is_root() {
        return;
    }
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    // TAILOR_LOG=harness=info shows the bring-up phases.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TAILOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    let ns = TestNetns::create("fetch");
    let dir = run_dir("fetch");
    eprintln!("run directory (kept on failure): {}", dir.display());

    let mut network = ok(
        Network::start(NetworkSpec::new(ns.path(), RELAYS, dir.join("tor"))).await,
        "starting the lab Tor network",
    );
    eprintln!("network ready in {:.1?}", network.bring_up_time());

    // The consensus lists exactly the daemons started, where they listen.
    let mut listed: Vec<(String, SocketAddrV4)> = network
        .relays()
        .iter()
        .map(|r| (r.nickname.clone(), SocketAddrV4::new(r.address, r.or_port)))
        .collect();
    listed.sort();
    let names = [
        "auth0", "auth1", "auth2", "exit0", "exit1", "relay0", "relay1",
    ];
    let ports = [5000, 5001, 5002, 5005, 5006, 5003, 5004];
    let started: Vec<(String, SocketAddrV4)> = names
        .iter()
        .zip(ports)
        .map(|(n, p)| (n.to_string(), SocketAddrV4::new(RELAYS, p)))
        .collect();
    assert_eq!(listed, started);
    let mut allow = network.or_endpoints();
    allow.sort();
    assert_eq!(
        allow,
        (5000..5007)
            .map(|p| SocketAddrV4::new(RELAYS, p))
            .collect::<Vec<_>>()
    );
    let mut dirs = network.dir_endpoints();
    dirs.sort();
    assert_eq!(
        dirs,
        (7000..7003)
            .map(|p| SocketAddrV4::new(RELAYS, p))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        network
            .client_lines()
            .iter()
            .filter(|l| l.starts_with("DirAuthority "))
            .count(),
        3
    );

    let web = ok(
        WebServer::start(ns.path(), SocketAddrV4::new(WEB, 80), &dir.join("web")).await,
        "starting the lab web server",
    );
    let socks = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9050);
    let mut client = ok(
        Client::start(
            ns.path(),
            &dir.join("client"),
            socks,
            &network.client_lines(),
        ),
        "starting a lab client",
    );
    let took = ok(
        client.wait_bootstrapped(Duration::from_secs(60)).await,
        "client bootstrap",
    );
    eprintln!("client bootstrapped {took:.1?} after the network was ready");

    let body = curl(&ns, &["--socks5-hostname", &socks.to_string(), &web.url()]);
    assert_eq!(body, web.page());
    // A direct request from another lab address, to show the log tells the
    // two apart.
    let direct = curl(&ns, &["--interface", &DIRECT.to_string(), &web.url()]);
    assert_eq!(direct, web.page());

    let requests = ok(web.requests(), "reading the web server's log");
    let sources: Vec<(Ipv4Addr, Option<u16>)> = requests
        .iter()
        .map(|r| (*r.source.ip(), r.status))
        .collect();
    assert_eq!(
        sources,
        vec![(network.address(), Some(200)), (DIRECT, Some(200))],
        "the request through Tor must come from the relays' address, the direct one from {DIRECT}"
    );

    client.stop();

    check_bridges(&ns, &network, &web, &dir).await;

    drop(web);
    let stopping = std::time::Instant::now();
    ok(network.stop(), "stopping the network");
    eprintln!("network stopped in {:.1?}", stopping.elapsed());
    let needle = dir.display().to_string();
    assert_eq!(
        processes_mentioning(&needle),
        vec![],
        "processes of this run remain"
    );
    assert_eq!(
        processes_with_environment_mentioning(&needle),
        vec![],
        "transports of this run remain"
    );
    let ns_path = ns.path();
    drop(ns);
    assert!(!ns_path.exists(), "{} still exists", ns_path.display());
    remove_on_success(&dir);
}

/// Bridges next to a running network: out of the consensus, each carrying
/// a client (vanilla and obfs4) to the web server, with the same lines
/// when started again from the cache; a client given a wrong obfs4
/// certificate never bootstraps, and says so as a timeout that names
/// where it is stuck.
async fn check_bridges(ns: &TestNetns, network: &Network, web: &WebServer, dir: &Path) {
    let spec = BridgesSpec::new(ns.path(), dir.join("bridges"));
    let mut bridges = ok(
        Bridges::start(network, spec).await,
        "starting the lab bridges",
    );
    eprintln!("bridges ready in {:.1?}", bridges.bring_up_time());
    let lines = bridges.lines();
    assert_eq!(
        lines.iter().map(|l| l.transport_name()).collect::<Vec<_>>(),
        ["vanilla", "obfs4", "obfs4"]
    );
    assert_eq!(lines[0].addr, "10.203.0.1:6000".parse().unwrap());
    assert_eq!(lines[1].addr, "10.203.0.1:6101".parse().unwrap());
    assert!(
        lines[1].arg("cert").is_some_and(|c| c.len() > 60),
        "{}",
        lines[1]
    );
    for b in bridges.all() {
        assert!(
            network.consensus().unwrap().relay(&b.fingerprint).is_none(),
            "bridge {} is in the consensus",
            b.spec.nickname
        );
    }

    let client_with = |name: &str, port: u16, bridge: &BridgeLine| {
        let mut lines = network.client_lines();
        lines.extend(harness::tor::bridge_line::client_lines([bridge], |t| {
            (t == "obfs4").then(|| harness::tor::bridges::OBFS4PROXY.to_owned())
        }));
        ok(
            Client::start(
                ns.path(),
                &dir.join(name),
                SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
                &lines,
            ),
            "starting a bridge client",
        )
    };
    let wrong = lines[2]
        .clone()
        .with_arg("cert", lines[1].arg("cert").unwrap());
    let mut vanilla = client_with("client-vanilla", 9060, &lines[0]);
    let mut obfs4 = client_with("client-obfs4", 9061, &lines[1]);
    let mut blocked = client_with("client-wrong-cert", 9062, &wrong);
    let (v, o, b) = tokio::join!(
        vanilla.wait_bootstrapped(Duration::from_secs(60)),
        obfs4.wait_bootstrapped(Duration::from_secs(60)),
        blocked.wait_bootstrapped(Duration::from_secs(12)),
    );
    eprintln!(
        "through the vanilla bridge: {:.1?}; through obfs4: {:.1?}",
        ok(v, "bootstrap through the vanilla bridge"),
        ok(o, "bootstrap through the obfs4 bridge")
    );
    let err = b.expect_err("a wrong obfs4 certificate must not bootstrap");
    let text = chain(&err);
    assert!(
        matches!(err, harness::tor::Error::ClientNotBootstrapped { .. })
            && text.contains("timed out")
            && text.contains("Bootstrapped "),
        "expected a timeout naming the last bootstrap step, got:\n{text}"
    );
    eprintln!("wrong certificate: {text}");
    for (client, port) in [(&vanilla, 9060), (&obfs4, 9061)] {
        let socks = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).to_string();
        let body = curl(ns, &["--socks5-hostname", &socks, &web.url()]);
        assert_eq!(body, web.page(), "through {}", client.log_path().display());
    }
    // The transports' server and client sides are obfs4proxy processes.
    let needle = dir.display().to_string();
    assert!(
        processes_with_environment_mentioning(&needle).len() >= 3,
        "expected obfs4proxy for two bridges and a client: {:?}",
        processes_with_environment_mentioning(&needle)
    );
    for mut c in [vanilla, obfs4, blocked] {
        c.stop();
    }
    ok(bridges.stop(), "stopping the bridges");

    // From the cache, the same lines.
    let again = ok(
        Bridges::start(
            network,
            BridgesSpec::new(ns.path(), dir.join("bridges-again")),
        )
        .await,
        "starting the bridges again",
    );
    assert_eq!(again.lines(), lines, "the bridge lines changed across runs");
}

/// What `Network::start` writes is a config tor accepts, for every role
/// (tor checks more than the unit tests can: option names, log domains,
/// voting timings).
#[test]
fn every_role_torrc_passes_tor_verify_config() {
    use harness::tor::{client_lines, daemon_torrc, DirAuthority, Node, Role};
    let dir = run_dir("verify");
    let auths: Vec<DirAuthority> = (0..3)
        .map(|i| DirAuthority {
            nickname: format!("auth{i}"),
            address: RELAYS,
            or_port: 5000 + i,
            dir_port: 7000 + i,
            v3ident: format!("{:040X}", i + 1),
            fingerprint: format!("{:040X}", i + 100),
        })
        .collect();
    let mut torrcs: Vec<(String, String)> = [Role::Authority, Role::Relay, Role::Exit]
        .into_iter()
        .map(|role| {
            let node = Node {
                nickname: format!("{}0", role.prefix()),
                role,
                address: RELAYS,
                or_port: 5010,
                dir_port: (role == Role::Authority).then_some(7010),
            };
            let data = dir.join(&node.nickname);
            (node.nickname.clone(), daemon_torrc(&node, &data, &auths))
        })
        .collect();
    let mut client = client_lines(&auths).join("\n");
    client.push_str(&format!(
        "\nDataDirectory {}\nSocksPort 9050\n",
        dir.join("client").display()
    ));
    torrcs.push(("client".into(), client));
    for (name, text) in torrcs {
        let path = dir.join(format!("{name}.torrc"));
        ok(std::fs::write(&path, &text), "write torrc");
        let out = ok(
            Command::new("tor")
                .args(["--verify-config", "--defaults-torrc", "/nonexistent", "-f"])
                .arg(&path)
                .output(),
            "run tor --verify-config",
        );
        assert!(
            out.status.success(),
            "tor rejects the {name} torrc (kept in {}):\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    remove_on_success(&dir);
}

/// Re-runs this test binary as a child that starts a network with its
/// bridges and blocks, SIGKILLs it, and checks that every tor and every
/// obfs4proxy it started dies with it, and that the next run removes the
/// killed one's run folder.
#[test]
fn a_sigkilled_harness_leaves_no_tor_behind() {
    if std::env::var_os(CHILD_NETNS).is_some() || !is_root() {
        return;
    }
    let _one = ONE_NETWORK_AT_A_TIME.blocking_lock();
    let ns = TestNetns::create("sigkill");
    let exe = ok(std::env::current_exe(), "current_exe");
    let mut child = ok(
        Command::new(exe)
            .args([
                "--exact",
                "child_holds_a_network_until_killed",
                "--nocapture",
            ])
            .env(CHILD_NETNS, ns.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn(),
        "re-running the test binary",
    );
    // The child prints READY and its run folder once its network is up;
    // EOF means it died.
    let stdout = child.stdout.take().expect("piped stdout");
    let mut seen = String::new();
    let dir = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            seen.push_str(&line);
            seen.push('\n');
            line.strip_prefix("READY ").map(PathBuf::from)
        })
        .unwrap_or_else(|| panic!("the child never reported its network up; it printed:\n{seen}"));
    eprintln!("the child's run folder: {}", dir.display());
    let needle = dir.display().to_string();
    let tors = processes_mentioning(&needle);
    assert_eq!(
        tors.len(),
        10,
        "expected 7 tor daemons and 3 bridges of this run: {tors:?}"
    );
    let transports = processes_with_environment_mentioning(&needle);
    assert!(
        transports
            .iter()
            .filter(|(_, cmd)| cmd.contains("obfs4proxy"))
            .count()
            == 2,
        "expected the two obfs4 bridges' obfs4proxy: {transports:?}"
    );

    ok(child.kill(), "SIGKILL the child");
    ok(child.wait(), "reap the child");

    // PDEATHSIG delivers SIGKILL to each daemon; init reaps them.
    let rt = ok(tokio::runtime::Runtime::new(), "runtime");
    let gone = rt.block_on(harness::wait::wait_until::<(), std::io::Error, _, _>(
        "every tor of the killed child to die",
        harness::wait::scaled(Duration::from_secs(10)),
        Duration::from_millis(50),
        || {
            let mut left = processes_mentioning(&needle);
            left.extend(processes_with_environment_mentioning(&needle));
            async move {
                if left.is_empty() {
                    harness::wait::Check::Ready(())
                } else {
                    harness::wait::Check::NotYet(format!("{left:?}"))
                }
            }
        },
    ));
    ok(gone, "tor processes outlived the SIGKILLed harness");
    drop(ns);
    // The killed run could not remove its folder; the next run does.
    assert!(dir.is_dir(), "{} vanished early", dir.display());
    let next = ok(harness::tor::run_dir(), "the next run's folder");
    assert!(
        !dir.exists(),
        "the next run left the killed run's {}",
        dir.display()
    );
    drop(next);
}

/// Only does something when re-run by `a_sigkilled_harness_leaves_no_tor_behind`.
#[tokio::test]
async fn child_holds_a_network_until_killed() {
    let Some(netns) = std::env::var_os(CHILD_NETNS).map(PathBuf::from) else {
        return;
    };
    // The folder a run of the features uses, which the kill leaves behind.
    let run = ok(harness::tor::run_dir(), "child: run folder");
    // Fresh keys here, so the suite exercises making them as well as the
    // cache the other test uses.
    let mut spec = NetworkSpec::new(&netns, RELAYS, run.path().join("tor"));
    spec.key_cache = None;
    let network = ok(
        Network::start(spec).await,
        "child: starting the lab Tor network",
    );
    let mut bridges = BridgesSpec::new(&netns, run.path().join("bridges"));
    bridges.key_cache = None;
    let _bridges = ok(
        Bridges::start(&network, bridges).await,
        "child: starting the lab bridges",
    );
    println!("READY {}", run.path().display());
    // Hold the network until the parent's SIGKILL.
    std::future::pending::<()>().await;
}

/// The safety check before exits start: a namespace with a default route
/// (through a veth pair whose both ends stay in the namespace, so it leads
/// nowhere) is refused.
#[tokio::test]
async fn a_namespace_with_a_route_out_is_refused() {
    if !is_root() {
        return;
    }
    let ns = TestNetns::create("routed");
    let n = ns.name.as_str();
    ok(
        harness::tor::check_no_route_out(&ns.path().into()),
        "isolated lab namespace",
    );
    run(
        "ip",
        &[
            "-n", n, "link", "add", "out0", "type", "veth", "peer", "name", "out1",
        ],
    );
    run(
        "ip",
        &["-n", n, "addr", "add", "192.0.2.2/24", "dev", "out0"],
    );
    run("ip", &["-n", n, "link", "set", "out0", "up"]);
    run("ip", &["-n", n, "link", "set", "out1", "up"]);
    run(
        "ip",
        &["-n", n, "route", "add", "default", "via", "192.0.2.1"],
    );
    let dir = run_dir("routed");
    std::fs::write(dir.join("leftover"), "").unwrap();
    let err = Network::start(NetworkSpec::new(ns.path(), RELAYS, dir.clone()))
        .await
        .expect_err("a used run directory must be refused");
    assert!(
        matches!(err, harness::tor::Error::RunDirNotEmpty { .. }),
        "{}",
        chain(&err)
    );
    let err = Network::start(NetworkSpec::new(ns.path(), RELAYS, dir.join("tor")))
        .await
        .expect_err("a network in a routed namespace must be refused");
    assert!(
        matches!(err, harness::tor::Error::RouteOut { .. }),
        "{}",
        chain(&err)
    );
    assert_eq!(processes_mentioning(&dir.display().to_string()), vec![]);
    remove_on_success(&dir);
}
