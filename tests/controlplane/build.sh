#!/usr/bin/env bash
# Builds the local control plane's binaries once and caches them outside target/.
#
#   tests/controlplane/build.sh            build what is missing, print the bin directory
#   tests/controlplane/build.sh --print    print the bin directory, build nothing
#
# go.mod and go.sum beside this script are the pin: the cache directory is keyed on the
# Kubernetes release and a hash of both, so a second run never rebuilds and a new pin never
# reuses stale binaries. Pebble comes from Debian's `pebble` package (installed when missing).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

k8s_version=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' go.mod)
if [[ -z "$k8s_version" ]]; then
  echo "build.sh: go.mod does not require k8s.io/kubernetes" >&2
  exit 1
fi
# The build recipe (this script) is part of the key: a change of flags rebuilds.
key=$(cat go.mod go.sum etcd/main.go build.sh | sha256sum | cut -c1-12)
cache_root=${SWITCHYARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/switchyard}
bin="$cache_root/controlplane-$k8s_version-$key/bin"

if [[ "${1:-}" == "--print" ]]; then
  echo "$bin"
  exit 0
fi

log() { echo "[controlplane] $*" >&2; }

mkdir -p "$bin"
# Two make targets may start at once; the second waits for the first build.
exec 9>"$bin/.lock"
flock 9

if ! command -v go >/dev/null 2>&1; then
  log "Go is required to build the control plane (https://go.dev/dl/); it is not on PATH"
  exit 1
fi

minor=${k8s_version#v1.}
minor=${minor%%.*}
# Without these the binaries report v0.0.0 and helm refuses charts with a kubeVersion range.
version_pkg_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_pkg_flags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  version_pkg_flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# helm's offline default (for `helm template` and `helm lint`) is Kubernetes 1.20 unless told.
helm_flags=""
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  helm_flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
done

build() {
  local name=$1 pkg=$2 extra_flags=${3:-}
  if [[ -x "$bin/$name" ]]; then
    return 0
  fi
  log "building $name ($pkg) — a one-time step, cached in $bin"
  local start=$SECONDS
  go build -trimpath -ldflags "-s -w$version_pkg_flags$extra_flags" -o "$bin/$name.tmp" "$pkg"
  mv "$bin/$name.tmp" "$bin/$name"
  log "built $name in $((SECONDS - start))s"
}

build etcd ./etcd
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build helm helm.sh/helm/v3/cmd/helm "$helm_flags"
build kubectl k8s.io/kubernetes/cmd/kubectl

# Look Pebble up on PATH without our own bin directory (callers put it first on PATH, and a
# link to itself would be the result).
system_path=$(tr ':' '\n' <<<"$PATH" | grep -vxF "$bin" | paste -sd: -)
find_system() { PATH="$system_path" command -v "$1" 2>/dev/null; }
if ! find_system pebble >/dev/null || ! find_system pebble-challtestsrv >/dev/null; then
  log "installing Debian's pebble package (ACME test server)"
  if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq pebble >&2
fi
ln -sfn "$(readlink -f "$(find_system pebble)")" "$bin/pebble"
ln -sfn "$(readlink -f "$(find_system pebble-challtestsrv)")" "$bin/pebble-challtestsrv"

echo "$bin"
