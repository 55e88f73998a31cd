//! `kubectl switchyard`: the verbs of a rollout (promote, abort, pause, resume, retry, undo)
//! and a status view. Verbs are requests the operator acts on: promote, abort, retry and undo
//! set a `switchyard.dev/<verb>` annotation to a fresh timestamp (the operator acts once per
//! new value and records it in `status.handledActions`); pause and resume set `spec.paused`.

use std::fmt::Write as _;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use serde_json::{Value, json};
use switchyard_crds::{Backend, Certificate, RolloutRoute, condition};

/// The annotation that asks the operator to perform `verb` once.
pub fn action_annotation(verb: &str) -> String {
    format!("{}/{verb}", switchyard_crds::GROUP)
}

/// A JSON merge patch that requests `verb` at `now`.
pub fn action_patch(verb: &str, now: Timestamp) -> Value {
    json!({ "metadata": { "annotations": { action_annotation(verb): now.to_string() } } })
}

/// A JSON merge patch for `spec.paused`.
pub fn pause_patch(paused: bool) -> Value {
    json!({ "spec": { "paused": paused } })
}

fn backend(b: Option<&Backend>) -> String {
    b.map(|b| format!("{}:{}", b.service, port_text(&b.port)))
        .unwrap_or_else(|| "-".into())
}

fn port_text(port: &impl serde::Serialize) -> String {
    match serde_json::to_value(port) {
        Ok(Value::String(s)) => s,
        Ok(Value::Number(n)) => n.to_string(),
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// Aligns rows under a header, kubectl style.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<width$}   ", width = widths[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// One line per RolloutRoute.
pub fn rollout_rows(routes: &[RolloutRoute], with_namespace: bool) -> String {
    let mut header = vec![
        "NAME", "PHASE", "STABLE", "DESIRED", "STEP", "WEIGHT", "MESSAGE",
    ];
    if with_namespace {
        header.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = routes
        .iter()
        .map(|r| {
            let s = r.status.clone().unwrap_or_default();
            let mut row = vec![
                r.metadata.name.clone().unwrap_or_default(),
                s.phase
                    .map(|p| format!("{p:?}"))
                    .unwrap_or_else(|| "Pending".into()),
                backend(s.stable_backend.as_ref()),
                backend(s.desired_backend.as_ref().or(Some(&r.spec.backend))),
                opt(s.current_step),
                s.canary_weight
                    .map(|w| format!("{w}%"))
                    .unwrap_or_else(|| "-".into()),
                s.message.unwrap_or_default(),
            ];
            if with_namespace {
                row.insert(0, r.metadata.namespace.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    table(&header, &rows)
}

/// One line per Certificate.
pub fn certificate_rows(certs: &[Certificate], with_namespace: bool) -> String {
    let mut header = vec!["NAME", "READY", "SECRET", "NOT AFTER", "RENEWAL", "REASON"];
    if with_namespace {
        header.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = certs
        .iter()
        .map(|c| {
            let s = c.status.clone().unwrap_or_default();
            let ready = condition::find(&s.conditions, condition::READY);
            let mut row = vec![
                c.metadata.name.clone().unwrap_or_default(),
                ready
                    .map(|r| r.status.clone())
                    .unwrap_or_else(|| "Unknown".into()),
                c.spec.secret_name.clone(),
                opt(s.not_after.map(|t| t.0)),
                opt(s.renewal_time.map(|t| t.0)),
                ready.map(|r| r.reason.clone()).unwrap_or_default(),
            ];
            if with_namespace {
                row.insert(0, c.metadata.namespace.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    table(&header, &rows)
}

/// The conditions block of `kubectl switchyard status NAME`.
pub fn conditions_block(conditions: &[Condition]) -> String {
    if conditions.is_empty() {
        return "Conditions: none yet (has the operator seen this resource?)\n".into();
    }
    let rows: Vec<Vec<String>> = conditions
        .iter()
        .map(|c| {
            vec![
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.last_transition_time.0.to_string(),
                c.message.clone(),
            ]
        })
        .collect();
    format!(
        "Conditions:\n{}",
        table(&["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], &rows)
    )
}

/// The status patch (server-side apply, field manager `kubectl-switchyard`) that asks the
/// operator to issue a Certificate again now: Issuing True, reason ManuallyTriggered
/// (cert-manager's `cmctl renew` does the same).
pub fn renew_patch(generation: Option<i64>, now: Timestamp) -> Value {
    json!({
        "apiVersion": "switchyard.dev/v1alpha1",
        "kind": "Certificate",
        "status": {"conditions": [{
            "type": condition::ISSUING,
            "status": "True",
            "reason": "ManuallyTriggered",
            "message": "renewal requested with kubectl switchyard cert renew",
            "observedGeneration": generation,
            "lastTransitionTime": now.to_string(),
        }]}
    })
}

/// `kubectl switchyard cert status NAME`: the whole story in one screen: the certificate,
/// its conditions, the order in flight, each name's authorization with the CA's last error,
/// and when the next attempt is.
pub fn certificate_story(cert: &Certificate) -> String {
    let s = cert.status.clone().unwrap_or_default();
    let spec = &cert.spec;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Certificate {}/{}",
        cert.metadata.namespace.as_deref().unwrap_or_default(),
        cert.metadata.name.as_deref().unwrap_or_default()
    );
    let _ = writeln!(out, "  DNS names:   {}", spec.dns_names.join(", "));
    let _ = writeln!(
        out,
        "  Issuer:      {} {}",
        spec.issuer_ref.kind().as_str(),
        spec.issuer_ref.name
    );
    let _ = writeln!(out, "  Secret:      {}", spec.secret_name);
    let _ = writeln!(
        out,
        "  Valid:       {} .. {}",
        opt(s.not_before.as_ref().map(|t| t.0)),
        opt(s.not_after.as_ref().map(|t| t.0))
    );
    let _ = writeln!(
        out,
        "  Renewal:     {}",
        opt(s.renewal_time.as_ref().map(|t| t.0))
    );
    if let Some(order) = &s.order {
        let _ = writeln!(
            out,
            "  Order:       {} (created {})",
            order.url,
            opt(order.created_time.as_ref().map(|t| t.0))
        );
    }
    if let Some(attempts) = s.failed_issuance_attempts {
        let _ = writeln!(
            out,
            "  Failures:    {attempts} in a row, last at {}; next attempt at {}",
            opt(s.last_failure_time.as_ref().map(|t| t.0)),
            s.next_retry_time.as_ref().map_or_else(
                || "- (after a spec change)".to_string(),
                |t| t.0.to_string()
            )
        );
    }
    out.push('\n');
    out.push_str(&conditions_block(&s.conditions));
    if !s.authorizations.is_empty() {
        let rows: Vec<Vec<String>> = s
            .authorizations
            .iter()
            .map(|a| {
                vec![
                    a.dns_name.clone(),
                    format!("{:?}", a.state),
                    opt(a.last_attempt_time.as_ref().map(|t| t.0)),
                    opt(a.next_retry_time.as_ref().map(|t| t.0)),
                    match (&a.error_type, &a.error_detail) {
                        (None, None) => String::new(),
                        (t, d) => format!(
                            "{}: {}",
                            t.as_deref().unwrap_or("error"),
                            d.as_deref().unwrap_or("no detail")
                        ),
                    },
                ]
            })
            .collect();
        let _ = write!(
            out,
            "\nAuthorizations:\n{}",
            table(
                &["NAME", "STATE", "LAST ATTEMPT", "NEXT RETRY", "CA ERROR"],
                &rows
            )
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_story_shows_conditions_authorizations_and_the_next_attempt() {
        let cert: Certificate = serde_json::from_value(json!({
            "apiVersion": "switchyard.dev/v1alpha1",
            "kind": "Certificate",
            "metadata": {"name": "shop", "namespace": "web"},
            "spec": {
                "secretName": "shop-tls",
                "dnsNames": ["shop.example.com"],
                "issuerRef": {"kind": "ClusterIssuer", "name": "letsencrypt"}
            },
            "status": {
                "conditions": [{
                    "type": "Ready", "status": "False", "reason": "Failed",
                    "message": "the order is invalid; next attempt at 2026-11-22T21:05:00Z",
                    "lastTransitionTime": "2026-11-22T21:00:00Z"
                }],
                "failedIssuanceAttempts": 1,
                "lastFailureTime": "2026-11-22T21:00:00Z",
                "nextRetryTime": "2026-11-22T21:05:00Z",
                "authorizations": [{
                    "dnsName": "shop.example.com", "state": "Invalid",
                    "errorType": "urn:ietf:params:acme:error:unauthorized",
                    "errorDetail": "Invalid response: 404",
                    "nextRetryTime": "2026-11-22T21:05:00Z"
                }]
            }
        }))
        .expect("valid Certificate");
        let story = certificate_story(&cert);
        for expected in [
            "Certificate web/shop",
            "ClusterIssuer letsencrypt",
            "1 in a row",
            "next attempt at 2026-11-22T21:05:00Z",
            "Ready   False",
            "urn:ietf:params:acme:error:unauthorized: Invalid response: 404",
            "shop.example.com   Invalid",
        ] {
            assert!(story.contains(expected), "{expected:?} in\n{story}");
        }
        let patch = renew_patch(Some(3), "2026-11-22T21:30:00Z".parse().expect("time"));
        assert_eq!(
            patch["status"]["conditions"][0]["reason"],
            "ManuallyTriggered"
        );
        assert_eq!(patch["status"]["conditions"][0]["observedGeneration"], 3);
    }

    #[test]
    fn action_patch_sets_the_verb_annotation_to_the_time() {
        let now: Timestamp = "2026-11-22T21:30:00Z".parse().expect("time");
        assert_eq!(
            action_patch("promote", now),
            json!({"metadata": {"annotations": {"switchyard.dev/promote": "2026-11-22T21:30:00Z"}}})
        );
        assert_eq!(pause_patch(true), json!({"spec": {"paused": true}}));
    }

    #[test]
    fn table_aligns_columns_and_trims_the_last() {
        let t = table(
            &["NAME", "PHASE"],
            &[
                vec!["shop".into(), "Healthy".into()],
                vec!["a-long-name".into(), "Paused".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME          PHASE\nshop          Healthy\na-long-name   Paused\n"
        );
    }

    #[test]
    fn a_rollout_route_without_status_reads_pending_with_its_spec_backend() {
        let route: RolloutRoute = serde_json::from_value(json!({
            "apiVersion": "switchyard.dev/v1alpha1",
            "kind": "RolloutRoute",
            "metadata": {"name": "shop", "namespace": "web"},
            "spec": {
                "hosts": ["shop.example.com"],
                "backend": {"service": "shop-v2", "port": 80},
                "strategy": {"canary": {"steps": [{"setWeight": 10}]}}
            }
        }))
        .expect("valid RolloutRoute");
        let out = rollout_rows(&[route], true);
        let line = out.lines().nth(1).expect("a row");
        assert!(line.starts_with("web"), "{out}");
        assert!(
            line.contains("Pending") && line.contains("shop-v2:80"),
            "{out}"
        );
    }
}
