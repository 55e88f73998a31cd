#!/usr/bin/env bash
# make demo: a local control plane, the operator, the proxy and two demo backends, with an
# Ingress that routes between them; then requests through the proxy.
#
#   make demo               runs until Ctrl-C, printing what to try
#   DEMO_EXIT=1 make demo   runs the same scenario, checks what it shows, and exits
#
# SWITCHYARD_KUBECONFIG=path reuses a running control plane (make test does); otherwise the one
# of `make cluster` is used, started here when it is not running (and stopped again at the end).
# Ports: DEMO_HTTP_PORT (18080), DEMO_HTTPS_PORT (18443), DEMO_METRICS_PORT (10254),
# DEMO_OPERATOR_PORT (19090), DEMO_SOLVER_PORT (18089); the backends listen on 18081 (blue) and 18082 (green), the ports
# examples/demo/services.yaml names.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

http_port=${DEMO_HTTP_PORT:-18080}
https_port=${DEMO_HTTPS_PORT:-18443}
metrics_port=${DEMO_METRICS_PORT:-10254}
operator_port=${DEMO_OPERATOR_PORT:-19090}
solver_port=${DEMO_SOLVER_PORT:-18089}
blue_port=18081
green_port=18082
exit_after=${DEMO_EXIT:-}
ns=switchyard-demo

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { echo "demo: $*" >&2; exit 1; }

say "Installing what is missing and building (the first run builds the control plane: minutes)"
bin_dir=$(tests/setup.sh)
export SWITCHYARD_BIN_DIR="$bin_dir"
export PATH="$bin_dir:$PATH"
cargo build --quiet --locked -p switchyard-proxy -p switchyard-operator -p switchyard-tests --bins
target="${CARGO_TARGET_DIR:-$root/target}/debug"

state="$root/.switchyard/demo"
rm -rf "$state"
mkdir -p "$state"
pids=()
started_cluster=""
cleanup() {
  set +e
  say "Stopping the demo"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  if [[ -n "$started_cluster" ]]; then
    tests/cluster.sh down
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n "${SWITCHYARD_KUBECONFIG:-}" ]]; then
  kubeconfig=$SWITCHYARD_KUBECONFIG
  say "Using the control plane of $kubeconfig"
else
  kubeconfig="$root/.switchyard/kubeconfig"
  if ! tests/cluster.sh status >/dev/null 2>&1; then
    say "Starting the local control plane (etcd, kube-apiserver, kube-controller-manager)"
    tests/cluster.sh up
    started_cluster=1
  else
    say "Using the running local control plane (make cluster)"
  fi
fi
k() { kubectl --kubeconfig "$kubeconfig" "$@"; }

wait_http() { # url what
  for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  fail "$2 did not answer at $1 (logs in $state)"
}

say "Starting two demo backends, blue and green (small HTTP servers of ours on 127.0.0.1:$blue_port and :$green_port)"
for colour in blue green; do
  port_var="${colour}_port"
  "$target/demo-backend" --name "$colour" --listen "127.0.0.1:${!port_var}" \
    >"$state/$colour.log" 2>&1 &
  pids+=($!)
done
for colour in blue green; do
  port_var="${colour}_port"
  for _ in $(seq 1 50); do curl -fsS -o /dev/null "http://127.0.0.1:${!port_var}/" 2>/dev/null && break; sleep 0.1; done
  curl -fsS -o /dev/null "http://127.0.0.1:${!port_var}/" || fail "the $colour backend did not start (see $state/$colour.log; is port ${!port_var} taken? set DEMO_${colour^^}_PORT)"
done

# There is no kubelet, so no pod ever backs a Service here, and the apiserver refuses
# EndpointSlices that point at loopback. The Services are therefore of type ExternalName
# (localhost), which the proxy resolves and connects to like any external backend.
say "Applying the namespace $ns, the Services blue and green (ExternalName: localhost), the IngressClass and an Ingress"
k create namespace "$ns" --dry-run=client -o yaml | k apply -f - >/dev/null
# A second run on the same control plane starts from the same state as the first.
k -n "$ns" delete --ignore-not-found --wait ingress/demo rolloutroute.switchyard.dev/shop \
  certificate.switchyard.dev/demo issuer.switchyard.dev/pebble secret/demo-tls >/dev/null
k apply -n "$ns" -f examples/demo/services.yaml
cat examples/demo/ingress.yaml
k apply -n "$ns" -f examples/demo/ingress.yaml

say "Starting the proxy: switchyard-proxy --kubeconfig … (HTTP on 127.0.0.1:$http_port)"
RUST_LOG=${RUST_LOG:-info} "$target/switchyard-proxy" --kubeconfig "$kubeconfig" \
  --http-addr "127.0.0.1:$http_port" --https-addr "127.0.0.1:$https_port" \
  --metrics-addr "127.0.0.1:$metrics_port" >"$state/proxy.log" 2>&1 &
pids+=($!)
say "Starting the operator: switchyard-operator --kubeconfig …"
RUST_LOG=${RUST_LOG:-info} POD_NAMESPACE=$ns "$target/switchyard-operator" --kubeconfig "$kubeconfig" \
  --metrics-addr "127.0.0.1:$operator_port" --acme-solver-addr "127.0.0.1:$solver_port" \
  --proxy-metrics-url "http://127.0.0.1:$metrics_port/metrics" \
  --proxy-http-url "http://127.0.0.1:$http_port" >"$state/operator.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$metrics_port/readyz" "the proxy"
wait_http "http://127.0.0.1:$operator_port/readyz" "the operator"

say "Requests through the proxy"
show() { # expected-backend curl-args...
  local expected=$1; shift
  echo "\$ curl ${*@Q}"
  local out
  out=$(curl -sS "$@") || fail "curl $* failed"
  echo "$out" | sed 's/^/  /'
  if [[ -n "$expected" ]] && ! grep -q "^$expected:" <<<"$out"; then
    fail "expected the $expected backend to answer curl $*"
  fi
}
# The proxy compiles the route table from watches; give the first table a moment to appear.
for _ in $(seq 1 50); do
  curl -s -H 'Host: demo.switchyard.local' "http://127.0.0.1:$http_port/" | grep -q '^blue:' && break
  sleep 0.2
done
show blue -H 'Host: demo.switchyard.local' "http://127.0.0.1:$http_port/"
show green -H 'Host: demo.switchyard.local' "http://127.0.0.1:$http_port/green/hello?x=1"
show green -H 'Host: green.switchyard.local' "http://127.0.0.1:$http_port/anything"
echo "\$ curl -i -H 'Host: unknown.example' http://127.0.0.1:$http_port/"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: unknown.example' "http://127.0.0.1:$http_port/")
echo "  HTTP $code (no Ingress names this host: the default backend answers)"
[[ "$code" == 404 ]] || fail "expected 404 for an unknown host, got $code"

say "Live change: pointing / at green instead of blue (no reload, no restart)"
k -n "$ns" patch ingress demo --type=json \
  -p '[{"op":"replace","path":"/spec/rules/0/http/paths/0/backend/service","value":{"name":"green","port":{"name":"http"}}}]'
for _ in $(seq 1 50); do
  curl -s -H 'Host: demo.switchyard.local' "http://127.0.0.1:$http_port/" | grep -q '^green:' && break
  sleep 0.2
done
show green -H 'Host: demo.switchyard.local' "http://127.0.0.1:$http_port/"
k -n "$ns" patch ingress demo --type=json \
  -p '[{"op":"replace","path":"/spec/rules/0/http/paths/0/backend/service","value":{"name":"blue","port":{"number":18081}}}]' >/dev/null

say "A canary rollout: RolloutRoute shop (examples/demo/rollout.yaml), served by blue"
export PATH="$target:$PATH" # kubectl switchyard: the plugin binary kubectl-switchyard
k apply -n "$ns" -f examples/demo/rollout.yaml
k -n "$ns" wait --for=condition=Ready rr/shop --timeout=60s
for _ in $(seq 1 50); do
  curl -s -H 'Host: shop.switchyard.local' "http://127.0.0.1:$http_port/" | grep -q '^blue:' && break
  sleep 0.2
done
show blue -H 'Host: shop.switchyard.local' "http://127.0.0.1:$http_port/"

split() { # requests: prints how many of them blue and green answered
  local blue=0 green=0 i
  for i in $(seq 1 "$1"); do
    case $(curl -s -H 'Host: shop.switchyard.local' "http://127.0.0.1:$http_port/") in
      blue:*) blue=$((blue + 1)) ;;
      green:*) green=$((green + 1)) ;;
    esac
  done
  echo "$blue $green"
}
say "Starting the rollout: spec.backend -> green (step 1: 20 %, then a pause until promote)"
k -n "$ns" patch rr shop --type merge -p '{"spec":{"backend":{"service":"green","port":18082}}}'
k -n "$ns" wait --for=condition=Paused rr/shop --timeout=60s
for _ in $(seq 1 50); do
  curl -s -H 'Host: shop.switchyard.local' -H 'X-Canary: true' "http://127.0.0.1:$http_port/" | grep -q '^green:' && break
  sleep 0.2
done
show green -H 'Host: shop.switchyard.local' -H 'X-Canary: true' "http://127.0.0.1:$http_port/"
read -r blue green < <(split 50)
echo "  50 requests: blue $blue, green $green"
(( green >= 5 && green <= 15 )) || fail "expected about 20 % of 50 requests on green, got $green"
k -n "$ns" get rr shop

say "kubectl switchyard promote shop (step 3: 50 %, three seconds, then green serves everything)"
kubectl switchyard --kubeconfig "$kubeconfig" -n "$ns" promote shop
k -n "$ns" wait --for=condition=Promoted rr/shop --timeout=60s
for _ in $(seq 1 50); do
  [[ $(split 10) == "0 10" ]] && break
  sleep 0.2
done
read -r blue green < <(split 20)
echo "  20 requests: blue $blue, green $green"
(( blue == 0 )) || fail "expected green to serve everything after the rollout, blue answered $blue"
k -n "$ns" get rr shop

say "A certificate from a local ACME server (Pebble), validated over HTTP-01 through the proxy"
"$target/switchyard-cluster" pebble --state-dir "$state" --http01-port "$http_port" \
  >"$state/pebble.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [[ -s "$state/pebble/issuing-root.pem" ]] && break; sleep 0.2; done
[[ -s "$state/pebble/issuing-root.pem" ]] || fail "Pebble did not start (see $state/pebble.log)"
cat >"$state/certificate.yaml" <<YAML
apiVersion: switchyard.dev/v1alpha1
kind: Issuer
metadata: {name: pebble}
spec:
  acme:
    server: $(cat "$state/pebble/directory-url")
    email: demo@switchyard.local
    privateKeySecretRef: {name: pebble-account}
    caBundle: $(base64 -w0 <"$state/pebble/server-ca.pem")
    solvers: [{http01: {ingress: {ingressClassName: switchyard}}}]
---
apiVersion: switchyard.dev/v1alpha1
kind: Certificate
metadata: {name: demo}
spec:
  secretName: demo-tls
  dnsNames: [demo.switchyard.local]
  issuerRef: {kind: Issuer, name: pebble}
YAML
sed -n '/^kind: Certificate/,$p' "$state/certificate.yaml"
k apply -n "$ns" -f "$state/certificate.yaml"
k -n "$ns" wait --for=condition=Ready certificate.switchyard.dev/demo --timeout=120s
k -n "$ns" get swcert demo
k -n "$ns" patch ingress demo --type=merge \
  -p '{"spec":{"tls":[{"hosts":["demo.switchyard.local"],"secretName":"demo-tls"}]}}'
https=(--cacert "$state/pebble/issuing-root.pem" --resolve "demo.switchyard.local:$https_port:127.0.0.1")
for _ in $(seq 1 50); do
  curl -fsS "${https[@]}" "https://demo.switchyard.local:$https_port/" >/dev/null 2>&1 && break
  sleep 0.2
done
show blue "${https[@]}" "https://demo.switchyard.local:$https_port/"
echo "  (the certificate verifies against Pebble's root: curl checked it)"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: demo.switchyard.local' "http://127.0.0.1:$http_port/")
echo "  plain HTTP now answers $code (to HTTPS, as ingress-nginx does for hosts with TLS)"
[[ "$code" == 308 ]] || fail "expected a 308 to HTTPS, got $code"

if [[ -n "$exit_after" ]]; then
  say "Demo checks passed"
  exit 0
fi

cat <<EOF

The demo is running. Try, in another terminal:

  kubectl --kubeconfig $kubeconfig -n $ns get ingress,svc
  kubectl --kubeconfig $kubeconfig get switchyard -A
  curl -H 'Host: demo.switchyard.local' http://127.0.0.1:$http_port/
  curl -H 'Host: demo.switchyard.local' http://127.0.0.1:$http_port/green/
  curl --cacert $state/pebble/issuing-root.pem --resolve demo.switchyard.local:$https_port:127.0.0.1 https://demo.switchyard.local:$https_port/
  kubectl --kubeconfig $kubeconfig -n $ns get swcert,swissuer     # the certificate and its issuer
  curl http://127.0.0.1:$metrics_port/metrics | grep nginx_ingress_controller_requests
  kubectl --kubeconfig $kubeconfig -n $ns edit ingress demo     # changes apply live
  kubectl --kubeconfig $kubeconfig -n $ns get rr shop            # the rollout (now on green)
  PATH=$target:\$PATH kubectl switchyard --kubeconfig $kubeconfig -n $ns status shop

Logs: $state/{proxy,operator,blue,green,pebble}.log
Press Ctrl-C to stop everything.
EOF
while true; do
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || fail "a demo process ($pid) exited; logs in $state"
  done
  sleep 1
done
