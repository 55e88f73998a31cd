#!/usr/bin/env bash
# Installs what `make demo` and `make test` need on a fresh machine, and nothing twice:
# Debian packages (Pebble, curl), the Rust components (rustfmt, clippy), and the control plane
# binaries built from pinned Go modules (tests/controlplane/build.sh, cached outside target/).
# Prints the control plane's bin directory on stdout.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { echo "[setup] $*" >&2; }

for tool in cargo go; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    log "$tool is required and not on PATH (Rust: https://rustup.rs, Go: https://go.dev/dl/)"
    exit 1
  fi
done

missing=()
command -v pebble >/dev/null 2>&1 || missing+=(pebble)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v flock >/dev/null 2>&1 || missing+=(util-linux)
command -v setsid >/dev/null 2>&1 || missing+=(util-linux)
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
fi

if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
      log "installing the Rust component $component"
      rustup component add "$component" >&2
    fi
  done
fi

"$root/tests/controlplane/build.sh"
