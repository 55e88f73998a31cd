#!/usr/bin/env bash
# make cluster / make cluster-down: the local control plane in the background.
#   tests/cluster.sh up     start it (builds what is missing), wait until ready
#   tests/cluster.sh down   stop it and everything it started
#   tests/cluster.sh status
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
state="$root/.switchyard"
pidfile="$state/cluster.pid"
log="$state/cluster.log"

running() { [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "${1:-}" in
up)
  mkdir -p "$state"
  if running && [[ -f "$state/cluster.ready" ]]; then
    echo "control plane already running (pid $(cat "$pidfile")); kubeconfig: $state/kubeconfig"
    exit 0
  fi
  bin_dir=$("$root/tests/controlplane/build.sh")
  # The same package set as make demo and make test build, so features resolve the same way
  # and nothing is compiled twice.
  (cd "$root" && cargo build --quiet --locked -p switchyard-proxy -p switchyard-operator -p switchyard-tests --bins)
  rm -f "$state/cluster.ready"
  SWITCHYARD_BIN_DIR="$bin_dir" setsid nohup "${CARGO_TARGET_DIR:-$root/target}/debug/switchyard-cluster" run \
    --state-dir "$state" >"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  for _ in $(seq 1 600); do
    if [[ -f "$state/cluster.ready" ]]; then
      echo "control plane ready; kubeconfig: $state/kubeconfig"
      echo "  try: kubectl --kubeconfig .switchyard/kubeconfig get ns"
      exit 0
    fi
    if ! running; then
      echo "the control plane failed to start; its log ($log):" >&2
      tail -n 40 "$log" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "the control plane was not ready after 300s; see $log" >&2
  exit 1
  ;;
down)
  if running; then
    pid=$(cat "$pidfile")
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "control plane (pid $pid) did not stop in 20s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "control plane stopped"
  else
    echo "no control plane running"
  fi
  rm -f "$pidfile" "$state/cluster.ready"
  ;;
status)
  if running && [[ -f "$state/cluster.ready" ]]; then
    echo "running (pid $(cat "$pidfile")):"; cat "$state/cluster.ready"
  else
    echo "not running"; exit 1
  fi
  ;;
*)
  echo "usage: $0 up|down|status" >&2
  exit 2
  ;;
esac
