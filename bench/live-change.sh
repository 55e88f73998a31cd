#!/usr/bin/env bash
# How long a change takes to go live at 10k Ingresses: the release proxy in --manifests mode over
# a generated folder (INGRESSES Ingresses with their Services, EndpointSlices and TLS Secrets),
# then one Ingress's backend is switched between two upstreams ("blue" and "green") REPEATS
# times; each time, the clock runs from the file's rename into the folder until a request on
# that host answers from the new backend. Also reports startup time and RSS with it all loaded.
#
# Usage: bench/live-change.sh   (knobs: INGRESSES, REPEATS, TLS_EVERY, CERT_KEY, PROXY_BIN,
#        SKIP_BUILD, SKIP_INSTALL, LIVE_OUT=file for the markdown, KEEP_WORK=1)
set -Eeuo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

INGRESSES=${INGRESSES:-10000}
REPEATS=${REPEATS:-7}
TLS_EVERY=${TLS_EVERY:-10}
CERT_KEY=${CERT_KEY:-ec256}
for knob in INGRESSES REPEATS TLS_EVERY; do require_uint "$knob" "${!knob}"; done
[[ $INGRESSES -ge 1 && $REPEATS -ge 1 ]] || die "INGRESSES and REPEATS must be at least 1"

ensure_tools nginx=nginx-light curl=curl openssl=openssl pgrep=procps wrk=wrk
proxy_binary
bench_setup
pick_port BLUE_PORT
pick_port GREEN_PORT
pick_port LIVE_HTTP_PORT
pick_port LIVE_HTTPS_PORT
pick_port LIVE_METRICS_PORT

start_upstream "$work/upstream" blue "$BLUE_PORT" green "$GREEN_PORT"
make_cert "$work" "$CERT_KEY"
dir=$work/manifests
mkdir -p "$dir"
ingress_class_yaml >"$dir/00000-class.yaml"
log "writing $((INGRESSES - 1)) Ingresses + the one that changes"
write_apps "$dir" "$((INGRESSES - 1))" "$TLS_EVERY" 8080 "$work/cert.pem" "$work/key.pem"
for color in blue green; do
    port_var=${color^^}_PORT
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: live}\nspec: {ports: [{name: http, port: 80}]}\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: %s-1, namespace: live, labels: {kubernetes.io/service-name: %s}}\naddressType: IPv4\nports: [{name: http, port: %s}]\nendpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]\n' \
        "$color" "$color" "$color" "${!port_var}"
done >"$dir/50000-live-services.yaml"

live_ingress() {
    printf 'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: live, namespace: live}\nspec:\n  ingressClassName: switchyard\n  rules:\n  - host: live.bench.test\n    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: %s, port: {name: http}}}}]}\n' "$1"
}
# Write then rename, so the proxy never reads a half-written file.
set_backend() {
    live_ingress "$1" >"$work/live.tmp"
    mv -f "$work/live.tmp" "$dir/50001-live.yaml"
}
set_backend blue
folder_mib=$(du -sm "$dir" | cut -f1)
files=$(find "$dir" -name '*.yaml' | wc -l)

started=$EPOCHREALTIME
RUST_LOG=info "$PROXY_BIN" --manifests "$dir" \
    --http-addr "127.0.0.1:$LIVE_HTTP_PORT" --https-addr "127.0.0.1:$LIVE_HTTPS_PORT" \
    --metrics-addr "127.0.0.1:$LIVE_METRICS_PORT" >"$work/stdout.log" 2>"$work/stderr.log" &
proxy_pid=$!
bench_pids+=("$proxy_pid")

# One request on a fresh connection with bash builtins only (no fork: sub-millisecond polling);
# sets `answer` to the body's last line.
probe() {
    answer=""
    { exec 3<>"/dev/tcp/127.0.0.1/$LIVE_HTTP_PORT"; } 2>/dev/null || return 0
    printf 'GET / HTTP/1.1\r\nHost: live.bench.test\r\nConnection: close\r\n\r\n' >&3
    local line
    while IFS= read -r -t 5 line <&3; do answer=${line%$'\r'}; done
    exec 3<&-
}

# wait_for COLOR LIMIT_S: polls until the answer is COLOR; sets `seen_at`.
wait_for() {
    local deadline
    deadline=$(awk -v n="$EPOCHREALTIME" -v l="$2" 'BEGIN { printf "%.6f", n + l }')
    while :; do
        probe
        if [[ $answer == "$1" ]]; then
            seen_at=$EPOCHREALTIME
            return 0
        fi
        [[ ${EPOCHREALTIME/./} -gt ${deadline/./} ]] && return 1
        kill -0 "$proxy_pid" 2>/dev/null || die "the proxy exited: $(tail -5 "$work/stderr.log")"
    done
}

log "starting the proxy over $files files ($folder_mib MiB)"
wait_for blue 300 || die "the proxy never routed live.bench.test (log: $(tail -3 "$work/stderr.log"))"
startup_ms=$(awk -v a="$started" -v b="$seen_at" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
sleep 1
rss_loaded=$(status_kib "$proxy_pid" VmRSS)
hwm_loaded=$(status_kib "$proxy_pid" VmHWM)
served=$(grep -o '"ingresses":[0-9]*' "$work/stderr.log" | tail -1 | cut -d: -f2)
problems=$(grep -o '"problems":[0-9]*' "$work/stderr.log" | tail -1 | cut -d: -f2)
first_compile_us=$(grep -o '"compile_us":[0-9]*' "$work/stderr.log" | tail -1 | cut -d: -f2)

latencies=()
compiles=()
rss_steps=()
color=blue
for ((i = 1; i <= REPEATS; i++)); do
    # A random phase against the proxy's poll interval, so the median is a fair sample.
    sleep "0.$((RANDOM % 9 + 1))"
    [[ $color == blue ]] && color=green || color=blue
    swaps_before=$(grep -c 'route table swapped in' "$work/stderr.log" || true)
    set_backend "$color"
    t0=$EPOCHREALTIME
    wait_for "$color" 30 || die "change $i was not served within 30 s"
    ms=$(awk -v a="$t0" -v b="$seen_at" 'BEGIN { printf "%.1f", (b - a) * 1000 }')
    latencies+=("$ms")
    sleep 0.3
    compile_us=$(grep 'route table swapped in' "$work/stderr.log" | tail -n +"$((swaps_before + 1))" |
        grep -o '"compile_us":[0-9]*' | head -1 | cut -d: -f2)
    compiles+=("${compile_us:-?}")
    rss_steps+=("$(mib_of "$(status_kib "$proxy_pid" VmRSS)")")
    log "change $i ($color): visible after $ms ms (compile ${compile_us:-?} µs)"
done
rss_after=$(status_kib "$proxy_pid" VmRSS)
hwm_after=$(status_kib "$proxy_pid" VmHWM)

# Requests while changes are applied: wrk on the changing host for LOAD_SECONDS, once without
# changes and once with a change every second, to see whether a swap stalls requests.
# Prints "requests p50 p99 max non2xx socket_errors" (latencies in µs).
LOAD_SECONDS=${LOAD_SECONDS:-8}
require_uint LOAD_SECONDS "$LOAD_SECONDS"
under_load() {
    local out=$work/wrk.$1.txt changes=$2
    wrk -t2 -c16 -d"${LOAD_SECONDS}s" --latency -H 'Host: live.bench.test' \
        "http://127.0.0.1:$LIVE_HTTP_PORT/" >"$out" 2>&1 &
    local wrk_pid=$!
    if [[ $changes == 1 ]]; then
        for ((j = 1; j < LOAD_SECONDS; j++)); do
            sleep 1
            [[ $color == blue ]] && color=green || color=blue
            set_backend "$color"
        done
    fi
    wait "$wrk_pid" || true
    awk 'function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1e3;
                          if (v ~ /m$/) return v * 60e6; if (v ~ /s$/) return v * 1e6; return v + 0 }
         /^ +Latency / && !max { max = us($4) } $1 == "50%" { p50 = us($2) } $1 == "99%" { p99 = us($2) }
         /requests in/ { n = $1 } /Non-2xx/ { bad = $NF } /Socket errors/ { gsub(/,/, ""); se = $4 + $6 + $8 + $10 }
         END { printf "%d %.0f %.0f %.0f %d %d\n", n, p50, p99, max, bad, se }' "$out"
}
if [[ $LOAD_SECONDS -gt 0 ]]; then
    log "requests under load without changes, then with a change every second (${LOAD_SECONDS}s each)"
    read -r q_n q_p50 q_p99 q_max q_bad q_se < <(under_load quiet 0)
    sleep 1
    read -r c_n c_p50 c_p99 c_max c_bad c_se < <(under_load changing 1)
fi
fmt_ms() { awk -v v="${1:-0}" 'BEGIN { printf "%.2f ms", v / 1000 }'; }

stats() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%s|%s|%s\n", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
IFS='|' read -r lat_med lat_min lat_max < <(stats "${latencies[@]}")
IFS='|' read -r cmp_med cmp_min cmp_max < <(stats "${compiles[@]}")
verdict=$(awk -v m="$lat_med" 'BEGIN { if (m < 50) print "✅ < 50 ms"; else print "❌ ≥ 50 ms" }')

out=${LIVE_OUT:-/dev/stdout}
{
    printf '### Live change at %s Ingresses (`bench/live-change.sh`)\n\n' "$INGRESSES"
    printf 'switchyard-proxy `--manifests` over %s files (%s MiB): %s Ingresses, each with a Service and an EndpointSlice (3 endpoints), every %sth with a TLS Secret (%s). One Ingress'"'"'s backend is switched blue↔green %s times (file written, then renamed into the folder); the time runs from the rename until a request (fresh connection, polled back to back) answers from the new backend.\n\n' \
        "$files" "$folder_mib" "$INGRESSES" "$TLS_EVERY" "$CERT_KEY" "$REPEATS"
    printf '| figure | value |\n|---|---|\n'
    printf '| change visible after, median (min–max) | **%s ms** (%s–%s) %s |\n' "$lat_med" "$lat_min" "$lat_max" "$verdict"
    printf '| of which compile (`compile_us` in the proxy log), median (min–max) | %s ms (%s–%s) |\n' \
        "$(awk -v v="$cmp_med" 'BEGIN { printf "%.1f", v / 1000 }')" "$(awk -v v="$cmp_min" 'BEGIN { printf "%.1f", v / 1000 }')" "$(awk -v v="$cmp_max" 'BEGIN { printf "%.1f", v / 1000 }')"
    printf '| each change, in order (ms) | %s |\n' "${latencies[*]}"
    printf '| startup until the first routed request | %s ms (first compile %s ms) |\n' "$startup_ms" "$(awk -v v="${first_compile_us:-0}" 'BEGIN { printf "%.1f", v / 1000 }')"
    printf '| Ingresses served / problems reported | %s / %s |\n' "${served:-?}" "${problems:-?}"
    printf '| RSS with everything loaded (VmRSS / VmHWM) | %s MiB / %s MiB |\n' "$(mib_of "$rss_loaded")" "$(mib_of "$hwm_loaded")"
    printf '| RSS after the changes (VmRSS / VmHWM) | %s MiB / %s MiB |\n' "$(mib_of "$rss_after")" "$(mib_of "$hwm_after")"
    printf '| VmRSS after each change (MiB) | %s |\n\n' "${rss_steps[*]}"
    printf 'Besides compile, a change waits for the `--manifests` source: its poll interval and reading and parsing the changed file(s) (older builds re-parsed the whole folder; see the parse column of the compile bench).\n\n'
    if [[ $LOAD_SECONDS -gt 0 ]]; then
        printf 'Requests on the changing host while changes are applied (wrk -t2 -c16, %s s each, plain HTTP, two separate runs):\n\n' "$LOAD_SECONDS"
        printf '| | requests | p50 | p99 | max | non-2xx | socket errors |\n|---|---:|---:|---:|---:|---:|---:|\n'
        printf '| no changes | %s | %s | %s | %s | %s | %s |\n' "$q_n" "$(fmt_ms "$q_p50")" "$(fmt_ms "$q_p99")" "$(fmt_ms "$q_max")" "$q_bad" "$q_se"
        printf '| a change every second | %s | %s | %s | %s | %s | %s |\n\n' "$c_n" "$(fmt_ms "$c_p50")" "$(fmt_ms "$c_p99")" "$(fmt_ms "$c_max")" "$c_bad" "$c_se"
    fi
} >"$out"
[[ -n ${LIVE_OUT:-} ]] && cat "$LIVE_OUT"
true
