#!/usr/bin/env python3
"""Boot the Debian installer (gtk or text) in QEMU without any network device,
drive it with QMP send-key and save screendumps, for the matcher's benchmark
corpus (benches/corpus/). One-off tool, kept so the corpus can be re-made.

    scripts/collect_screens.py start gtk /tmp/di      # or text
    scripts/collect_screens.py settle /tmp/di 3 60000 # still 3 s, PNG >= 60 kB
    scripts/collect_screens.py key /tmp/di down down ret shift+tab
    scripts/collect_screens.py dump /tmp/di shot.png
    kill $(cat /tmp/di/qemu.pid)

Needs debian-installer-12-netboot-amd64 and qemu-system-x86. The guest gets
`-nic none`: it can never reach a network.
"""
import hashlib
import json
import os
import socket
import subprocess
import sys
import time

IMAGES = "/usr/lib/debian-installer/images/12/amd64"


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, **args):
        self.sock.sendall(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        while True:
            msg = self._read()
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise RuntimeError(f"{name}: {msg['error']}")


def start(flavour, workdir):
    """Start QEMU daemonized; its PID goes to WORKDIR/qemu.pid."""
    os.makedirs(workdir, exist_ok=True)
    kdir = f"{IMAGES}/{flavour}/debian-installer/amd64"
    subprocess.run([
        "qemu-system-x86_64", "-accel", "tcg,thread=multi", "-m", "1024",
        "-kernel", f"{kdir}/linux", "-initrd", f"{kdir}/initrd.gz",
        "-append", "vga=788 --- quiet",
        "-nic", "none", "-display", "none", "-vnc", "none",
        "-qmp", f"unix:{workdir}/qmp.sock,server=on,wait=off",
        "-pidfile", f"{workdir}/qemu.pid", "-daemonize",
    ], check=True)
    with open(f"{workdir}/qemu.pid") as f:
        print("qemu pid", f.read().strip())


def digest(qmp, tmp):
    qmp.cmd("screendump", filename=tmp, format="png")
    with open(tmp, "rb") as f:
        data = f.read()
    return hashlib.sha1(data).hexdigest(), len(data)


def settle(qmp, workdir, still, min_size=0, timeout=300.0):
    """Wait until the screen (PNG at least MIN_SIZE bytes) has not changed
    for STILL seconds."""
    tmp = f"{workdir}/probe.png"
    start = time.time()
    last, since = None, time.time()
    while time.time() - start < timeout:
        d, size = digest(qmp, tmp)
        if d != last or size < min_size:
            last, since = d, time.time()
        elif time.time() - since >= still:
            return
        time.sleep(0.3)
    raise SystemExit("screen never settled")


def main():
    """start FLAVOUR WORKDIR | key WORKDIR K.. | dump WORKDIR FILE |
    settle WORKDIR SECONDS [MIN_PNG_BYTES]"""
    op = sys.argv[1]
    if op == "start":
        start(sys.argv[2], sys.argv[3])
        return
    workdir, rest = sys.argv[2], sys.argv[3:]
    qmp = Qmp(f"{workdir}/qmp.sock")
    if op == "key":
        for k in rest:
            qmp.cmd("send-key", keys=[{"type": "qcode", "data": n} for n in k.split("+")])
            time.sleep(0.2)
    elif op == "dump":
        qmp.cmd("screendump", filename=os.path.abspath(rest[0]), format="png")
    elif op == "settle":
        settle(qmp, workdir, float(rest[0]), int(rest[1]) if len(rest) > 1 else 0)


if __name__ == "__main__":
    main()
