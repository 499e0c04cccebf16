//! How a capture's fingerprint differs from a baseline's, in words a
//! derivative maintainer understands.
//!
//! Every finding is one of three:
//! - a **difference**: the capture shows the guest doing something the
//!   baseline system does not (or not that way): an observer can tell the
//!   two apart;
//! - **inconclusive**: the baseline has something the capture has no
//!   traffic of at all (no DHCP, no TLS, no frame from the guest, the MAC
//!   policy not judged), so that part cannot be compared; a capture that
//!   covers the same story as the baseline (boot, Start, DHCP, Tor
//!   bootstrap, a fetch) has none;
//! - a **note**: seen on one side only where that is a matter of timing,
//!   of what the lab asked, or of how long the capture ran (a DHCP
//!   renewal, an ARP announcement or reply), reported but not held
//!   against the capture.
//!
//! What is compared, field by field, and with what tolerance:
//!
//! | field | rule |
//! | --- | --- |
//! | `mac.addresses` | 0 in the capture (no frame from the guest): inconclusive, nothing else compared |
//! | `protocols` | one the capture has and the baseline not: difference; the reverse: inconclusive |
//! | `first_flows` | both lists cut to the kinds they share; the first [`FLOW_ORDER_COMPARED`] must be in the same order |
//! | `arp` | a request, probe or gratuitous reply only in the capture: difference; an announcement or a reply only in the capture, or anything only in the baseline: note (announcements came and went between boots of the reference; replies answer the lab) |
//! | `mac.addresses` | must be equal |
//! | `mac.vendor` (the policy of each address), `mac.locally_administered` | must be equal; `unknown` in the capture (no NIC MAC given) against a known baseline: inconclusive; `unknown` in the baseline: not compared |
//! | `dhcp` | by message kind: a kind only in the capture: difference, only in the baseline: inconclusive; renewing, rebinding and RELEASE only in one: note. Each capture message of a shared kind must equal one of the baseline's (every field) |
//! | `ip` | per IP version and kind seen on both sides: each TTL, TOS and DF value of the capture must be among the baseline's; IP ID behaviour equal unless either is `unknown` |
//! | `tcp_syn` | each capture signature must be one of the baseline's; none in the capture while the baseline has some: inconclusive |
//! | `tls` | each capture ClientHello must be one of the baseline's (every part, in order); each of the baseline's must appear, else inconclusive |
//!
//! Nothing else is compared: ports, addresses, times, counts and the
//! random part of the MAC are not even recorded.

use std::collections::BTreeSet;
use std::fmt;

use super::{
    ClientHello, DhcpMessage, Fingerprint, IpBehaviour, IpId, SynSignature, Tristate, VendorPart,
    FLOW_ORDER_COMPARED,
};

/// One thing the comparison found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Which part of the fingerprint, e.g. `dhcp.DISCOVER.hostname`.
    pub field: String,
    /// What differs, in words.
    pub text: String,
}

/// The verdict of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing an observer could tell apart.
    Same,
    /// At least one difference.
    Differs,
    /// No difference, but part of the baseline could not be compared.
    Inconclusive,
}

/// Everything a comparison found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Comparison {
    /// Names of the two sides, for the report.
    pub baseline: String,
    pub capture: String,
    pub differences: Vec<Finding>,
    pub inconclusive: Vec<Finding>,
    pub notes: Vec<Finding>,
}

impl Comparison {
    /// A difference wins over an inconclusive part: it is proof enough.
    pub fn outcome(&self) -> Outcome {
        if !self.differences.is_empty() {
            Outcome::Differs
        } else if !self.inconclusive.is_empty() {
            Outcome::Inconclusive
        } else {
            Outcome::Same
        }
    }

    fn differ(&mut self, field: impl Into<String>, text: impl Into<String>) {
        self.differences.push(Finding {
            field: field.into(),
            text: text.into(),
        });
    }

    fn unsure(&mut self, field: impl Into<String>, text: impl Into<String>) {
        self.inconclusive.push(Finding {
            field: field.into(),
            text: text.into(),
        });
    }

    fn note(&mut self, field: impl Into<String>, text: impl Into<String>) {
        self.notes.push(Finding {
            field: field.into(),
            text: text.into(),
        });
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.outcome() {
            Outcome::Same => "SAME: an observer on the LAN cannot tell them apart by what was compared".to_owned(),
            Outcome::Differs => format!("DIFFERS: {} difference(s)", self.differences.len()),
            Outcome::Inconclusive => format!(
                "INCONCLUSIVE: no difference, but {} part(s) of the baseline have nothing to compare with",
                self.inconclusive.len()
            ),
        };
        writeln!(
            f,
            "fingerprint of {} against the baseline {}: {verdict}",
            self.capture, self.baseline
        )?;
        let mut list = |title: &str, items: &[Finding]| -> fmt::Result {
            if !items.is_empty() {
                writeln!(f, "{title}:")?;
                for i in items {
                    writeln!(f, "  - {} [{}]", i.text, i.field)?;
                }
            }
            Ok(())
        };
        list("differences", &self.differences)?;
        list("inconclusive", &self.inconclusive)?;
        list("notes (not held against the capture)", &self.notes)
    }
}

/// Compare a capture's fingerprint with a baseline's (see the module doc
/// for the rules).
pub fn compare(baseline: &Fingerprint, capture: &Fingerprint) -> Comparison {
    let mut c = Comparison::default();
    if capture.mac.addresses == 0 {
        c.unsure(
            "mac.addresses",
            "the capture has no frame from the guest (every source MAC is the lab's): nothing to compare",
        );
        return c;
    }
    protocols(&mut c, baseline, capture);
    first_flows(&mut c, baseline, capture);
    arp(&mut c, baseline, capture);
    mac(&mut c, baseline, capture);
    dhcp(&mut c, &baseline.dhcp, &capture.dhcp);
    ip(&mut c, &baseline.ip, &capture.ip);
    syns(&mut c, &baseline.tcp_syn, &capture.tcp_syn);
    tls(&mut c, &baseline.tls, &capture.tls);
    c
}

/// What a kind of traffic tells an observer, for the protocols a
/// derivative is most likely to add.
pub fn describe(kind: &str) -> &'static str {
    match kind {
        "mDNS" => "multicast DNS (UDP 5353) announces the machine's name and services to every machine on the LAN and asks them for theirs",
        "LLMNR" => "LLMNR (UDP 5355) asks every machine on the LAN to resolve names, and answers for the machine's own name",
        "SSDP" => "SSDP (UPnP discovery, UDP 1900) announces the machine's devices and services to the LAN or looks for others'",
        "NetBIOS name service" => "the NetBIOS name service (UDP 137) registers and looks up the machine's NetBIOS name on the LAN",
        "NetBIOS datagrams" => "NetBIOS datagrams (UDP 138) carry browser announcements that name the machine",
        "NetBIOS session" | "SMB" => "file sharing (NetBIOS session or SMB) talks to other machines on the LAN",
        "WS-Discovery" => "WS-Discovery (UDP 3702) announces the machine to the LAN and looks for devices",
        "LLDP" => "LLDP announces the machine (its name and system description) to the switch",
        "NTP" => "NTP (UDP 123) asks a time server directly, outside Tor",
        "DNS" => "DNS outside Tor: names are asked in the clear",
        "DHCPv6" => "DHCPv6 asks the LAN for an IPv6 address",
        "IPv6" => "the machine speaks IPv6 on the LAN, if only to configure a link-local address",
        "IGMP" => "IGMP reports tell the LAN which multicast groups the machine listens to",
        "HTTP" => "plain HTTP, readable by anyone on the path",
        "SNMP" => "SNMP queries or traps",
        "IKE" | "WireGuard" => "a VPN handshake",
        _ => "",
    }
}

fn protocols(c: &mut Comparison, b: &Fingerprint, x: &Fingerprint) {
    let base: BTreeSet<&String> = b.protocols.iter().collect();
    let seen: BTreeSet<&String> = x.protocols.iter().collect();
    for p in seen.difference(&base) {
        c.differ(
            format!("protocols.{p}"),
            match describe(p) {
                "" => format!("the guest sends {p}; the baseline does not"),
                d => format!("the guest sends {p}; the baseline does not: {d}"),
            },
        );
    }
    for p in base.difference(&seen) {
        c.unsure(
            format!("protocols.{p}"),
            format!("the capture has no {p} from the guest; the baseline has (the capture may not cover that part of the system's life, or the system no longer sends it)"),
        );
    }
}

fn first_flows(c: &mut Comparison, b: &Fingerprint, x: &Fingerprint) {
    let common = |from: &[String], other: &[String]| -> Vec<String> {
        from.iter()
            .filter(|k| other.contains(k))
            .take(FLOW_ORDER_COMPARED)
            .cloned()
            .collect()
    };
    let base = common(&b.first_flows, &x.first_flows);
    let seen = common(&x.first_flows, &b.first_flows);
    if base != seen {
        c.differ(
            "first_flows",
            format!(
                "after the network comes up the guest's traffic begins with {}; the baseline's with {}",
                seen.join(", "),
                base.join(", ")
            ),
        );
    }
}

fn arp_words(what: &str) -> String {
    match what {
        "probe" => "ARP probes (requests from 0.0.0.0 that check an address is free)".into(),
        "announcement" => "ARP announcements (requests for its own address)".into(),
        "request" => "ARP requests".into(),
        "reply" => "ARP replies".into(),
        "gratuitous reply" => "gratuitous ARP replies".into(),
        other => format!("ARP {other}"),
    }
}

/// ARP the guest sends or not by timing or because the lab asked:
/// announcements came and went between boots of the reference, and a
/// reply answers the lab's own request.
fn arp_by_chance(what: &str) -> bool {
    matches!(what, "announcement" | "reply")
}

fn arp(c: &mut Comparison, b: &Fingerprint, x: &Fingerprint) {
    for a in x.arp.iter().filter(|a| !b.arp.contains(a)) {
        if arp_by_chance(a) {
            c.note(
                format!("arp.{a}"),
                format!(
                    "the guest sends {}; the baseline's capture has none (timing or the lab's asking, not compared)",
                    arp_words(a)
                ),
            );
        } else {
            c.differ(
                format!("arp.{a}"),
                format!("the guest sends {}; the baseline does not", arp_words(a)),
            );
        }
    }
    for a in b.arp.iter().filter(|a| !x.arp.contains(a)) {
        c.note(
            format!("arp.{a}"),
            format!(
                "the capture has no {}; the baseline has (timing-dependent, not compared)",
                arp_words(a)
            ),
        );
    }
}

fn vendor_words(v: VendorPart) -> &'static str {
    match v {
        VendorPart::Kept => "keeps the NIC's vendor part (first three bytes) and changes the rest",
        VendorPart::Replaced => "replaces the NIC's vendor part (first three bytes) too",
        VendorPart::Unchanged => "is the NIC's own address (not spoofed)",
        VendorPart::Unknown => "is not known",
    }
}

/// "keeps ..." for one policy, "(one address) keeps ... and (another) is
/// ..." for several.
fn vendor_list(v: &[VendorPart]) -> String {
    match v {
        [one] => vendor_words(*one).to_owned(),
        several => several
            .iter()
            .map(|p| format!("(one address) {}", vendor_words(*p)))
            .collect::<Vec<_>>()
            .join(" and "),
    }
}

fn tristate_words(t: Tristate) -> &'static str {
    match t {
        Tristate::Yes => "set",
        Tristate::No => "clear",
        Tristate::Mixed => "set on some addresses only",
        Tristate::Unknown => "not known",
    }
}

fn mac(c: &mut Comparison, b: &Fingerprint, x: &Fingerprint) {
    let (bm, xm) = (&b.mac, &x.mac);
    if bm.addresses != xm.addresses {
        c.differ(
            "mac.addresses",
            format!(
                "the guest sent from {} MAC address(es); the baseline from {}",
                xm.addresses, bm.addresses
            ),
        );
    }
    let unknown = |v: &[VendorPart]| v.contains(&VendorPart::Unknown);
    if unknown(&bm.vendor) {
        c.note(
            "mac.vendor",
            "the baseline does not know the NIC's MAC: the vendor part is not compared",
        );
    } else if unknown(&xm.vendor) {
        c.unsure(
            "mac.vendor",
            "the capture's MAC policy cannot be judged without the NIC's configured MAC (--nic-mac)",
        );
    } else if bm.vendor != xm.vendor {
        c.differ(
            "mac.vendor",
            format!(
                "the guest's MAC {}; the baseline's {}",
                vendor_list(&xm.vendor),
                vendor_list(&bm.vendor)
            ),
        );
    }
    match (bm.locally_administered, xm.locally_administered) {
        (Tristate::Unknown, _) | (_, Tristate::Unknown) => {}
        (bl, xl) if bl != xl => c.differ(
            "mac.locally_administered",
            format!(
                "the guest's MAC has the locally-administered bit {}; the baseline's {}",
                tristate_words(xl),
                tristate_words(bl)
            ),
        ),
        _ => {}
    }
}

/// DHCP kinds whose presence depends on how long the capture ran.
fn lifecycle(kind: &str) -> bool {
    matches!(
        kind,
        "REQUEST (renewing)" | "REQUEST (rebinding)" | "RELEASE"
    )
}

fn option_name(code: u8) -> &'static str {
    match code {
        1 => "subnet mask",
        3 => "router",
        6 => "DNS servers",
        12 => "hostname",
        15 => "domain name",
        26 => "interface MTU",
        28 => "broadcast address",
        33 => "static routes",
        42 => "NTP servers",
        43 => "vendor-specific",
        50 => "requested address",
        51 => "lease time",
        53 => "message type",
        54 => "server identifier",
        55 => "parameter request list",
        57 => "maximum message size",
        58 => "renewal time",
        59 => "rebinding time",
        60 => "vendor class",
        61 => "client identifier",
        77 => "user class",
        81 => "client FQDN",
        119 => "domain search",
        121 => "classless static routes",
        _ => "",
    }
}

fn codes(list: &[u8]) -> String {
    let parts: Vec<String> = list.iter().map(|c| c.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

fn named_codes(list: &[u8]) -> String {
    let parts: Vec<String> = list
        .iter()
        .map(|&c| match option_name(c) {
            "" => c.to_string(),
            n => format!("{c} {n}"),
        })
        .collect();
    parts.join(", ")
}

/// The fields of `x` that differ from `b`, in words.
fn dhcp_fields(b: &DhcpMessage, x: &DhcpMessage) -> Vec<(String, String)> {
    let k = &x.kind;
    let mut out = Vec::new();
    let mut flag = |name: &str, code: u8, what: &str, bv: bool, xv: bool| {
        if bv != xv {
            out.push((
                format!("dhcp.{k}.{name}"),
                if xv {
                    format!("DHCP {k} sends {what} (option {code}); the baseline does not")
                } else {
                    format!("DHCP {k} sends no {what} (option {code}); the baseline does")
                },
            ));
        }
    };
    flag("hostname", 12, "a hostname", b.hostname, x.hostname);
    flag(
        "vendor_class",
        60,
        "a vendor class",
        b.vendor_class,
        x.vendor_class,
    );
    flag("fqdn", 81, "a client FQDN", b.fqdn, x.fqdn);
    // The option list without the three flagged above, so one added
    // hostname is said once.
    let rest = |o: &[u8]| -> Vec<u8> {
        o.iter()
            .copied()
            .filter(|c| !matches!(c, 12 | 60 | 81))
            .collect()
    };
    if rest(&b.options) != rest(&x.options) {
        let added: Vec<u8> = x
            .options
            .iter()
            .copied()
            .filter(|o| !b.options.contains(o))
            .collect();
        let removed: Vec<u8> = b
            .options
            .iter()
            .copied()
            .filter(|o| !x.options.contains(o))
            .collect();
        let mut detail = Vec::new();
        if !added.is_empty() {
            detail.push(format!("added: {}", named_codes(&added)));
        }
        if !removed.is_empty() {
            detail.push(format!("missing: {}", named_codes(&removed)));
        }
        if detail.is_empty() {
            detail.push("same options, another order".into());
        }
        out.push((
            format!("dhcp.{k}.options"),
            format!(
                "DHCP {k} sends options {}; the baseline sends {} ({})",
                codes(&x.options),
                codes(&b.options),
                detail.join("; ")
            ),
        ));
    }
    if b.parameter_request_list != x.parameter_request_list {
        out.push((
            format!("dhcp.{k}.parameter_request_list"),
            format!(
                "DHCP {k} asks for parameters {} (option 55); the baseline asks for {}",
                codes(&x.parameter_request_list),
                codes(&b.parameter_request_list)
            ),
        ));
    }
    if b.client_identifier != x.client_identifier {
        out.push((
            format!("dhcp.{k}.client_identifier"),
            format!(
                "DHCP {k} identifies the client by {} (option 61); the baseline by {}",
                x.client_identifier, b.client_identifier
            ),
        ));
    }
    if b.broadcast_flag != x.broadcast_flag {
        out.push((
            format!("dhcp.{k}.broadcast_flag"),
            format!(
                "DHCP {k} {} the broadcast flag; the baseline {}",
                if x.broadcast_flag { "sets" } else { "clears" },
                if b.broadcast_flag {
                    "sets it"
                } else {
                    "clears it"
                }
            ),
        ));
    }
    if b.chaddr_is_source_mac != x.chaddr_is_source_mac {
        out.push((
            format!("dhcp.{k}.chaddr_is_source_mac"),
            format!(
                "DHCP {k}'s client hardware address {} the frame's source MAC; the baseline's {}",
                if x.chaddr_is_source_mac {
                    "is"
                } else {
                    "is NOT"
                },
                if b.chaddr_is_source_mac {
                    "is"
                } else {
                    "is not"
                }
            ),
        ));
    }
    if b.max_message_size != x.max_message_size {
        let size = |s: u16| {
            if s == 0 {
                "none".to_owned()
            } else {
                s.to_string()
            }
        };
        out.push((
            format!("dhcp.{k}.max_message_size"),
            format!(
                "DHCP {k} announces a maximum message size of {} (option 57); the baseline {}",
                size(x.max_message_size),
                size(b.max_message_size)
            ),
        ));
    }
    out
}

fn dhcp(c: &mut Comparison, base: &[DhcpMessage], seen: &[DhcpMessage]) {
    let kinds =
        |l: &[DhcpMessage]| -> BTreeSet<String> { l.iter().map(|m| m.kind.clone()).collect() };
    let (bk, xk) = (kinds(base), kinds(seen));
    for k in xk.difference(&bk) {
        if lifecycle(k) {
            c.note(
                format!("dhcp.{k}"),
                format!("the guest sends DHCP {k}; the baseline's capture has none (not compared)"),
            );
        } else {
            c.differ(
                format!("dhcp.{k}"),
                format!("the guest sends DHCP {k}; the baseline does not"),
            );
        }
    }
    for k in bk.difference(&xk) {
        if lifecycle(k) {
            c.note(
                format!("dhcp.{k}"),
                format!("the capture has no DHCP {k}; the baseline has (not compared)"),
            );
        } else {
            c.unsure(
                format!("dhcp.{k}"),
                format!("the capture has no DHCP {k} from the guest; the baseline has"),
            );
        }
    }
    for k in bk.intersection(&xk) {
        let b: Vec<&DhcpMessage> = base.iter().filter(|m| &m.kind == k).collect();
        for x in seen.iter().filter(|m| &m.kind == k) {
            if b.contains(&x) {
                continue;
            }
            // Explain against the closest of the baseline's messages.
            let fields = b
                .iter()
                .map(|bm| dhcp_fields(bm, x))
                .min_by_key(|f| f.len())
                .unwrap_or_default();
            for (field, text) in fields {
                c.differ(field, text);
            }
        }
    }
}

fn list<T: fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn ip_id_words(id: IpId) -> &'static str {
    match id {
        IpId::Zero => "always 0",
        IpId::Constant => "one constant value",
        IpId::PerFlow => "a counter per flow",
        IpId::Shared => "one counter shared by all flows",
        IpId::Random => "random",
        IpId::Unknown => "unknown",
    }
}

fn ip(c: &mut Comparison, base: &[IpBehaviour], seen: &[IpBehaviour]) {
    for x in seen {
        let Some(b) = base
            .iter()
            .find(|b| b.version == x.version && b.kind == x.kind)
        else {
            // A kind the baseline lacks is already a protocols difference.
            continue;
        };
        let v = if x.version == 4 { "IPv4" } else { "IPv6" };
        let what = format!("{v} {} packets", x.kind);
        let field = |f: &str| format!("ip.{v}.{}.{f}", x.kind);
        let (ttl_name, tos_name) = if x.version == 4 {
            ("TTL", "TOS")
        } else {
            ("hop limit", "traffic class")
        };
        let new_ttl: Vec<u8> = x
            .ttl
            .iter()
            .copied()
            .filter(|t| !b.ttl.contains(t))
            .collect();
        if !new_ttl.is_empty() {
            c.differ(
                field("ttl"),
                format!(
                    "{what} have {ttl_name} {}; the baseline's have {} (the default {ttl_name} tells operating systems apart)",
                    list(&x.ttl),
                    list(&b.ttl)
                ),
            );
        }
        let new_tos: Vec<u8> = x
            .tos
            .iter()
            .copied()
            .filter(|t| !b.tos.contains(t))
            .collect();
        if !new_tos.is_empty() {
            c.differ(
                field("tos"),
                format!(
                    "{what} have {tos_name} {}; the baseline's have {}",
                    list(&x.tos),
                    list(&b.tos)
                ),
            );
        }
        if x.df.iter().any(|d| !b.df.contains(d)) {
            c.differ(
                field("df"),
                format!(
                    "{what} have the don't-fragment bit {}; the baseline's {}",
                    x.df.join(" and "),
                    b.df.join(" and ")
                ),
            );
        }
        match (b.ip_id, x.ip_id) {
            (Some(bi), Some(xi)) if bi != xi && bi != IpId::Unknown && xi != IpId::Unknown => c
                .differ(
                    field("ip_id"),
                    format!(
                        "{what} take their IP ID from {}; the baseline's from {}",
                        ip_id_words(xi),
                        ip_id_words(bi)
                    ),
                ),
            _ => {}
        }
    }
}

fn syn_fields(b: &SynSignature, x: &SynSignature) -> Vec<String> {
    let mut out = Vec::new();
    let yes = |v: bool| if v { "carry" } else { "carry no" };
    if b.timestamps != x.timestamps {
        out.push(if x.timestamps {
            "TCP SYNs carry the timestamps option; the baseline's do not".to_owned()
        } else {
            "TCP SYNs carry no timestamps option; the baseline's do".to_owned()
        });
    }
    if b.sack_permitted != x.sack_permitted {
        out.push(format!(
            "TCP SYNs {} SACK-permitted; the baseline's {}",
            yes(x.sack_permitted),
            if b.sack_permitted { "do" } else { "do not" }
        ));
    }
    if b.window_scale != x.window_scale {
        let ws = |w: i16| {
            if w < 0 {
                "none".to_owned()
            } else {
                w.to_string()
            }
        };
        out.push(format!(
            "TCP SYNs have window scale {}; the baseline's {}",
            ws(x.window_scale),
            ws(b.window_scale)
        ));
    }
    if b.window != x.window {
        out.push(format!(
            "TCP SYNs offer a window of {}; the baseline's {}",
            x.window, b.window
        ));
    }
    if b.mss != x.mss {
        out.push(format!(
            "TCP SYNs announce an MSS of {}; the baseline's {}",
            x.mss, b.mss
        ));
    }
    if b.ecn != x.ecn {
        out.push(format!(
            "TCP SYNs {} ECN; the baseline's {}",
            if x.ecn { "ask for" } else { "do not ask for" },
            if b.ecn { "do" } else { "do not" }
        ));
    }
    if b.options != x.options {
        out.push(format!(
            "TCP SYN options are {}; the baseline's {}",
            x.options, b.options
        ));
    }
    out
}

fn syns(c: &mut Comparison, base: &[SynSignature], seen: &[SynSignature]) {
    if !base.is_empty() && seen.is_empty() {
        c.unsure(
            "tcp_syn",
            "the capture has no TCP SYN from the guest; the baseline has",
        );
        return;
    }
    for x in seen.iter().filter(|x| !base.contains(x)) {
        let closest = base
            .iter()
            .filter(|b| b.version == x.version)
            .map(|b| syn_fields(b, x))
            .min_by_key(|f| f.len());
        match closest {
            Some(fields) => {
                for text in fields {
                    c.differ(format!("tcp_syn.ipv{}", x.version), text);
                }
            }
            None => c.differ(
                format!("tcp_syn.ipv{}", x.version),
                format!(
                    "the guest opens TCP over IPv{}; the baseline does not",
                    x.version
                ),
            ),
        }
    }
    for b in base.iter().filter(|b| !seen.contains(b)) {
        c.note(
            format!("tcp_syn.ipv{}", b.version),
            format!(
                "the capture has no SYN like the baseline's (window {}, options {})",
                b.window, b.options
            ),
        );
    }
}

fn hex_list(v: &[u16]) -> String {
    v.iter()
        .map(|x| format!("{x:#06x}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn cipher_list(v: &[u16]) -> String {
    v.iter()
        .map(|x| match tls_parser::TlsCipherSuite::from_id(*x) {
            Some(s) => s.name.to_owned(),
            None => format!("{x:#06x}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn hello_fields(b: &ClientHello, x: &ClientHello) -> Vec<String> {
    let mut out = Vec::new();
    let who = format!("a TLS ClientHello (JA4 {})", x.ja4);
    let base = format!("the baseline's (JA4 {})", b.ja4);
    if b.version != x.version || b.supported_versions != x.supported_versions {
        out.push(format!(
            "{who} offers versions {:#06x} / [{}]; {base} {:#06x} / [{}]",
            x.version,
            hex_list(&x.supported_versions),
            b.version,
            hex_list(&b.supported_versions)
        ));
    }
    if b.ciphers != x.ciphers {
        out.push(format!(
            "{who} offers ciphers [{}]; {base} [{}]",
            cipher_list(&x.ciphers),
            cipher_list(&b.ciphers)
        ));
    }
    if b.extensions != x.extensions {
        out.push(format!(
            "{who} sends extensions [{}]; {base} [{}]",
            list(&x.extensions),
            list(&b.extensions)
        ));
    }
    if b.groups != x.groups {
        out.push(format!(
            "{who} offers groups [{}]; {base} [{}]",
            hex_list(&x.groups),
            hex_list(&b.groups)
        ));
    }
    if b.ec_point_formats != x.ec_point_formats {
        out.push(format!(
            "{who} offers EC point formats [{}]; {base} [{}]",
            list(&x.ec_point_formats),
            list(&b.ec_point_formats)
        ));
    }
    if b.signature_algorithms != x.signature_algorithms {
        out.push(format!(
            "{who} offers signature algorithms [{}]; {base} [{}]",
            hex_list(&x.signature_algorithms),
            hex_list(&b.signature_algorithms)
        ));
    }
    if b.alpn != x.alpn {
        out.push(format!(
            "{who} asks for application protocols [{}]; {base} [{}]",
            x.alpn.join(", "),
            b.alpn.join(", ")
        ));
    }
    if b.sni != x.sni {
        out.push(format!(
            "{who} {} a server name; {base} {}",
            if x.sni { "sends" } else { "sends no" },
            if b.sni { "does" } else { "does not" }
        ));
    }
    out
}

fn tls(c: &mut Comparison, base: &[ClientHello], seen: &[ClientHello]) {
    for x in seen.iter().filter(|x| !base.contains(x)) {
        match base
            .iter()
            .map(|b| hello_fields(b, x))
            .min_by_key(|f| f.len())
        {
            Some(fields) => {
                for text in fields {
                    c.differ(format!("tls.{}", x.ja4), text);
                }
            }
            None => c.differ(
                format!("tls.{}", x.ja4),
                format!(
                    "the guest sends a TLS ClientHello (JA4 {}); the baseline sends none",
                    x.ja4
                ),
            ),
        }
    }
    if seen.is_empty() {
        // Already said once for the protocol; one line per hello would
        // repeat it.
        if !base.is_empty() {
            c.unsure(
                "tls",
                "the capture has no TLS ClientHello from the guest; the baseline has",
            );
        }
        return;
    }
    for b in base.iter().filter(|b| !seen.contains(b)) {
        c.unsure(
            format!("tls.{}", b.ja4),
            format!(
                "the baseline's TLS ClientHello (JA4 {}) does not appear in the capture",
                b.ja4
            ),
        );
    }
}
