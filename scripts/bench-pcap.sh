#!/usr/bin/env bash
# Packet analysis speed, side by side with `tcpdump -nr FILE > /dev/null`,
# on one synthetic capture of at least 200 MB (BENCHMARKS.md, "Packet
# analysis"). Usage: scripts/bench-pcap.sh [MEGABYTES] ; RUNS=5 for more runs.
# The capture is generated once into $BENCH_DIR (default: a temporary
# directory, removed at the end) and read from the page cache by both tools.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mb=${1:-256}
runs=${RUNS:-3}
target=${CARGO_TARGET_DIR:-$root/target}
if [ -z "${BENCH_DIR:-}" ]; then
    BENCH_DIR=$(mktemp -d)
    trap 'rm -rf "$BENCH_DIR"' EXIT
fi
command -v tcpdump >/dev/null || { echo "bench-pcap: tcpdump missing (apt-get install tcpdump)" >&2; exit 2; }

(cd "$root" && cargo build --release -q -p harness --example synth_capture && cargo build --release -q --bin tailor)
file=$BENCH_DIR/bench-${mb}M.pcap
[ -s "$file" ] || "$target/release/examples/synth_capture" big "$file" "$mb"
cat "$file" > /dev/null

# Median wall time of $runs runs, in milliseconds. pcap-check exits 1 on a
# leak (the capture has some on purpose); anything else is a failure.
median_ms() {
    local times=() i s e rc
    for ((i = 0; i < runs; i++)); do
        s=$(date +%s%N)
        set +e
        "$@" > /dev/null 2>&1
        rc=$?
        set -e
        e=$(date +%s%N)
        if [ "$rc" -gt 1 ]; then echo "bench-pcap: '$*' failed ($rc)" >&2; exit 2; fi
        times+=($(( (e - s) / 1000000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p"
}

size=$(stat -c %s "$file")
packets=$("$target/release/tailor" pcap-check "$file" --summary 2>/dev/null | head -1 | sed 's/.*: \([0-9]*\) packets.*/\1/' || true)
ours=$(median_ms "$target/release/tailor" pcap-check "$file" --allow 10.203.0.1:5001 --allow 10.203.0.1:5002 --allow 10.203.0.1:5003 --dhcp-server 10.203.0.1 --nic-mac 52:54:00:12:34:56)
theirs=$(median_ms tcpdump -nr "$file")
mbps() { echo "$size $1" | awk '{ printf "%.0f", ($1 / 1048576) / ($2 / 1000) }'; }
echo "capture: $file, $((size / 1048576)) MiB, $packets packets; median of $runs runs on $(nproc) cores"
echo "| tool | wall time | throughput |"
echo "| --- | ---: | ---: |"
echo "| \`tailor pcap-check\` (all four checks) | ${ours} ms | $(mbps "$ours") MiB/s |"
echo "| \`tcpdump -nr FILE > /dev/null\` | ${theirs} ms | $(mbps "$theirs") MiB/s |"
if [ "$ours" -gt "$theirs" ]; then
    echo "bench-pcap: analysis is slower than tcpdump" >&2
    exit 1
fi
