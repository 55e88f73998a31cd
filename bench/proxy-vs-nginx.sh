#!/usr/bin/env bash
# switchyard-proxy against nginx (Debian's package), configured the same way, side by side in
# one run on loopback: plain HTTP and TLS keep-alive at several connection counts, a new TLS
# connection per request, full TLS handshakes; requests/s, p50/p99, CPU per request, peak RSS.
# Then (unless turned off) bench/live-change.sh and the route-table compile bench.
#
# Usage: bench/proxy-vs-nginx.sh            (see bench/README.md for every knob)
# Writes the markdown report to bench/results/latest.md and prints it.
set -Eeuo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-10}                       # seconds per measured run
CONNECTIONS=${CONNECTIONS:-1 16 64}            # wrk -c values for the keep-alive runs
CLOSE_CONNECTIONS=${CLOSE_CONNECTIONS:-16}     # wrk -c for the new-connection-per-request run
HANDSHAKE_CLIENTS=${HANDSHAKE_CLIENTS:-4}      # parallel `openssl s_time -new` clients
WRK_THREADS=${WRK_THREADS:-2}
WARMUP=${WARMUP:-2}                            # seconds of unmeasured load per proxy
CERT_KEY=${CERT_KEY:-ec256}                    # ec256 | rsa2048
ACCESS_LOG=${ACCESS_LOG:-off}                  # off | on (on: both log every request to a file)
SWITCHYARD_WORKERS=${SWITCHYARD_WORKERS:-}      # serving threads (--worker-threads); default: one per core
RUN_LIVE=${RUN_LIVE:-1}                        # also run bench/live-change.sh
RUN_COMPILE=${RUN_COMPILE:-1}                  # also run the compile bench (cargo bench)
RESULTS=${RESULTS:-$bench_dir/results/latest.md}

for knob in DURATION CLOSE_CONNECTIONS HANDSHAKE_CLIENTS WRK_THREADS WARMUP; do
    require_uint "$knob" "${!knob}"
done
[[ -z $SWITCHYARD_WORKERS ]] || require_uint SWITCHYARD_WORKERS "$SWITCHYARD_WORKERS"
read -ra conns <<<"$CONNECTIONS"
for c in "${conns[@]}"; do require_uint CONNECTIONS "$c"; done
[[ $ACCESS_LOG == on || $ACCESS_LOG == off ]] || die "ACCESS_LOG must be on or off"
[[ $WRK_THREADS -ge 1 && $DURATION -ge 1 ]] || die "WRK_THREADS and DURATION must be at least 1"

ensure_tools nginx=nginx-light wrk=wrk curl=curl openssl=openssl pgrep=procps
proxy_binary
bench_setup
pick_port UPSTREAM_PORT
pick_port NGINX_HTTP_PORT
pick_port NGINX_HTTPS_PORT
pick_port SWITCHYARD_HTTP_PORT
pick_port SWITCHYARD_HTTPS_PORT
pick_port SWITCHYARD_METRICS_PORT

tick=$(getconf CLK_TCK)
body="hello from the upstream"
make_cert "$work" "$CERT_KEY"
access_log_args "$ACCESS_LOG"

log "upstream: nginx on 127.0.0.1:$UPSTREAM_PORT"
start_upstream "$work/upstream" "$body" "$UPSTREAM_PORT"
wait_for_body "http://127.0.0.1:$UPSTREAM_PORT/" upstream "$body" || die "the upstream did not start"

# ---------------------------------------------------------------------------------------------
# The two proxies.

start_nginx() {
    local dir=$work/nginx
    mkdir -p "$dir/tmp"
    local log_line="access_log off;"
    if [[ $ACCESS_LOG == on ]]; then
        log_line="access_log $dir/access.log combined buffer=64k flush=1s;"
    fi
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
  $log_line
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
  ssl_protocols TLSv1.2 TLSv1.3;
  upstream backend {
    server 127.0.0.1:$UPSTREAM_PORT;
    keepalive 64;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:$NGINX_HTTP_PORT;
    listen 127.0.0.1:$NGINX_HTTPS_PORT ssl http2;
    server_name plain.test localhost;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # The headers ingress-nginx (and switchyard) always send upstream.
      proxy_set_header Host \$host;
      proxy_set_header X-Request-ID \$request_id;
      proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header X-Forwarded-Port \$server_port;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Scheme \$scheme;
    }
  }
}
EOF
    nginx -t -q -c "$dir/nginx.conf" -p "$dir" 2>"$dir/check.log" || die "nginx config: $(cat "$dir/check.log")"
    nginx -c "$dir/nginx.conf" -p "$dir" 2>>"$dir/error.log" &
    proxy_pid=$!
    bench_pids+=("$proxy_pid")
    http_port=$NGINX_HTTP_PORT
    https_port=$NGINX_HTTPS_PORT
}

start_switchyard() {
    local dir=$work/switchyard
    mkdir -p "$dir/manifests"
    {
        ingress_class_yaml
        printf -- '---\napiVersion: v1\nkind: Secret\nmetadata: {name: bench-tls, namespace: bench}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n'
        indent_pem "$work/cert.pem"
        printf '  tls.key: |\n'
        indent_pem "$work/key.pem"
        printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: upstream, namespace: bench}\nspec: {ports: [{name: http, port: 80}]}\n'
        printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: upstream-1, namespace: bench, labels: {kubernetes.io/service-name: upstream}}\n'
        printf 'addressType: IPv4\nports: [{name: http, port: %s}]\nendpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]\n' "$UPSTREAM_PORT"
        printf -- '---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: bench, namespace: bench}\nspec:\n  ingressClassName: switchyard\n'
        printf '  tls: [{hosts: [localhost], secretName: bench-tls}]\n  rules:\n'
        # plain.test for plain HTTP, localhost for TLS (wrk sends the URL host as SNI), and a
        # host-less rule for `openssl s_time` (HTTP/1.0 without Host).
        local paths="{paths: [{path: /, pathType: Prefix, backend: {service: {name: upstream, port: {name: http}}}}]}"
        printf '  - host: plain.test\n    http: %s\n' "$paths"
        printf '  - host: localhost\n    http: %s\n' "$paths"
        printf '  - http: %s\n' "$paths"
    } >"$dir/manifests/bench.yaml"
    local -a worker_args=()
    [[ -n $SWITCHYARD_WORKERS ]] && worker_args=(--worker-threads "$SWITCHYARD_WORKERS")
    RUST_LOG=warn "$PROXY_BIN" --manifests "$dir/manifests" "${worker_args[@]}" \
        --http-addr "127.0.0.1:$SWITCHYARD_HTTP_PORT" \
        --https-addr "127.0.0.1:$SWITCHYARD_HTTPS_PORT" \
        --metrics-addr "127.0.0.1:$SWITCHYARD_METRICS_PORT" \
        --default-ssl-certificate bench/bench-tls \
        "${sy_log_args[@]}" >"$dir/stdout.log" 2>"$dir/stderr.log" &
    proxy_pid=$!
    bench_pids+=("$proxy_pid")
    http_port=$SWITCHYARD_HTTP_PORT
    https_port=$SWITCHYARD_HTTPS_PORT
}

# Does a second TLS connection resume the first one's session? (python3's ssl; "?" without it)
tls_resumes() {
    command -v python3 >/dev/null 2>&1 || { echo "?"; return; }
    python3 - "$1" <<'EOF' 2>/dev/null || echo "?"
import socket, ssl, sys
port = int(sys.argv[1])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
session = None
for attempt in range(2):
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost", session=session) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            while s.recv(65536):
                pass
            reused = s.session_reused
            session = s.session
print("yes" if reused else "no")
EOF
}

tls_details() {
    openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null |
        awk '/^New, / { sub(/^New, /, ""); p = $0 } /Server Temp Key/ { sub(/.*Key: /, ""); k = $0 }
             END { printf "%s, key exchange %s", p, k }'
}

# ---------------------------------------------------------------------------------------------
# One measured run. Results go to R[<proxy>|<run>|<field>].

declare -A R
runs=()

snapshot_counters() {
    c_cpu=$(cpu_ticks "$proxy_pid")
    c_up_cpu=$(cpu_ticks "$upstream_pid")
    c_up_acc=$(upstream_accepts "$UPSTREAM_PORT")
    c_start=$EPOCHREALTIME
}

record_counters() {
    local key=$1 requests=$2
    local cpu up_cpu up_acc wall
    cpu=$(cpu_ticks "$proxy_pid")
    up_cpu=$(cpu_ticks "$upstream_pid")
    up_acc=$(upstream_accepts "$UPSTREAM_PORT")
    wall=$(awk -v a="$c_start" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')
    local worker_pid=$proxy_pid child
    for child in $(pgrep -P "$proxy_pid"); do worker_pid=$child; done
    R[$key|requests]=$requests
    R[$key|cpu_s]=$(awk -v t="$((cpu - c_cpu))" -v hz="$tick" 'BEGIN { printf "%.2f", t / hz }')
    R[$key|cpu_us]=$(awk -v t="$((cpu - c_cpu))" -v hz="$tick" -v n="$requests" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }')
    R[$key|wall]=$wall
    R[$key|util]=$(awk -v t="$((cpu - c_cpu))" -v hz="$tick" -v w="$wall" 'BEGIN { printf "%.0f", t / hz / w * 100 }')
    R[$key|up_us]=$(awk -v t="$((up_cpu - c_up_cpu))" -v hz="$tick" -v n="$requests" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "-" }')
    # Minus one: the stub_status request that read the counter.
    R[$key|up_conns]=$((up_acc - c_up_acc - 1))
    R[$key|hwm_kib]=$(status_kib "$worker_pid" VmHWM)
}

# run_wrk PROXY RUN CONNS URL [wrk args...]
run_wrk() {
    local proxy=$1 run=$2 c=$3 url=$4
    shift 4
    local threads=$((WRK_THREADS < c ? WRK_THREADS : c))
    local out=$work/raw/$proxy.${run//[^A-Za-z0-9=]/_}.txt
    log "$proxy: $run (wrk -t$threads -c$c ${DURATION}s)"
    snapshot_counters
    wrk -t"$threads" -c"$c" -d"${DURATION}s" --latency "$@" "$url" >"$out" 2>&1 || true
    local requests
    requests=$(awk '/requests in/ { print $1 }' "$out")
    record_counters "$proxy|$run" "${requests:-0}"
    local key="$proxy|$run"
    R[$key|rps]=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' "$out")
    local p50 p99
    read -r p50 p99 < <(awk '
        function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1e3;
                         if (v ~ /m$/) return v * 60e6; if (v ~ /s$/) return v * 1e6; return v + 0 }
        $1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) }
        END { printf "%.0f %.0f\n", p50, p99 }' "$out")
    R[$key|p50]=$p50
    R[$key|p99]=$p99
    R[$key|non2xx]=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    R[$key|sockerr]=$(awk '/Socket errors:/ { gsub(/,/, ""); print $4 + $6 + $8 + $10 }' "$out")
    R[$key|non2xx]=${R[$key|non2xx]:-0}
    R[$key|sockerr]=${R[$key|sockerr]:-0}
    [[ " ${runs[*]} " == *" $run "* ]] || runs+=("$run")
    sleep 1
}

# Full TLS handshakes: HANDSHAKE_CLIENTS parallel `openssl s_time -new` (never resumes), each
# sending one request on its own connection. s_time writes "GET <path> HTTP/1.0\r\n\r\n"; the
# path below makes that an HTTP/1.1 request with a Host header like wrk's (the trailing HTTP/1.0
# lands in a dummy header).
handshake_request=$'/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Bench:'

run_handshakes() {
    local proxy=$1 run="TLS full handshake"
    log "$proxy: $run (openssl s_time -new x$HANDSHAKE_CLIENTS, ${DURATION}s)"
    snapshot_counters
    local i
    local -a clients=()
    for ((i = 0; i < HANDSHAKE_CLIENTS; i++)); do
        openssl s_time -connect "127.0.0.1:$https_port" -new -time "$DURATION" -www "$handshake_request" \
            >"$work/raw/$proxy.handshake.$i.txt" 2>&1 &
        clients+=("$!")
    done
    for i in "${clients[@]}"; do wait "$i" || true; done
    local requests bytes
    requests=$(cat "$work/raw/$proxy".handshake.*.txt | awk '/connections in .* real seconds/ { n += $1 } END { print n + 0 }')
    bytes=$(cat "$work/raw/$proxy".handshake.*.txt | awk '/bytes read per connection/ { b = $(NF-4) } END { print b + 0 }')
    record_counters "$proxy|$run" "$requests"
    local key="$proxy|$run"
    R[$key|rps]=$(awk -v n="$requests" -v d="${R[$key|wall]}" 'BEGIN { printf "%.0f", n / d }')
    # s_time gives no distribution: the mean from Little's law (clients x seconds / requests).
    R[$key|p50]=$(awk -v n="$requests" -v d="${R[$key|wall]}" -v c="$HANDSHAKE_CLIENTS" 'BEGIN { if (n > 0) printf "%.0f", c * d * 1e6 / n; else print 0 }')
    R[$key|p99]="-"
    R[$key|non2xx]="${bytes} B/conn"
    R[$key|sockerr]=0
    [[ " ${runs[*]} " == *" $run "* ]] || runs+=("$run")
    sleep 1
}

bench_proxy() {
    local proxy=$1
    "start_$proxy"
    local tls=(--resolve "localhost:$https_port:127.0.0.1" -k)
    wait_for_body "http://127.0.0.1:$http_port/" plain.test "$body" ||
        die "$proxy does not answer 200 '$body' on plain HTTP (logs in $work/$proxy)"
    wait_for_body "https://localhost:$https_port/" localhost "$body" "${tls[@]}" ||
        die "$proxy does not answer 200 '$body' over TLS"
    local raw
    raw=$(printf 'GET %s HTTP/1.0\r\n\r\n' "$handshake_request" | openssl s_client -quiet -connect "127.0.0.1:$https_port" 2>/dev/null | head -1 | tr -d '\r' || true)
    [[ $raw == *" 200 "* ]] || log "warning: $proxy answers '$raw' to the s_time request"
    # Not part of the comparison, reported: HTTP/1.0 without Host (nginx answers it).
    raw=$(curl -s -o /dev/null -w '%{http_code}' --http1.0 -H 'Host:' "http://127.0.0.1:$http_port/" || true)
    R[$proxy|http10]=$raw
    R[$proxy|tls]=$(tls_details "$https_port")
    R[$proxy|resumes]=$(tls_resumes "$https_port")
    if [[ $proxy == switchyard ]]; then
        R[$proxy|threads]=$(cat /proc/"$proxy_pid"/task/*/comm 2>/dev/null | grep -c '^tokio-r' || true)
        R[$proxy|all_threads]=$(awk '/^Threads:/ { print $2 }' "/proc/$proxy_pid/status")
    fi
    R[$proxy|start_rss]=$(status_kib "$proxy_pid" VmRSS)

    [[ $WARMUP -gt 0 ]] && wrk -t"$WRK_THREADS" -c64 -d"${WARMUP}s" -H 'Host: plain.test' \
        "http://127.0.0.1:$http_port/" >/dev/null 2>&1
    local c
    for c in "${conns[@]}"; do
        run_wrk "$proxy" "plain c=$c" "$c" "http://127.0.0.1:$http_port/" -H 'Host: plain.test'
    done
    for c in "${conns[@]}"; do
        run_wrk "$proxy" "TLS c=$c" "$c" "https://localhost:$https_port/"
    done
    run_wrk "$proxy" "TLS new conn/req c=$CLOSE_CONNECTIONS" "$CLOSE_CONNECTIONS" \
        "https://localhost:$https_port/" -H 'Connection: close'
    run_handshakes "$proxy"

    local worker_pid=$proxy_pid child
    for child in $(pgrep -P "$proxy_pid"); do worker_pid=$child; done
    R[$proxy|hwm]=$(status_kib "$worker_pid" VmHWM)
    R[$proxy|master_rss]=0
    [[ $worker_pid != "$proxy_pid" ]] && R[$proxy|master_rss]=$(status_kib "$proxy_pid" VmRSS)
    if [[ $proxy == switchyard ]]; then
        R[$proxy|errlines]=$(grep -hiE '"level":"(WARN|ERROR)"|panick|WARN|ERROR' "$work/switchyard/stderr.log" | sort | uniq -c | sort -rn | head -5 || true)
    else
        R[$proxy|errlines]=$(grep -hE '\[(warn|error|crit|alert|emerg)\]' "$work/nginx/error.log" | sed 's/^[0-9/: ]*//' | sort | uniq -c | sort -rn | head -5 || true)
    fi
    if ! kill -0 "$proxy_pid" 2>/dev/null; then
        R[$proxy|died]=1
        log "warning: $proxy is no longer running"
    fi
    stop_pid "$proxy_pid"
}

mkdir -p "$work/raw"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
bench_proxy nginx
bench_proxy switchyard
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# The report.

fmt_us() {
    awk -v v="$1" 'BEGIN { if (v == "-" || v == "") print "-"; else if (v < 1000) printf "%d µs", v; else if (v < 1e6) printf "%.2f ms", v / 1000; else printf "%.2f s", v / 1e6 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || a + 0 == 0) print "-"; else printf "%.2f", b / a }'; }
target_for() {
    case $1 in
        plain*) echo 0.7 ;;
        "TLS full handshake") echo 0.4 ;;
        TLS\ c=*) echo 0.6 ;;
        *) echo "" ;;
    esac
}
verdict() { # ratio target
    [[ -z $2 || $1 == - ]] && return
    awk -v r="$1" -v t="$2" 'BEGIN { if (r <= t) printf " ✅ ≤%s", t; else printf " ❌ >%s", t }'
}
p99_verdict() {
    [[ $1 == - || $2 == - ]] && return
    awk -v a="$1" -v b="$2" 'BEGIN { if (b <= a) printf " ✅"; else printf " ❌" }'
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

nginx_version=$(nginx -v 2>&1 | sed 's/.*nginx\///')
wrk_version=$( (wrk -v 2>&1 || true) | awk 'NR == 1 { print $2 }')
if [[ ${proxy_built:-0} == 1 ]]; then
    build_note="built from $(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo '?')"
    if git -C "$repo_root" status --porcelain -- proxy 2>/dev/null | grep -q .; then
        build_note+=" + uncommitted proxy changes"
    fi
else
    build_note="given as PROXY_BIN"
fi
build_note=${PROXY_LABEL:-$build_note}
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
if [[ ${sy_has_no_log:-0} == 1 ]]; then
    log_note="off on both (nginx \`access_log off\`; $sy_log_note)"
else
    log_note="$ACCESS_LOG on both (nginx: $([[ $ACCESS_LOG == on ]] && echo 'combined format, buffer=64k' || echo '`access_log off`'); $sy_log_note)"
fi

report=$work/report.md
{
    printf '## switchyard-proxy vs nginx %s — %s\n\n' "$nginx_version" "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf -- '- Machine: %s cores (%s), %s; load average %s before, %s after. Shared machine: other builds may run at the same time, so compare the two columns of one run, not runs across days.\n' \
        "$(nproc)" "$cpu_model" "$(uname -r)" "$load_before" "$load_after"
    printf -- '- switchyard-proxy %s (`%s`), `--manifests`, RUST_LOG=warn, %s serving thread(s) (%s; %s threads in all, counting the control runtime, its blocking pool and the access log writer), nothing pinned.\n' \
        "$build_note" "${PROXY_BIN/#$repo_root\//}" "${SWITCHYARD_WORKERS:-$(nproc)}" "$([[ -n $SWITCHYARD_WORKERS ]] && echo '--worker-threads' || echo 'the default: one per core')" "${R[switchyard|all_threads]:-?}"
    printf -- '- nginx %s: `worker_processes 1`, upstream `keepalive 64`, `proxy_http_version 1.1`, `Connection ""`, the forwarding headers ingress-nginx sends, TLS 1.2/1.3, session resumption at its defaults.\n' "$nginx_version"
    printf -- '- **Access logs: %s.**\n' "$log_note"
    printf -- '- Upstream: one nginx (1 worker) answering `200` with a %s-byte body, keep-alive from both proxies. Load: wrk %s, %s s per run, -t %s (1 at c=1); everything on loopback.\n' \
        "$((${#body} + 1))" "$wrk_version" "$DURATION" "$WRK_THREADS"
    printf -- '- TLS: %s certificate; nginx negotiated %s; switchyard negotiated %s. A second connection resumes the session: nginx %s, switchyard %s.\n' \
        "$CERT_KEY" "${R[nginx|tls]}" "${R[switchyard|tls]}" "${R[nginx|resumes]}" "${R[switchyard|resumes]}"
    printf -- '- CPU/req = the proxy'"'"'s utime+stime over the run (nginx: master + worker) / requests. **This is the primary figure**: on 2 cores wrk, the upstream and the proxy share the CPUs, so req/s and latency mostly measure the competition.\n\n'

    printf '| run | req/s nginx | req/s switchyard | p50 nginx | p50 switchyard | p99 nginx | p99 switchyard | CPU/req nginx | CPU/req switchyard | CPU ratio (target) |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n'
    for run in "${runs[@]}"; do
        n="nginx|$run" s="switchyard|$run"
        r=$(ratio "${R[$n|cpu_us]}" "${R[$s|cpu_us]}")
        p99s=$(fmt_us "${R[$s|p99]}")$(p99_verdict "${R[$n|p99]}" "${R[$s|p99]}")
        p50n=$(fmt_us "${R[$n|p50]}") p50s=$(fmt_us "${R[$s|p50]}")
        if [[ $run == "TLS full handshake" ]]; then p50n="~$p50n (mean)"; p50s="~$p50s (mean)"; p99s="-"; fi
        printf '| %s | %s | %s | %s | %s | %s | %s | %s µs | %s µs | **%s**%s |\n' "$run" \
            "${R[$n|rps]}" "${R[$s|rps]}" "$p50n" "$p50s" "$(fmt_us "${R[$n|p99]}")" "$p99s" \
            "${R[$n|cpu_us]}" "${R[$s|cpu_us]}" "$r" "$(verdict "$r" "$(target_for "$run")")"
    done
    printf '\nTargets (from the issue): CPU/req ≤ 0.7× nginx plain, ≤ 0.6× TLS keep-alive, ≤ 0.4× full handshake; p99 no worse than nginx (✅/❌ next to switchyard'"'"'s p99). "TLS new conn/req" is wrk with `Connection: close`: wrk reuses the TLS session, so these are *resumed* handshakes on both (see README); "TLS full handshake" is `openssl s_time -new` ×%s, which never resumes (no latency distribution: mean from clients × time / requests).\n\n' "$HANDSHAKE_CLIENTS"

    printf '<details><summary>Diagnostics per run</summary>\n\n'
    printf '| run | requests nginx / switchyard | proxy CPU %% of one core | upstream CPU/req | upstream connections opened | errors (non-2xx, socket) nginx / switchyard | peak RSS so far (MiB) |\n'
    printf '|---|---|---|---|---|---|---|\n'
    for run in "${runs[@]}"; do
        n="nginx|$run" s="switchyard|$run"
        printf '| %s | %s / %s | %s%% / %s%% | %s / %s µs | %s / %s | %s, %s / %s, %s | %s / %s |\n' "$run" \
            "${R[$n|requests]}" "${R[$s|requests]}" "${R[$n|util]}" "${R[$s|util]}" \
            "${R[$n|up_us]}" "${R[$s|up_us]}" "${R[$n|up_conns]}" "${R[$s|up_conns]}" \
            "${R[$n|non2xx]}" "${R[$n|sockerr]}" "${R[$s|non2xx]}" "${R[$s|sockerr]}" \
            "$(mib "${R[$n|hwm_kib]}")" "$(mib "${R[$s|hwm_kib]}")"
    done
    printf '\n</details>\n\n'
    printf '**Memory**: peak RSS (VmHWM) over all runs: nginx worker %s MiB (+ master %s MiB), switchyard %s MiB; at start (idle): nginx %s MiB, switchyard %s MiB.\n\n' \
        "$(mib "${R[nginx|hwm]}")" "$(mib "${R[nginx|master_rss]}")" "$(mib "${R[switchyard|hwm]}")" \
        "$(mib "${R[nginx|start_rss]}")" "$(mib "${R[switchyard|start_rss]}")"
    if [[ ${R[nginx|http10]} != "${R[switchyard|http10]}" ]]; then
        printf 'Not measured, noticed: an HTTP/1.0 request without a Host header (plain listener) gets %s from nginx and %s from switchyard.\n\n' \
            "${R[nginx|http10]}" "${R[switchyard|http10]}"
    fi
    for proxy in nginx switchyard; do
        [[ ${R[$proxy|died]:-0} == 1 ]] && printf '**%s exited during the run.**\n\n' "$proxy"
        if [[ -n ${R[$proxy|errlines]} ]]; then
            printf '%s log, most frequent warnings/errors:\n\n```\n%s\n```\n\n' "$proxy" "${R[$proxy|errlines]}"
        fi
    done
} >"$report"

if [[ $RUN_LIVE == 1 ]]; then
    log "live change at 10k Ingresses (bench/live-change.sh)"
    if PROXY_BIN=$PROXY_BIN SKIP_BUILD=1 SKIP_INSTALL=1 CERT_KEY=$CERT_KEY LIVE_OUT="$work/live.md" \
        "$bench_dir/live-change.sh" >"$work/live.log" 2>&1; then
        cat "$work/live.md" >>"$report"
    else
        printf '### Live change\n\nbench/live-change.sh failed:\n\n```\n%s\n```\n\n' "$(tail -20 "$work/live.log")" >>"$report"
    fi
fi

if [[ $RUN_COMPILE == 1 ]]; then
    log "route-table compile bench (cargo bench -p switchyard-proxy --bench compile)"
    if (cd "$repo_root" && BENCH_OUT="$work/compile.md" BENCH_CERT="$work/cert.pem" BENCH_KEY="$work/key.pem" \
        cargo bench --quiet -p switchyard-proxy --bench compile) >"$work/compile.log" 2>&1; then
        sed 's#from '"$work"'/cert.pem#'"$CERT_KEY"', the same certificate as above#' "$work/compile.md" >>"$report"
    else
        printf '### Route-table compile\n\nThe compile bench failed:\n\n```\n%s\n```\n\n' "$(tail -20 "$work/compile.log")" >>"$report"
    fi
fi

mkdir -p "$(dirname "$RESULTS")"
cp "$report" "$RESULTS"
raw_dir=$(dirname "$RESULTS")/raw-latest
rm -rf -- "$raw_dir"
cp -r "$work/raw" "$raw_dir" 2>/dev/null || true
cat "$report"
log "written: $RESULTS (raw wrk and s_time output in $raw_dir/)"
