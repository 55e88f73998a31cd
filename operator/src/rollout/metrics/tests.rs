//! The parser and the interval arithmetic on two real scrapes of `switchyard-proxy --manifests`
//! (scrape-before.txt, scrape-after.txt: the same proxy a few seconds apart; the upstream
//! timing and size families are left out). Namespace `web`: Ingress `shop` → shop-v1 with the
//! canary `shop-canary` → shop-v2:80 (weight 25, answering 500) attached, and `cart-preview` →
//! cart-v2 (answering 200 after 30 ms, and 501 to a POST).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;

const BEFORE: &str = include_str!("scrape-before.txt");
const AFTER: &str = include_str!("scrape-after.txt");
const REPLICA: &str = "http://10.0.0.7:10254/metrics";

fn backend(service: &str, port: i32) -> Backend {
    Backend {
        service: service.into(),
        port: IntOrString::Int(port),
    }
}

fn scrape(text: &str, selector: &Selector) -> HashMap<String, Snapshot> {
    HashMap::from([(
        REPLICA.to_owned(),
        Snapshot::parse(text, selector).expect("the proxy's text parses"),
    )])
}

fn window(before: &str, after: &str, selector: &Selector) -> Window {
    Window::between(&scrape(before, selector), &scrape(after, selector))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn parses_every_sample_of_the_proxy() {
    let samples = parse(AFTER, |_| true).expect("parses");
    let requests: Vec<&Sample> = samples.iter().filter(|s| s.name == REQUESTS).collect();
    assert_eq!(requests.len(), 4);
    let canary = requests
        .iter()
        .find(|s| s.label("canary") == Some("web-shop-v2-80"))
        .expect("the canary's series");
    assert_eq!(canary.label("ingress"), Some("shop"));
    assert_eq!(canary.label("service"), Some("shop-v1"));
    assert_eq!(canary.label("status"), Some("500"));
    assert_eq!(canary.value, 25.0);
    // Go's float format, and counters without labels.
    let reload = samples
        .iter()
        .find(|s| s.name.ends_with("_reload_successful_timestamp_seconds"))
        .expect("gauge");
    assert_eq!(reload.value, 1.79645629e9);
    let accepted = samples
        .iter()
        .find(|s| s.name == "switchyard_connections_accepted_total")
        .expect("counter");
    assert!(accepted.labels.is_empty() && accepted.value == 117.0);
    let inf = samples
        .iter()
        .find(|s| s.label("le") == Some("+Inf"))
        .expect("+Inf bucket");
    assert!(inf.name.ends_with("_bucket"));
}

#[test]
fn parses_escapes_timestamps_and_special_values() {
    let text = "# HELP x a \"help\"\n\
                x{a=\"q\\\"uote\",b=\"back\\\\slash\",c=\"new\\nline\",} 1 1700000000000\n\
                y +Inf\n\
                y_nan NaN\n\
                z{  a = \"1\" , b=\"{},=\"} -2.5e-3\n";
    let samples = parse(text, |_| true).expect("parses");
    assert_eq!(
        samples[0].labels,
        vec![
            ("a".to_owned(), "q\"uote".to_owned()),
            ("b".to_owned(), "back\\slash".to_owned()),
            ("c".to_owned(), "new\nline".to_owned()),
        ]
    );
    assert_eq!(samples[0].value, 1.0);
    assert_eq!(samples[1].value, f64::INFINITY);
    assert!(samples[2].value.is_nan());
    assert_eq!(samples[3].label("b"), Some("{},="));
    assert_eq!(samples[3].value, -0.0025);
}

#[test]
fn refuses_what_is_not_prometheus_text_with_the_line() {
    let cases = [
        (
            "<html><body>Not Found</body></html>",
            1,
            "not a metric name",
        ),
        ("ok 1\nbroken{a=\"1\" 2\n", 2, "labels not separated by ,"),
        ("x{a=1} 2", 1, "a label value without quotes"),
        ("x{a=\"1} 2", 1, "an unterminated label value"),
        ("x{a=\"1\"} many", 1, "no number after the labels"),
        ("x 1 2 3", 1, "unexpected text after the value"),
        ("x", 1, "no value"),
    ];
    for (text, line, why) in cases {
        let error = parse(text, |_| true).expect_err(text);
        assert_eq!((error.line, error.why), (line, why), "{text}");
    }
    // Families that are not wanted are not looked into beyond their name.
    assert_eq!(
        parse("other{this is not labels} 1\n", |n| n != "other"),
        Ok(vec![])
    );
}

#[test]
fn the_canary_interval_of_two_real_scrapes() {
    // 60 requests to shop.example.com between the scrapes: 15 went to the canary (25 %), all
    // answered 500.
    let selector = Selector::new("web", "shop", &backend("shop-v2", 80));
    let w = window(BEFORE, AFTER, &selector);
    assert_eq!((w.requests, w.server_errors), (15.0, 15.0));
    let m = w.measurement(&backend("shop-v2", 80), Timestamp::UNIX_EPOCH, Some(99.0));
    assert_eq!(m.requests, 15);
    assert_eq!(m.success_rate, Some(0.0));
    // 14 of 15 under 5 ms, one under 10 ms: p99 lies in (5 ms, 10 ms].
    let p99 = m.latency.expect("latency").as_secs_f64();
    assert!(close(p99, 0.005 + 0.005 * (14.85 - 14.0)), "{p99}");
    assert_eq!(m.error, None);
}

#[test]
fn the_preview_interval_of_two_real_scrapes() {
    // Blue-green: every series of the preview Ingress; 10 GETs of about 30 ms in between.
    let selector = Selector::new("web", "cart", &backend("cart-v2", 80));
    let w = window(BEFORE, AFTER, &selector);
    assert_eq!((w.requests, w.server_errors), (10.0, 0.0));
    // Buckets: 2 new observations ≤ 50 ms, 8 in (50 ms, 100 ms].
    assert!(close(
        w.quantile(0.5).expect("p50"),
        0.05 + 0.05 * (3.0 / 8.0)
    ));
    assert!(close(
        w.quantile(0.99).expect("p99"),
        0.05 + 0.05 * (7.9 / 8.0)
    ));
    let m = w.measurement(&backend("cart-v2", 80), Timestamp::UNIX_EPOCH, Some(50.0));
    assert_eq!(m.success_rate, Some(1.0));
    assert_eq!(m.latency, Some(Duration::from_secs_f64(0.06875)));
}

#[test]
fn other_routes_and_backends_are_not_counted() {
    for selector in [
        // The stable backend is not the new one.
        Selector::new("web", "shop", &backend("shop-v1", 80)),
        // Same canary label in another namespace, or on another route.
        Selector::new("other", "shop", &backend("shop-v2", 80)),
        Selector::new("web", "checkout", &backend("shop-v2", 80)),
        // The canary's port by name is another label.
        Selector::new("web", "shop", &backend("shop-v2", 8080)),
    ] {
        let w = window(BEFORE, AFTER, &selector);
        assert_eq!(w, Window::default(), "{selector:?}");
    }
}

#[test]
fn without_requests_nothing_is_measured() {
    let selector = Selector::new("web", "shop", &backend("shop-v2", 80));
    let w = window(AFTER, AFTER, &selector);
    let m = w.measurement(&backend("shop-v2", 80), Timestamp::UNIX_EPOCH, Some(99.0));
    assert_eq!((m.requests, m.success_rate, m.latency), (0, None, None));
}

/// One series of the canary of `shop`: `requests` answered `status`, of which `fast` within 5
/// ms and the rest within 1 s.
fn series(status: u16, requests: u64, fast: u64) -> String {
    let labels = format!(
        "canary=\"web-shop-v2-80\",controller_class=\"c\",controller_namespace=\"ingress\",controller_pod=\"p\",host=\"shop.example.com\",ingress=\"shop\",method=\"GET\",namespace=\"web\",path=\"/\",service=\"shop-v1\",status=\"{status}\""
    );
    format!(
        "{DURATION}_bucket{{{labels},le=\"0.005\"}} {fast}\n\
         {DURATION}_bucket{{{labels},le=\"1\"}} {requests}\n\
         {DURATION}_bucket{{{labels},le=\"+Inf\"}} {requests}\n\
         {DURATION}_count{{{labels}}} {requests}\n\
         {REQUESTS}{{{labels}}} {requests}\n"
    )
}

fn snapshots(replicas: &[(&str, String)]) -> HashMap<String, Snapshot> {
    let selector = Selector::new("web", "shop", &backend("shop-v2", 80));
    replicas
        .iter()
        .map(|(url, text)| {
            (
                (*url).to_owned(),
                Snapshot::parse(text, &selector).expect("parses"),
            )
        })
        .collect()
}

#[test]
fn replicas_are_summed() {
    let before = snapshots(&[("a", series(200, 100, 100)), ("b", series(200, 50, 50))]);
    let after = snapshots(&[
        ("a", series(200, 190, 190) + &series(503, 10, 0)),
        ("b", series(200, 150, 100)),
    ]);
    let w = Window::between(&before, &after);
    assert_eq!((w.requests, w.server_errors), (200.0, 10.0));
    let m = w.measurement(&backend("shop-v2", 80), Timestamp::UNIX_EPOCH, Some(50.0));
    assert_eq!(m.success_rate, Some(0.95));
    // 140 of 200 within 5 ms: the median is in the first bucket.
    assert_eq!(
        m.latency,
        Some(Duration::from_secs_f64(0.005 * (100.0 / 140.0)))
    );
}

#[test]
fn a_restarted_proxy_counts_from_zero() {
    // Replica a restarted between the scrapes: its counter went from 500 down to 30.
    let before = snapshots(&[("a", series(200, 500, 500)), ("b", series(200, 50, 50))]);
    let after = snapshots(&[("a", series(200, 30, 30)), ("b", series(200, 60, 60))]);
    let w = Window::between(&before, &after);
    assert_eq!(w.requests, 30.0 + 10.0);
    assert!(close(w.quantile(1.0).expect("p100"), 0.005));
}

#[test]
fn replicas_new_or_gone_and_series_that_vanish() {
    // c appeared (its counts span an unknown time: left out), b is gone, and a's 500 series
    // vanished (its Ingress went) while a new 200 series appeared (all of it is new).
    let before = snapshots(&[("a", series(500, 40, 40)), ("b", series(200, 1000, 1000))]);
    let after = snapshots(&[("a", series(200, 7, 7)), ("c", series(200, 900, 900))]);
    let w = Window::between(&before, &after);
    assert_eq!((w.requests, w.server_errors), (7.0, 0.0));
}

#[test]
fn quantiles_follow_histogram_quantile() {
    let mut w = Window::default();
    for (le, count) in [
        (0.1, 10.0),
        (0.5, 60.0),
        (1.0, 90.0),
        (f64::INFINITY, 100.0),
    ] {
        w.buckets.insert(OrderedBound(le), count);
    }
    assert!(close(w.quantile(0.0).expect("p0"), 0.0));
    assert!(close(w.quantile(0.05).expect("p5"), 0.05));
    assert!(close(
        w.quantile(0.5).expect("p50"),
        0.1 + 0.4 * (40.0 / 50.0)
    ));
    assert!(close(w.quantile(0.9).expect("p90"), 1.0));
    // Beyond the highest finite bound: that bound, as PromQL answers.
    assert!(close(w.quantile(0.95).expect("p95"), 1.0));
    assert_eq!(w.quantile(1.5), None);
    // Without +Inf the histogram is incomplete: no answer.
    w.buckets.remove(&OrderedBound(f64::INFINITY));
    assert_eq!(w.quantile(0.5), None);
    assert_eq!(Window::default().quantile(0.5), None);
}
