#!/usr/bin/env bash
# make test: everything CI checks, in the order that fails fastest.
#   formatting, clippy, build, helm lint/template, then one local control plane shared by the
#   unit and integration tests, a helm install into it and the non-interactive demo; at the end
#   the control plane is stopped and no process of it may be left.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
start=$SECONDS
step() { printf '\n==> %s  (%ss)\n' "$*" "$((SECONDS - start))"; }

step "setup: packages and control plane binaries"
bin_dir=$(tests/setup.sh)
# Our processes: the control plane's binaries and Pebble. Whatever already ran before this run
# (another checkout's cluster, say) is not this run's to account for.
ours() { pgrep -f "^($bin_dir/|/usr/bin/)(etcd|kube-apiserver|kube-controller-manager|pebble)" | sort || true; }
before=$(ours)
export SWITCHYARD_BIN_DIR="$bin_dir"
# kubectl and helm of the pinned release come first, as a user's would.
export PATH="$bin_dir:$PATH"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build"
cargo build --workspace --all-targets --locked

step "helm lint and template"
helm lint --strict charts/switchyard
helm template switchyard charts/switchyard --namespace switchyard-system >/dev/null
helm template switchyard charts/switchyard --namespace switchyard-system \
  --set proxy.watchNamespace=apps --set ingressClass.default=true \
  --set proxy.autoscaling.enabled=true --set proxy.service.type=NodePort >/dev/null

state="$root/.switchyard/test"
mkdir -p "$state"
step "start the local control plane (state in $state)"
setsid "${CARGO_TARGET_DIR:-$root/target}/debug/switchyard-cluster" run --state-dir "$state" >"$state/cluster.log" 2>&1 </dev/null &
cluster_pid=$!
stop_cluster() {
  if kill -0 "$cluster_pid" 2>/dev/null; then
    kill -TERM "$cluster_pid" 2>/dev/null || true
    wait "$cluster_pid" 2>/dev/null || true
  fi
}
trap stop_cluster EXIT
for _ in $(seq 1 600); do
  [[ -f "$state/cluster.ready" ]] && break
  if ! kill -0 "$cluster_pid" 2>/dev/null; then
    echo "the control plane failed to start:" >&2
    tail -n 50 "$state/cluster.log" >&2
    exit 1
  fi
  sleep 0.5
done
[[ -f "$state/cluster.ready" ]] || { echo "control plane not ready in 300s" >&2; exit 1; }
export SWITCHYARD_KUBECONFIG="$state/kubeconfig"
kubectl --kubeconfig "$SWITCHYARD_KUBECONFIG" get --raw /version

step "cargo test (unit, component and integration tests against the control plane)"
cargo test --workspace --locked 2>&1 | tee "$state/cargo-test.log"
passed=$(awk '/^test result:/ {for (i = 1; i <= NF; i++) if ($i ~ /^passed;?$/) s += $(i-1)} END {print s + 0}' "$state/cargo-test.log")
failed=$(awk '/^test result:/ {for (i = 1; i <= NF; i++) if ($i ~ /^failed;?$/) s += $(i-1)} END {print s + 0}' "$state/cargo-test.log")

step "helm install into the control plane"
tests/helm-install.sh "$SWITCHYARD_KUBECONFIG"

step "the demo, non-interactive"
DEMO_EXIT=1 tests/demo.sh

step "stop the control plane"
stop_cluster
trap - EXIT

step "make cluster / make cluster-down, as docs/local-development.md shows them"
if tests/cluster.sh status >/dev/null 2>&1; then
  echo "a control plane from make cluster is running here; leaving it alone"
else
  make --no-print-directory cluster
  kubectl --kubeconfig .switchyard/kubeconfig get ns
  make --no-print-directory cluster-down
fi

step "nothing of the control planes or Pebble may be left running"
# Test binaries hand their processes to watchdogs when they exit; give those a moment.
for _ in $(seq 1 30); do
  leftover=$(comm -13 <(echo "$before") <(ours))
  [[ -z "$leftover" ]] && break
  sleep 1
done
if [[ -n "$leftover" ]]; then
  echo "processes left running:" >&2
  ps -o pid,args -p "$(echo $leftover | tr ' ' ',')" >&2 || true
  exit 1
fi
echo "no control plane or Pebble process left"

step "all checks passed in $((SECONDS - start))s"
echo "cargo-tests: $passed passed, $failed failed"
