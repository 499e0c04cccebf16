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

# Median wall time, CPU time (user + system) and peak resident memory of
# $runs runs: "wall_ms cpu_ms rss_kb". pcap-check exits 1 on a leak (the
# capture has some on purpose); anything else is a failure.
measure() {
    local walls=() cpus=() rsss=() i rc out
    out=$(mktemp)
    for ((i = 0; i < runs; i++)); do
        set +e
        /usr/bin/time -f "%e %U %S %M" -o "$out" "$@" > /dev/null 2>&1
        rc=$?
        set -e
        if [ "$rc" -gt 1 ]; then echo "bench-pcap: '$*' failed ($rc)" >&2; rm -f "$out"; exit 2; fi
        read -r e u s m < <(tail -1 "$out")
        walls+=("$(awk -v e="$e" 'BEGIN { printf "%d", e * 1000 }')")
        cpus+=("$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%d", (u + s) * 1000 }')")
        rsss+=("$m")
    done
    rm -f "$out"
    med() { printf '%s\n' "$@" | sort -n | sed -n "$(( (runs + 1) / 2 ))p"; }
    echo "$(med "${walls[@]}") $(med "${cpus[@]}") $(med "${rsss[@]}")"
}

[ -x /usr/bin/time ] || { echo "bench-pcap: /usr/bin/time missing (apt-get install time)" >&2; exit 2; }
size=$(stat -c %s "$file")
packets=$("$target/release/tailor" pcap-check "$file" --summary 2>/dev/null | head -1 | sed 's/.*: \([0-9]*\) packets.*/\1/' || true)
read -r ours ours_cpu ours_rss < <(measure "$target/release/tailor" pcap-check "$file" --allow 10.203.0.1:5001 --allow 10.203.0.1:5002 --allow 10.203.0.1:5003 --dhcp-server 10.203.0.1 --nic-mac 52:54:00:12:34:56)
read -r theirs theirs_cpu theirs_rss < <(measure tcpdump -nr "$file")
mbps() { echo "$size $1" | awk '{ printf "%.0f", ($1 / 1048576) / (($2 > 0 ? $2 : 1) / 1000) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / (b > 0 ? b : 1) }'; }
echo "capture: $file, $((size / 1048576)) MiB, $packets packets; median of $runs runs on $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| tool | wall time | CPU time | throughput (wall) | peak RSS |"
echo "| --- | ---: | ---: | ---: | ---: |"
echo "| \`tailor pcap-check\` (all four checks, MAC search) | ${ours} ms | ${ours_cpu} ms | $(mbps "$ours") MiB/s | $((ours_rss / 1024)) MiB |"
echo "| \`tcpdump -nr FILE > /dev/null\` | ${theirs} ms | ${theirs_cpu} ms | $(mbps "$theirs") MiB/s | $((theirs_rss / 1024)) MiB |"
echo "ratio: $(ratio "$theirs" "$ours")x tcpdump's wall time, $(ratio "$theirs_cpu" "$ours_cpu")x its CPU time"
if [ "$ours" -gt "$theirs" ]; then
    echo "bench-pcap: analysis is slower than tcpdump" >&2
    exit 1
fi
