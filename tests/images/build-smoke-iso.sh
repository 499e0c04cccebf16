#!/usr/bin/env bash
# Build the smoke-test guest: a Debian kernel and a busybox initramfs on a
# hybrid isolinux ISO, from Debian packages only. It boots to a root shell on
# the framebuffer console (1024x768) and reports on the serial console:
# "TAILOR-SMOKE-BOOTED" once up, "TAILOR-SMOKE-SHELL" each time a shell
# starts on tty1, "TAILOR-MOUSE left" for each left click.
# Usage: build-smoke-iso.sh OUT.iso   (cached: same recipe + kernel = no work)
set -euo pipefail
out=$(realpath -m "${1:?usage: build-smoke-iso.sh OUT.iso}")
recipe=$(realpath "$0")
cache=$(dirname "$out")/smoke-debs
mkdir -p "$cache"

# The kernel package linux-image-amd64 currently points at.
kernel_pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$kernel_pkg" ]; then
    echo "build-smoke-iso: apt-cache knows no linux-image-amd64; run apt-get update" >&2
    exit 1
fi
key=$( { sha256sum "$recipe"; echo "$kernel_pkg"; } | sha256sum | cut -c1-32)
if [ -f "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ]; then
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$cache" && for p in "$kernel_pkg" busybox-static; do
    ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download -q "$p" >/dev/null
done)
dpkg-deb -x "$(ls "$cache/${kernel_pkg}"_*.deb | head -1)" "$work/kernel"
dpkg-deb -x "$(ls "$cache"/busybox-static_*.deb | head -1)" "$work/busybox"
kver=$(ls "$work/kernel/lib/modules" | head -1)
depmod -b "$work/kernel" "$kver"

root="$work/initramfs"
mkdir -p "$root"/{bin,dev,etc,proc,sys,tmp,root,lib/modules}
cp "$work/busybox/bin/busybox" "$root/bin/busybox"
# Every applet but `busybox` itself (linking that makes a loop; GUEST-NOTES).
for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
# USB tablet + HID + evdev so the guest reads absolute pointer events.
: > "$root/lib/modules/load-order"
for mod in xhci_pci usbhid hid_generic evdev; do
    modprobe -d "$work/kernel" -S "$kver" --show-depends "$mod" | awk '/^insmod/ {print $2}' |
    while read -r ko; do
        name=$(basename "$ko")
        grep -qx "$name" "$root/lib/modules/load-order" && continue
        cp "$ko" "$root/lib/modules/$name"
        echo "$name" >> "$root/lib/modules/load-order"
    done
done

cat > "$root/init" <<'INIT'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /lib/modules/load-order); do
    case "$m" in *.ko.xz) xz -dc "/lib/modules/$m" > /tmp/m.ko && insmod /tmp/m.ko ;; *) insmod "/lib/modules/$m" ;; esac
done
# One line per left-button press on the USB tablet. Reading its evdev node
# keeps it open, so the guest polls it and QEMU routes pointer events to it
# rather than to the PS/2 mouse.
(for i in $(seq 100); do
    for ev in /sys/class/input/event*; do
        grep -q Tablet "$ev/device/name" 2>/dev/null && tablet=/dev/input/${ev##*/}
    done
    [ -n "${tablet:-}" ] && break
    sleep 0.1
done
[ -n "${tablet:-}" ] || exit 0
# One open descriptor for the whole loop: events that arrive between two
# reads wait in its queue instead of being lost with a closed one.
exec 3<"$tablet"
# struct input_event as u16 words: 8 of time, type, code, value (2 words).
while true; do
    set -- $(dd bs=24 count=1 <&3 2>/dev/null | od -An -tu2)
    [ "${9:-}" = 1 ] && [ "${10:-}" = 272 ] && [ "${11:-}" = 1 ] && echo "TAILOR-MOUSE left" > /dev/ttyS0
done) &
echo "TAILOR-SMOKE-BOOTED" > /dev/ttyS0
# Interactive ash reads $ENV first: tell the host the shell takes input now.
echo 'echo TAILOR-SMOKE-SHELL > /dev/ttyS0' > /etc/shellrc
export PS1='smoke# ' HOME=/root ENV=/etc/shellrc
cd /root
while true; do
    setsid -c /bin/sh -i </dev/tty1 >/dev/tty1 2>&1
done
INIT
chmod +x "$root/init"

iso="$work/iso"
mkdir -p "$iso/isolinux" "$iso/boot"
cp "$work/kernel/boot/vmlinuz-$kver" "$iso/boot/vmlinuz"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$iso/boot/initrd.gz"
cp /usr/lib/ISOLINUX/isolinux.bin "$iso/isolinux/"
cp /usr/lib/syslinux/modules/bios/ldlinux.c32 "$iso/isolinux/"
cat > "$iso/isolinux/isolinux.cfg" <<'CFG'
DEFAULT smoke
PROMPT 0
TIMEOUT 0
LABEL smoke
  KERNEL /boot/vmlinuz
  APPEND initrd=/boot/initrd.gz console=tty1 console=ttyS0 vga=792 quiet loglevel=3
CFG
xorriso -as mkisofs -quiet -o "$out.tmp" -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin \
    -c isolinux/boot.cat -b isolinux/isolinux.bin -no-emul-boot -boot-load-size 4 \
    -boot-info-table -V TAILOR_SMOKE "$iso"
mv "$out.tmp" "$out"
echo "$key" > "$out.key"
echo "build-smoke-iso: built $out (kernel $kver)"
