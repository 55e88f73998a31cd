# shellcheck shell=bash
# Shared helpers for bench/*.sh (sourced, not run). Bash 4+; Linux (/proc).
# Everything here runs plain processes on loopback inside "$work" and records their PIDs in
# "bench_pids" so that bench_cleanup (installed as an EXIT trap) can stop them.

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$bench_dir/.." && pwd)
bench_pids=()
bench_ports=()
work=""

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# require_uint NAME VALUE: VALUE must be a non-negative integer (all knobs are validated).
require_uint() {
    [[ $2 =~ ^[0-9]+$ ]] || die "$1 must be a non-negative integer, got '$2'"
}

bench_cleanup() {
    local pid child
    local -a all=()
    for pid in "${bench_pids[@]}"; do
        all+=("$pid")
        for child in $(pgrep -P "$pid" 2>/dev/null); do all+=("$child"); done
    done
    for pid in "${all[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 30); do
        local alive=0
        for pid in "${all[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    if [[ -n $work && -d $work ]]; then
        if [[ ${KEEP_WORK:-0} == 1 ]]; then
            log "kept the work folder: $work"
        else
            rm -rf -- "$work"
        fi
    fi
}

bench_setup() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench.XXXXXX")
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Stops one process we started (and its children), then forgets it.
stop_pid() {
    local pid=$1 child
    local -a all=("$pid")
    for child in $(pgrep -P "$pid" 2>/dev/null); do all+=("$child"); done
    kill -TERM "${all[@]}" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "${all[@]}" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local -a keep=()
    for child in "${bench_pids[@]}"; do [[ $child == "$pid" ]] || keep+=("$child"); done
    bench_pids=("${keep[@]}")
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port VAR: VAR keeps its value when set (validated), else gets a free loopback port.
pick_port() {
    local -n _port=$1
    if [[ -n ${_port:-} ]]; then
        require_uint "$1" "$_port"
        port_in_use "$_port" && die "$1=$_port is already in use"
        bench_ports+=("$_port")
        return
    fi
    local candidate
    for _ in $(seq 500); do
        candidate=$((20000 + RANDOM % 40000))
        if ! port_in_use "$candidate" && [[ " ${bench_ports[*]} " != *" $candidate "* ]]; then
            _port=$candidate
            bench_ports+=("$candidate")
            return
        fi
    done
    die "no free port found"
}

as_root() {
    if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi
}

# ensure_tools CMD=PACKAGE...: installs (apt-get) the packages of missing commands.
ensure_tools() {
    local spec cmd pkg
    local -a missing=()
    for spec in "$@"; do
        cmd=${spec%%=*}
        pkg=${spec#*=}
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [[ ${#missing[@]} == 0 ]] && return
    [[ ${SKIP_INSTALL:-0} == 1 ]] && die "missing: ${missing[*]} (and SKIP_INSTALL=1)"
    log "installing: ${missing[*]}"
    as_root apt-get update -qq
    if ! DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null; then
        # nginx-light is Debian's; other releases only have nginx.
        local -a retry=()
        for pkg in "${missing[@]}"; do [[ $pkg == nginx-light ]] && retry+=(nginx) || retry+=("$pkg"); done
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${retry[@]}" >/dev/null
    fi
}

# The release proxy binary: PROXY_BIN when given, else built from this repo.
proxy_binary() {
    if [[ -n ${PROXY_BIN:-} ]]; then
        [[ -x $PROXY_BIN ]] || die "PROXY_BIN=$PROXY_BIN is not an executable"
        return
    fi
    local target=${CARGO_TARGET_DIR:-$repo_root/target}
    PROXY_BIN=$target/release/switchyard-proxy
    proxy_built=1
    if [[ ${SKIP_BUILD:-0} != 1 ]]; then
        log "cargo build --release -p switchyard-proxy"
        (cd "$repo_root" && cargo build --release --quiet -p switchyard-proxy) || die "the release build failed"
    fi
    [[ -x $PROXY_BIN ]] || die "no binary at $PROXY_BIN"
}

# make_cert DIR KIND: DIR/cert.pem and DIR/key.pem (PKCS#8) for localhost and *.bench.test.
make_cert() {
    local dir=$1 kind=$2
    local -a newkey
    case $kind in
        rsa2048) newkey=(-newkey rsa:2048) ;;
        ec256) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
        *) die "CERT_KEY must be rsa2048 or ec256, got '$kind'" ;;
    esac
    openssl req -x509 "${newkey[@]}" -nodes -days 30 -subj /CN=localhost \
        -addext "subjectAltName=DNS:localhost,DNS:plain.test,DNS:*.bench.test" \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null || die "openssl req failed"
}

# The static upstream: nginx, one worker, a fixed small body on each given port
# (start_upstream DIR BODY PORT [BODY PORT]...), stub_status at /__status on the first.
start_upstream() {
    local dir=$1
    shift
    mkdir -p "$dir"
    {
        printf 'worker_processes 1;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/error.log warn;\n' "$dir" "$dir"
        printf 'events { worker_connections 8192; }\n'
        printf 'http {\n  access_log off;\n  keepalive_requests 10000000;\n  keepalive_timeout 300s;\n'
        printf '  client_body_temp_path %s/tmp; proxy_temp_path %s/tmp; fastcgi_temp_path %s/tmp; uwsgi_temp_path %s/tmp; scgi_temp_path %s/tmp;\n' "$dir" "$dir" "$dir" "$dir" "$dir"
        local first=1
        while [[ $# -ge 2 ]]; do
            printf '  server {\n    listen 127.0.0.1:%s;\n' "$2"
            [[ $first == 1 ]] && printf '    location = /__status { stub_status; }\n'
            printf '    location / { default_type text/plain; return 200 "%s\\n"; }\n  }\n' "$1"
            first=0
            shift 2
        done
        printf '}\n'
    } >"$dir/nginx.conf"
    mkdir -p "$dir/tmp"
    nginx -t -q -c "$dir/nginx.conf" -p "$dir" 2>"$dir/check.log" || die "upstream nginx config: $(cat "$dir/check.log")"
    nginx -c "$dir/nginx.conf" -p "$dir" 2>>"$dir/error.log" &
    bench_pids+=("$!")
    upstream_pid=$!
}

# wait_for_body URL HOST EXPECTED [curl args...]: until a GET answers 200 with that body.
wait_for_body() {
    local url=$1 host=$2 expected=$3
    shift 3
    local body
    for _ in $(seq 300); do
        body=$(curl -sS --max-time 2 -H "Host: $host" "$@" "$url" 2>/dev/null) && [[ $body == "$expected" ]] && return 0
        sleep 0.1
    done
    return 1
}

# CPU clock ticks (utime + stime) of the given PIDs and their direct children.
cpu_ticks() {
    local total=0 pid child stat
    local -a pids=() fields
    for pid in "$@"; do
        pids+=("$pid")
        for child in $(pgrep -P "$pid" 2>/dev/null); do pids+=("$child"); done
    done
    for pid in "${pids[@]}"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        read -ra fields <<<"${stat##*) }"
        total=$((total + fields[11] + fields[12]))
    done
    echo "$total"
}

# status_kib PID FIELD: VmHWM / VmRSS (KiB) of one process.
status_kib() {
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

mib_of() { awk -v k="${1:-0}" 'BEGIN { printf "%.1f", k / 1024 }'; }

# Upstream connections accepted so far (nginx stub_status).
upstream_accepts() {
    curl -sS --max-time 2 "http://127.0.0.1:$1/__status" | awk 'NR == 3 { print $1 }'
}

# The Ingress/Service/EndpointSlice shape shared by live-change.sh and proxy/benches/compile.rs:
# write_apps DIR N TLS_EVERY ENDPOINT_PORT CERT KEY: files of 100 Ingresses, each with one host
# (app-I.bench.test), 3 paths, a Service, an EndpointSlice with 3 endpoints (10.x addresses,
# never contacted) and, every TLS_EVERY-th, a TLS Secret.
write_apps() {
    local dir=$1 n=$2 tls_every=$3 port=$4 cert=$5 key=$6
    awk -v n="$n" -v every="$tls_every" -v port="$port" -v dir="$dir" \
        -v certfile="$cert" -v keyfile="$key" '
        BEGIN {
            while ((getline line < certfile) > 0) crt = crt "    " line "\n"
            while ((getline line < keyfile) > 0) k = k "    " line "\n"
            for (i = 0; i < n; i++) {
                file = sprintf("%s/%05d-apps.yaml", dir, int(i / 100) + 1)
                ns = "team-" int(i / 100); name = "app-" i; host = name ".bench.test"
                a = int(i / 250) % 250; b = i % 250
                tls = every > 0 && i % every == 0
                if (tls) {
                    printf "---\napiVersion: v1\nkind: Secret\nmetadata: {name: %s-tls, namespace: %s}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n%s  tls.key: |\n%s", name, ns, crt, k > file
                }
                printf "---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\nspec: {ports: [{name: http, port: 80}]}\n", name, ns > file
                printf "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: %s-abcde, namespace: %s, labels: {kubernetes.io/service-name: %s}}\naddressType: IPv4\nports: [{name: http, port: %d}]\n", name, ns, name, port > file
                printf "endpoints: [{addresses: [10.1.%d.%d], conditions: {ready: true}}, {addresses: [10.2.%d.%d], conditions: {ready: true}}, {addresses: [10.3.%d.%d], conditions: {ready: true}}]\n", a, b, a, b, a, b > file
                printf "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: %s, namespace: %s}\nspec:\n  ingressClassName: switchyard\n", name, ns > file
                if (tls) printf "  tls: [{hosts: [%s], secretName: %s-tls}]\n", host, name > file
                printf "  rules:\n  - host: %s\n    http:\n      paths:\n", host > file
                printf "      - {path: /, pathType: Prefix, backend: {service: {name: %s, port: {name: http}}}}\n", name > file
                printf "      - {path: /api/v1, pathType: Prefix, backend: {service: {name: %s, port: {number: 80}}}}\n", name > file
                printf "      - {path: /healthz, pathType: Exact, backend: {service: {name: %s, port: {name: http}}}}\n", name > file
                if ((i + 1) % 100 == 0) close(file)
            }
        }'
}

ingress_class_yaml() {
    printf 'apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: switchyard}\nspec: {controller: switchyard.dev/ingress-controller}\n'
}

# Indents a PEM file for a YAML block scalar.
indent_pem() { sed 's/^/    /' "$1"; }

# access_log_args LOG(on|off): sets sy_log_args (flags for switchyard-proxy) and sy_log_note,
# from what this build's --help offers.
access_log_args() {
    local want=$1 help
    help=$("$PROXY_BIN" --help 2>&1 || true)
    sy_log_args=()
    if [[ $help == *"--access-log <BOOL>"* ]]; then
        sy_log_args=("--access-log=$([[ $want == on ]] && echo true || echo false)")
        sy_log_note="switchyard --access-log=$([[ $want == on ]] && echo true || echo false)"
    elif [[ $help == *"--no-access-log"* ]]; then
        [[ $want == off ]] && sy_log_args=(--no-access-log)
        sy_log_note="switchyard ${sy_log_args[*]:-default (on)}"
    elif [[ $help == *"access-log"* || $help == *"access log"* ]]; then
        sy_log_note="switchyard: access-log flag of unknown form, left at its default"
    else
        sy_log_note="switchyard has no access log in this build"
        sy_has_no_log=1
    fi
}
