//! Route-table compile time and memory at 1k and 10k Ingresses (not a test: a benchmark).
//!
//!     cargo bench -p switchyard-proxy --bench compile
//!
//! Builds a manifests folder's worth of objects in memory (per Ingress: one host, three paths,
//! one Service, one EndpointSlice with three endpoints; every 10th Ingress has TLS with its own
//! Secret), then times, over several iterations (median, min, max):
//! - `manifests::parse`: YAML text → Snapshot (what `--manifests` mode redoes on every change),
//! - `compile::compile`: Snapshot → RouteTable (what every change costs in either mode).
//!
//! Memory: the workspace forbids `unsafe`, so there is no counting global allocator here.
//! Instead each size is measured in a fresh child process (this binary re-run with
//! `--memory N`) from /proc/self/status: resident memory before and after parsing, after the
//! first compile (table held, problems dropped), and after a second compile while the first
//! table is still held (as during a live swap). RSS includes allocator slack, so read the
//! figures as upper bounds; the second-table growth is the closest to the table's own size.
//!
//! Environment: `BENCH_SIZES` (default `1000,10000`), `BENCH_TLS_EVERY` (default 10, 0 = no
//! TLS), `BENCH_CERT` / `BENCH_KEY` (PEM files to use for the TLS Secrets instead of a
//! generated ECDSA P-256 pair), `BENCH_OUT` (also write the markdown table to this file).

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

use switchyard_proxy::compile::{CompileOptions, compile};
use switchyard_proxy::manifests::{ManifestFile, parse};

/// Ingresses per generated file, as a real manifests folder would split them.
const PER_FILE: usize = 100;

struct Pem {
    cert: String,
    key: String,
    kind: String,
}

fn pem() -> Pem {
    if let (Ok(cert), Ok(key)) = (std::env::var("BENCH_CERT"), std::env::var("BENCH_KEY")) {
        return Pem {
            cert: std::fs::read_to_string(&cert).expect("read BENCH_CERT"),
            key: std::fs::read_to_string(&key).expect("read BENCH_KEY"),
            kind: format!("from {cert}"),
        };
    }
    let generated = rcgen::generate_simple_self_signed(vec!["bench.test".to_owned()])
        .expect("generate a certificate");
    Pem {
        cert: generated.cert.pem(),
        key: generated.signing_key.serialize_pem(),
        kind: "ECDSA P-256 (rcgen)".to_owned(),
    }
}

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("    {l}\n")).collect()
}

/// The folder's files: an IngressClass, then `n` Ingresses with their Services,
/// EndpointSlices and (every `tls_every`-th) TLS Secrets, `PER_FILE` Ingresses a file.
fn manifests(n: usize, tls_every: usize, pem: &Pem) -> Vec<ManifestFile> {
    let (cert, key) = (indent(&pem.cert), indent(&pem.key));
    let mut files = vec![ManifestFile {
        name: "00-class.yaml".to_owned(),
        contents: "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: switchyard}\nspec: {controller: switchyard.dev/ingress-controller}\n".to_owned(),
    }];
    let mut contents = String::new();
    for i in 0..n {
        let ns = format!("team-{}", i / 100);
        let name = format!("app-{i}");
        let host = format!("app-{i}.bench.test");
        let (a, b) = ((i / 250) % 250, i % 250);
        let tls = tls_every > 0 && i % tls_every == 0;
        if tls {
            let _ = write!(
                contents,
                "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}-tls, namespace: {ns}}}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{cert}  tls.key: |\n{key}"
            );
        }
        let _ = write!(
            contents,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{ports: [{{name: http, port: 80}}]}}\n\
             ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}-abcde, namespace: {ns}, labels: {{kubernetes.io/service-name: {name}}}}}\n\
             addressType: IPv4\nports: [{{name: http, port: 8080}}]\n\
             endpoints: [{{addresses: [10.1.{a}.{b}], conditions: {{ready: true}}}}, {{addresses: [10.2.{a}.{b}], conditions: {{ready: true}}}}, {{addresses: [10.3.{a}.{b}], conditions: {{ready: true}}}}]\n\
             ---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  ingressClassName: switchyard\n"
        );
        if tls {
            let _ = writeln!(
                contents,
                "  tls: [{{hosts: [{host}], secretName: {name}-tls}}]"
            );
        }
        let _ = write!(
            contents,
            "  rules:\n  - host: {host}\n    http:\n      paths:\n\
             \x20     - {{path: /, pathType: Prefix, backend: {{service: {{name: {name}, port: {{name: http}}}}}}}}\n\
             \x20     - {{path: /api/v1, pathType: Prefix, backend: {{service: {{name: {name}, port: {{number: 80}}}}}}}}\n\
             \x20     - {{path: /healthz, pathType: Exact, backend: {{service: {{name: {name}, port: {{name: http}}}}}}}}\n"
        );
        if (i + 1) % PER_FILE == 0 || i + 1 == n {
            files.push(ManifestFile {
                name: format!("{:05}-apps.yaml", i / PER_FILE + 1),
                contents: std::mem::take(&mut contents),
            });
        }
    }
    files
}

fn median(mut samples: Vec<Duration>) -> (Duration, Duration, Duration) {
    samples.sort();
    let mid = samples[samples.len() / 2];
    (mid, samples[0], samples[samples.len() - 1])
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// VmRSS and VmHWM of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn tls_every() -> usize {
    std::env::var("BENCH_TLS_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// Child process: one size, memory only. Prints `key=value` lines for the parent.
fn measure_memory(n: usize) {
    let pem = pem();
    let files = manifests(n, tls_every(), &pem);
    let (before_parse, _) = rss_kib();
    let parsed = parse(&files);
    let (after_parse, _) = rss_kib();
    let options = CompileOptions::default();
    let (table, problems) = compile(&parsed.snapshot, &options);
    drop(problems);
    let (after_compile, _) = rss_kib();
    let (second, problems) = compile(&parsed.snapshot, &options);
    drop(problems);
    let (after_second, peak) = rss_kib();
    println!("snapshot_kib={}", after_parse.saturating_sub(before_parse));
    println!(
        "first_table_kib={}",
        after_compile.saturating_sub(after_parse)
    );
    println!(
        "second_table_kib={}",
        after_second.saturating_sub(after_compile)
    );
    println!("peak_kib={peak}");
    println!("total_kib={after_second}");
    drop((table, second, files));
}

struct Row {
    n: usize,
    objects: usize,
    hosts: usize,
    paths: usize,
    served: usize,
    certs: usize,
    problems: usize,
    yaml_bytes: usize,
    iterations: usize,
    parse: (Duration, Duration, Duration),
    compile: (Duration, Duration, Duration),
    memory: Vec<(String, u64)>,
}

fn time_size(n: usize, pem: &Pem) -> Row {
    let files = manifests(n, tls_every(), pem);
    let yaml_bytes = files.iter().map(|f| f.contents.len()).sum();
    // About 3 s of compiling per size at most; never fewer than 5 samples.
    let iterations = if n <= 2_000 { 21 } else { 7 };
    let parse_iterations = if n <= 2_000 { 7 } else { 3 };
    let mut parse_times = Vec::new();
    let mut parsed = parse(&files);
    for _ in 0..parse_iterations {
        let started = Instant::now();
        parsed = parse(&files);
        parse_times.push(started.elapsed());
    }
    assert!(
        parsed.errors.is_empty(),
        "generated manifests have errors: {:?}",
        parsed.errors.first()
    );
    let options = CompileOptions::default();
    // One warm-up compile; its table gives the shape figures.
    let (table, problems) = compile(&parsed.snapshot, &options);
    let faults = problems
        .iter()
        .filter(|p| p.severity > switchyard_proxy::model::Severity::Info)
        .count();
    if let Some(first) = problems.first() {
        eprintln!(
            "note: {} problems at n={n}, first: {} {} {}",
            problems.len(),
            first.object,
            first.reason,
            first.message
        );
    }
    let mut compile_times = Vec::new();
    for _ in 0..iterations {
        let started = Instant::now();
        let out = compile(&parsed.snapshot, &options);
        compile_times.push(started.elapsed());
        drop(out);
    }
    let memory = memory_in_child(n);
    Row {
        n,
        objects: parsed.snapshot.object_count(),
        hosts: table.host_count(),
        paths: table.path_count(),
        served: table.served_ingresses,
        certs: table.certs.len(),
        problems: faults,
        yaml_bytes,
        iterations,
        parse: median(parse_times),
        compile: median(compile_times),
        memory,
    }
}

fn memory_in_child(n: usize) -> Vec<(String, u64)> {
    let exe = std::env::current_exe().expect("this binary");
    let output = Command::new(exe)
        .args(["--memory", &n.to_string()])
        .output()
        .expect("run the memory child");
    if !output.status.success() {
        eprintln!(
            "memory child failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return Vec::new();
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

fn mib(memory: &[(String, u64)], key: &str) -> String {
    memory
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| format!("{:.1}", *v as f64 / 1024.0))
        .unwrap_or_else(|| "?".to_owned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--memory") {
        let n = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .expect("--memory N");
        measure_memory(n);
        return;
    }
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let pem = pem();
    let every = tls_every();
    let mut rows = Vec::new();
    for &n in &sizes {
        eprintln!("compile bench: {n} Ingresses ...");
        rows.push(time_size(n, &pem));
    }

    let mut out = String::new();
    let tls = if every == 0 {
        "no TLS".to_owned()
    } else {
        format!(
            "every {every}th Ingress has TLS with its own Secret ({})",
            pem.kind
        )
    };
    let _ = writeln!(
        out,
        "### Route-table compile (`cargo bench -p switchyard-proxy --bench compile`)\n\n\
         Per Ingress: 1 host, 3 paths (2 Prefix, 1 Exact), 1 Service, 1 EndpointSlice with 3 \
         endpoints; {tls}. Times: median (min–max) in ms. Memory: RSS growth in a fresh process \
         (upper bounds, see the bench's doc comment).\n"
    );
    let _ = writeln!(
        out,
        "| Ingresses | objects | YAML | hosts / paths / certs | parse YAML → Snapshot | compile Snapshot → RouteTable | Snapshot RSS | 1st table RSS | 2nd table RSS (swap) | process peak RSS |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} MiB | {} / {} / {} | {} ({}–{}) | {} ({}–{}) ×{} | {} MiB | {} MiB | {} MiB | {} MiB |",
            r.n,
            r.objects,
            r.yaml_bytes as f64 / 1048576.0,
            r.hosts,
            r.paths,
            r.certs,
            ms(r.parse.0),
            ms(r.parse.1),
            ms(r.parse.2),
            ms(r.compile.0),
            ms(r.compile.1),
            ms(r.compile.2),
            r.iterations,
            mib(&r.memory, "snapshot_kib"),
            mib(&r.memory, "first_table_kib"),
            mib(&r.memory, "second_table_kib"),
            mib(&r.memory, "peak_kib"),
        );
        if r.problems > 0 || r.served != r.n {
            let _ = writeln!(
                out,
                "\n**Warning:** at {} Ingresses compile served {} and reported {} problems.\n",
                r.n, r.served, r.problems
            );
        }
    }
    print!("{out}");
    if let Ok(path) = std::env::var("BENCH_OUT") {
        std::fs::write(&path, &out).expect("write BENCH_OUT");
    }
}
