#!/usr/bin/env bash
# The main job: set up the host, build the guest images the features boot
# (the smoke guest and the reference derivative),
# and run the whole feature suite with `tailor run` (extra arguments are
# passed to it, e.g. --tags @smoke or features/smoke.feature:12).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
bash tests/images/build-smoke-iso.sh .cache/smoke.iso
cargo build --release --bin tailor
target/release/tailor build-iso --out .cache/derivative/derivative.iso
exec target/release/tailor run "$@"
