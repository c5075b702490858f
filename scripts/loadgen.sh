#!/usr/bin/env bash
# Runs one kubecache-loadgen scenario the way docs/PERFORMANCE.md measures it: builds
# kubecache and the loadgen (release), starts a fresh etcd and kubecache on it (loopback,
# free ports, temporary data dir), and runs the scenario with --server-pid for both and the
# same clients against etcd as the same-run baseline. Stops what it started on exit.
#
#   scripts/loadgen.sh [--debug] [--memory|--etcd] [--no-baseline] [--http2] SCENARIO [ARGS...]
#   scripts/loadgen.sh fanout --nodes 5000 --informers 10 --rate 500 --duration 60
#
# --memory runs kubecache on its embedded store (etcd is then only started for the baseline).
# The crds scenario runs on the embedded store with no etcd baseline (ConfigMaps in the same
# run are its baseline) unless --etcd: then kubecache runs on a fresh etcd, still without
# the baseline.
# The cluster scenario runs kubecache on etcd (or --memory) with no etcd baseline: bindings,
# status patches and field-selected watches have no etcd equivalent.
# The admission scenario has no etcd baseline either: its no-webhook phase is its baseline.
# The report goes to target/loadgen/<scenario>-<UTC time>.{txt,json,html} (or $LOADGEN_OUT).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
storage=etcd
baseline=1
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --debug) profile=debug; shift ;;
    --memory) storage=memory; shift ;;
    --etcd) storage=etcd-forced; shift ;;
    --no-baseline) baseline=0; shift ;;
    --http2) extra+=(--http2); shift ;;
    *) break ;;
  esac
done
[[ $# -ge 1 ]] || { sed -n 2,15p "$0"; exit 2; }
scenario="$1"
if [[ $scenario == crds ]]; then
  baseline=0
  [[ $storage == etcd-forced ]] || storage=memory
fi
[[ $scenario == cluster ]] && baseline=0
[[ $scenario == admission ]] && baseline=0
[[ $storage == etcd-forced ]] && storage=etcd

# protoc (the build) and etcd (the store and the baseline), installed when missing.
command -v protoc >/dev/null && command -v etcd >/dev/null || scripts/install-deps.sh
build=(-q)
[[ $profile == release ]] && build+=(--release)
cargo build "${build[@]}" -p kubecache-server --bin kubecache
cargo build "${build[@]}" -p kubecache-loadgen
# 10,000 watch connections need as many descriptors on both sides.
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d /tmp/kubecache-loadgen.XXXXXX)
pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap stop EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # DESCRIPTION COMMAND...: up to 30 s
  local what=$1; shift
  for _ in $(seq 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "loadgen.sh: $what did not come up; logs in $work" >&2
  trap - EXIT
  exit 1
}

pid_args=()
etcd_url=
if [[ $storage == etcd || $baseline == 1 ]]; then
  client_port=$(free_port)
  peer_port=$(free_port)
  etcd_url="http://127.0.0.1:$client_port"
  etcd --name loadgen --data-dir "$work/etcd" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "loadgen=http://127.0.0.1:$peer_port" \
    --quota-backend-bytes 8589934592 >"$work/etcd.log" 2>&1 &
  pids+=($!)
  etcd_pid=$!
  pid_args+=(--server-pid "$!")
  wait_for etcd curl -sf "$etcd_url/health"
fi

port=$(free_port)
storage_args=()
[[ $storage == etcd ]] && storage_args=(--etcd-servers "$etcd_url")
"target/$profile/kubecache" serve --insecure-port "$port" --secure-port 0 "${storage_args[@]}" \
  >"$work/kubecache.out" 2>"$work/kubecache.log" &
pids+=($!)
kubecache_pid=$!
pid_args=(--server-pid "$!" "${pid_args[@]}")
wait_for kubecache grep -q serving "$work/kubecache.out"

baseline_args=()
[[ $baseline == 1 ]] && baseline_args=(--baseline etcd --etcd-servers "$etcd_url")
out=${LOADGEN_OUT:-target/loadgen/$scenario-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$(dirname "$out")"
{
  echo "# $(date -u +%FT%TZ) nproc=$(nproc) kernel=$(uname -r) profile=$profile storage=$storage"
  echo "# kubecache-loadgen $(printf '%q ' "${extra[@]}" "$@")"
  # Which --server-pid is which (scripts/loadgen-table.py reads this line).
  echo "# pids kubecache=$kubecache_pid etcd=${etcd_pid:-none}"
} >"$out.txt"
"target/$profile/kubecache-loadgen" --server "http://127.0.0.1:$port" "${pid_args[@]}" \
  "${baseline_args[@]}" "${extra[@]}" --json-out "$out.json" --html-out "$out.html" "$@" \
  | tee -a "$out.txt"
echo "loadgen.sh: report in $out.{txt,json,html}"
