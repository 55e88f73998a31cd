#!/usr/bin/env bash
# Installs the chart into a real apiserver (no --wait: there is no kubelet, so no pod runs),
# checks that every object it renders was accepted, and uninstalls it again.
#   tests/helm-install.sh KUBECONFIG
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kubeconfig=${1:?usage: $0 KUBECONFIG}
release=switchyard-helm-test
ns=switchyard-helm-test
k() { kubectl --kubeconfig "$kubeconfig" "$@"; }
h() { helm --kubeconfig "$kubeconfig" "$@"; }

h uninstall "$release" -n "$ns" --ignore-not-found >/dev/null 2>&1 || true
# A class name of its own, so the install never collides with an IngressClass a test made.
set_flags=(--set "ingressClass.name=$release")
h install "$release" "$root/charts/switchyard" -n "$ns" --create-namespace "${set_flags[@]}"

rendered=$(h get manifest "$release" -n "$ns")
expected=$(grep -c '^kind:' <<<"$rendered")
missing=0
while read -r kind name; do
  [[ -z "$kind" ]] && continue
  if ! k get "$kind" "$name" -n "$ns" >/dev/null 2>&1; then
    echo "not in the cluster: $kind/$name" >&2
    missing=1
  fi
done < <(awk '/^kind:/{kind=$2} /^  name:/{if(kind!=""){print kind, $2; kind=""}}' <<<"$rendered" | tr -d '"')
((missing == 0)) || { echo "helm install left objects out" >&2; exit 1; }
echo "helm install: all $expected rendered objects are in the cluster"
k get deployments,services,ingressclass -n "$ns" -l "app.kubernetes.io/instance=$release"

h uninstall "$release" -n "$ns" --wait --timeout 60s
k delete namespace "$ns" --wait=false >/dev/null
echo "helm uninstall: done"
