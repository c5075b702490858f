#!/usr/bin/env bash
# Runs the measurement series of docs/PERFORMANCE.md with scripts/loadgen.sh (each run on a
# fresh etcd and kubecache) and prints them as one Markdown table (scripts/loadgen-table.py).
#
#   scripts/loadgen-series.sh targets    # the issue's figures, each beside its etcd baseline
#   scripts/loadgen-series.sh watchers   # fanout cost at 1,000 / 5,000 / 10,000 kubelets
#   scripts/loadgen-series.sh objects    # LIST cost at 10,000 / 50,000 / 100,000 pods
#
# Reports go to target/loadgen/<series>-<UTC time>/ (one .txt/.json/.html per run).
set -euo pipefail
cd "$(dirname "$0")/.."

series=${1:-}
dir=target/loadgen/$series-$(date -u +%Y%m%dT%H%M%SZ)
n=0
run() { # LOADGEN.SH ARGS...
  n=$((n + 1))
  mkdir -p "$dir"
  LOADGEN_OUT="$dir/$(printf %02d "$n")-$(echo "$*" | tr -c 'A-Za-z0-9-' _ | cut -c1-60)" \
    scripts/loadgen.sh "$@" >/dev/null
}

case "$series" in
  targets)
    run fanout --nodes 5000 --informers 10 --rate 500 --duration 60 --timeout 120
    run fanout --nodes 10000 --informers 10 --rate 1000 --duration 60 --timeout 120
    run list --objects 50000 --clients 4 --rv 0 --duration 30
    run list --objects 50000 --clients 4 --rv "" --duration 30
    run writes --concurrency 32 --duration 30
    run relist-storm --clients 1000
    ;;
  watchers)
    for nodes in 1000 5000 10000; do
      run --no-baseline fanout --nodes "$nodes" --informers 10 --rate 500 --duration 30
    done
    ;;
  objects)
    for objects in 10000 50000 100000; do
      run --no-baseline list --objects "$objects" --clients 4 --rv 0 --duration 20
    done
    ;;
  *)
    sed -n 2,9p "$0"
    exit 2
    ;;
esac
scripts/loadgen-table.py "$dir"/*.json
