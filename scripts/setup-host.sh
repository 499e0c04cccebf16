#!/usr/bin/env bash
# Install everything Tailor needs on a fresh Debian 12 host (run as root).
# Idempotent: a second run only checks.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t packages < <(grep -v '^\s*#' "$here/debian-packages.txt" | awk 'NF {print $1}')
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Debian 12's qemu-system-x86 (7.2) conflicts with a backported qemu-utils;
# take both from bookworm.
qemu_utils=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
case "$qemu_utils" in
    *bpo*|"") missing+=("qemu-utils/bookworm") ;;
esac
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-host: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --allow-downgrades --no-install-recommends "${missing[@]}" >/dev/null
fi
# The screen-matching benchmark also compares with OpenCV; only that needs
# Python packages: TAILOR_BENCH=1 installs them.
if [ "${TAILOR_BENCH:-}" = 1 ] && [ -f "$here/python-requirements.txt" ]; then
    python3 -m pip install -q -r "$here/python-requirements.txt"
fi
echo "setup-host: ok"
