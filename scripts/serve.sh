#!/usr/bin/env bash
# Builds and starts kubecache on its embedded store (in memory), on http://127.0.0.1:8080.
# Extra arguments go to `kubecache serve` (e.g. --data-dir /tmp/kc, --insecure-port 9090).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --build-only
exec cargo run --release -q -p kubecache-server -- serve "$@"
