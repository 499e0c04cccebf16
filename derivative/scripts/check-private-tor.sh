#!/bin/bash
# Manual check (root): an ISO's tor bootstraps against a private Tor
# network (3 authorities that also exit, TOR-LAB-NOTES.md) in a fresh
# network namespace with no route out, and the greeter says "Tor is ready".
# Not part of the suite: harness::net and harness::tor do this for the
# features. Usage: derivative/scripts/check-private-tor.sh ISO
# Needs: tor, dnsmasq-base, iproute2, qemu-system-x86, python3.
set -u
NS=tdv$$
ISO=$(realpath "${1:?usage: $0 ISO}")
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/tailor-private-tor.XXXXXX)

pids=()
cleanup() { for p in "${pids[@]}"; do kill $p 2>/dev/null; done; sleep 2; for p in "${pids[@]}"; do kill -9 $p 2>/dev/null; done; ip netns del $NS 2>/dev/null; }
trap cleanup EXIT
ip netns add $NS
X="ip netns exec $NS"
$X ip link set lo up
$X ip link add br0 type bridge
$X ip addr add 10.203.0.1/24 dev br0
$X ip link set br0 up
$X ip tuntap add tap0 mode tap
$X ip link set tap0 master br0
$X ip link set tap0 up
$X ip route get 1.1.1.1 2>&1 | head -1
$X dnsmasq --no-daemon --interface=br0 --bind-interfaces --dhcp-range=10.203.0.100,10.203.0.200,12h --log-facility=$T/dnsmasq.log --pid-file=$T/dnsmasq.pid --log-queries & pids+=($!)
DA=""
for i in 0 1 2; do
  d=$T/a$i; mkdir -p $d/keys; chmod 700 $d
  (cd $d/keys && echo "" | tor-gencert --create-identity-key -m 12 -a 10.203.0.1:700$i -i authority_identity_key -s authority_signing_key -c authority_certificate --passphrase-fd 0 >/dev/null 2>&1)
  v3=$(awk '/^fingerprint/{print $2}' $d/keys/authority_certificate)
  $X tor --list-fingerprint --DataDirectory $d --ORPort 10.203.0.1:500$i --Address 10.203.0.1 --Nickname auth$i >/dev/null 2>&1
  fp=$(awk '{print $2}' $d/fingerprint)
  DA="${DA}DirAuthority auth$i orport=500$i no-v2 v3ident=$v3 10.203.0.1:700$i $fp"$'\n'
done
for i in 0 1 2; do
  d=$T/a$i
  cat > $d/torrc <<EOT
TestingTorNetwork 1
DataDirectory $d
Nickname auth$i
Address 10.203.0.1
ORPort 10.203.0.1:500$i
DirPort 10.203.0.1:700$i
AuthoritativeDirectory 1
V3AuthoritativeDirectory 1
ContactInfo tailor
ExitPolicy accept *:*
ExitPolicyRejectPrivate 0
AssumeReachable 1
SocksPort 0
TestingV3AuthInitialVotingInterval 5
TestingV3AuthInitialVoteDelay 2
TestingV3AuthInitialDistDelay 2
V3AuthVotingInterval 20
V3AuthVoteDelay 4
V3AuthDistDelay 4
TestingDirAuthVoteExit *
TestingDirAuthVoteGuard *
TestingDirAuthVoteHSDir *
TestingMinExitFlagThreshold 0
Log notice file $d/notice.log
$DA
EOT
  $X tor -f $d/torrc --quiet & pids+=($!)
done
printf 'TestingTorNetwork 1\n%s' "$DA" > $T/lab.conf
cat $T/lab.conf
$X qemu-system-x86_64 -machine q35,accel=tcg -cpu max -smp 2 -m 1024 -cdrom "$ISO" -display none -serial file:$T/serial.log -qmp unix:$T/qmp.sock,server=on,wait=off -chardev socket,id=qga0,path=$T/qga.sock,server=on,wait=off -device virtio-serial-pci -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0 -netdev tap,id=net0,ifname=tap0,script=no,downscript=no,vnet_hdr=off -device virtio-net-pci,netdev=net0,mac=52:54:00:12:34:56 > $T/qemu.log 2>&1 & pids+=($!)
S=$(date +%s)
until grep -q "welcome screen shown" $T/serial.log 2>/dev/null; do sleep 0.5; [ $(( $(date +%s) - S )) -gt 90 ] && { echo no greeter; exit 1; }; done
echo "greeter after $(( $(date +%s) - S ))s"
python3 - $T <<'PY'
import socket, json, sys
T=sys.argv[1]
s = socket.socket(socket.AF_UNIX); s.connect(T+"/qga.sock"); f = s.makefile('rw')
def cmd(c, **a):
    f.write(json.dumps({"execute": c, "arguments": a}) + "\n"); f.flush(); return json.loads(f.readline())
print(cmd("guest-sync", id=7))
h = cmd("guest-file-open", path="/etc/tor/torrc.d/50-lab.conf", mode="w")["return"]
import base64
print(cmd("guest-file-write", handle=h, **{"buf-b64": base64.b64encode(open(T+"/lab.conf","rb").read()).decode()}))
print(cmd("guest-file-close", handle=h))
PY
python3 "$HERE/qmp.py" $T/qmp.sock key:ret
S=$(date +%s)
until grep -q "Tor is ready" $T/serial.log; do sleep 1; [ $(( $(date +%s) - S )) -gt 240 ] && { echo "no Tor is ready after 240s"; break; }; done
echo "after Start: $(( $(date +%s) - S ))s"
python3 "$HERE/qmp.py" $T/qmp.sock shot:$T/final.png
cat $T/serial.log
python3 "$HERE/qga.py" $T/qga.sock 'grep -i bootstrapped /var/log/tor/notices.log | tail -5; nft list counters; netstat -tn'
tail -3 $T/dnsmasq.log
