//! Certificates end to end: the real apiserver, the real operator, the real proxy and a real
//! Pebble. Pebble fetches every HTTP-01 token through the proxy (its DNS answers 127.0.0.1 for
//! every name, and its HTTP-01 port is the proxy's HTTP port), so what is tested is what a user
//! gets: challenge Ingresses answered by the proxy, the chain in the Secret, the proxy serving
//! it over HTTPS, renewal, and failures with the CA's word.

mod common;

use std::time::Duration;

use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use switchyard_crds::AuthorizationState;
use switchyard_tests::{eventually, ports::free_ports, shared_cluster};

use common::{
    Defer, ISSUE_WITHIN, KeptConnection, acme_issuer, certificate, chain_of, events, expect_events,
    ingress_class, is_ready, ready_of, setup, start_proxy, tls_ingress, verify_chain,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_for_two_names_through_the_proxy_and_serves_it_over_https() {
    let s = setup("certs", Duration::from_secs(3600), None).await;
    let names = ["shop.example.com", "www.shop.example.com"];
    s.apply(&acme_issuer("Issuer", "acme", &s.pebble, &s.class));
    s.apply(&tls_ingress("shop", &s.class, &names, "shop-tls", ""));
    s.apply(&certificate("shop", "shop-tls", &names, "acme"));

    let cert = s.wait_ready("shop", ISSUE_WITHIN).await;
    let status = cert.status.clone().expect("status");
    assert_eq!(status.order, None, "no order left in flight");
    assert!(status.not_after.is_some() && status.renewal_time.is_some());
    assert!(status.renewal_time < status.not_after);
    assert_eq!(status.failed_issuance_attempts, None);
    let mut authorized: Vec<_> = status
        .authorizations
        .iter()
        .map(|a| (a.dns_name.as_str(), a.state))
        .collect();
    authorized.sort_by_key(|(name, _)| *name);
    assert_eq!(
        authorized,
        [
            ("shop.example.com", AuthorizationState::Valid),
            ("www.shop.example.com", AuthorizationState::Valid)
        ]
    );

    // The Secret: a kubernetes.io/tls Secret with our marks, whose chain verifies.
    let secret = s.secrets().get("shop-tls").await.expect("Secret");
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let annotations = secret.annotations();
    assert_eq!(annotations["switchyard.dev/certificate-name"], "shop");
    assert_eq!(annotations["switchyard.dev/issuer-name"], "acme");
    assert_eq!(annotations["switchyard.dev/issuer-kind"], "Issuer");
    assert!(
        secret
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key("tls.key"))
    );
    let root = s.pebble.issuing_root_pem().expect("Pebble's root");
    verify_chain(&chain_of(&secret), &root, &names);

    // Done: no challenge Ingress left, one order, and the story in Events.
    eventually(
        "the challenge Ingresses are removed",
        Duration::from_secs(10),
        || async { s.challenge_ingresses().await == 0 },
    )
    .await;
    expect_events(&s.client, s.ns.name(), "shop", "OrderCreated", 1).await;
    for reason in ["ChallengePresented", "Issued", "RenewalScheduled"] {
        expect_events(&s.client, s.ns.name(), "shop", reason, 1).await;
    }

    // The proxy serves it for both names.
    for host in names {
        s.serves_over_https(host, &secret, &root).await;
    }

    // kubectl switchyard cert status tells the story; cert renew issues again now.
    let plugin = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-switchyard"))
            .arg("--kubeconfig")
            .arg(s.cluster.kubeconfig())
            .args(["-n", s.ns.name()])
            .args(args)
            .output()
            .expect("run kubectl-switchyard");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let story = plugin(&["cert", "status", "shop"]);
    let words = story.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("Ready True Issued") && words.contains("www.shop.example.com Valid"),
        "{story}"
    );
    let first_leaf = chain_of(&secret).first().cloned();
    assert!(plugin(&["cert", "renew", "shop"]).contains("renewal requested"));
    let secrets = s.secrets();
    eventually("the certificate is issued again", ISSUE_WITHIN, || async {
        secrets
            .get_opt("shop-tls")
            .await
            .ok()
            .flatten()
            .is_some_and(|s| chain_of(&s).first() != first_leaf.as_ref())
    })
    .await;
    s.wait_ready("shop", Duration::from_secs(10)).await;
    expect_events(&s.client, s.ns.name(), "shop", "OrderCreated", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_cannot_validate_fails_with_the_cas_detail_and_no_order_loop() {
    // The self-check passes through a second proxy that serves the solver's class; Pebble asks
    // the first, which does not: a route that works from inside but not from the CA's side.
    let cluster = shared_cluster().expect("control plane");
    let aside_port = free_ports(1).expect("port")[0];
    let s = setup(
        "certfail",
        Duration::from_secs(3600),
        Some(vec![format!("http://127.0.0.1:{aside_port}")]),
    )
    .await;
    let aside_class = format!("aside-{}", s.ns.name());
    let aside_controller = format!("switchyard.dev/aside-{}", s.ns.name());
    s.apply(&ingress_class(&aside_class, &aside_controller));
    let _remove_class = Defer(|| {
        let _ = cluster.kubectl_ok(&["delete", "ingressclass", &aside_class, "--wait=false"]);
    });
    let _aside = start_proxy(
        cluster.kubeconfig(),
        s.ns.name(),
        &aside_controller,
        aside_port,
        s.logs.path(),
        "aside-proxy",
    );
    s.apply(&acme_issuer("Issuer", "acme", &s.pebble, &aside_class));
    s.apply(&certificate("bad", "bad-tls", &["bad.example.com"], "acme"));

    let certs = s.certs();
    eventually(
        "the Certificate fails with the CA's detail",
        ISSUE_WITHIN,
        || async {
            certs.get_opt("bad").await.ok().flatten().is_some_and(|c| {
                ready_of(&c)
                    .is_some_and(|(status, reason, _)| status == "False" && reason == "Failed")
            })
        },
    )
    .await;
    let cert = certs.get("bad").await.expect("Certificate");
    let (_, _, message) = ready_of(&cert).expect("Ready");
    assert!(
        message.contains("bad.example.com")
            && message.contains("urn:ietf:params:acme:error:unauthorized")
            && message.contains("next attempt at"),
        "{message}"
    );
    let status = cert.status.clone().expect("status");
    assert_eq!(status.failed_issuance_attempts, Some(1));
    assert_eq!(status.order, None);
    let now = jiff::Timestamp::now();
    let next = status.next_retry_time.clone().expect("a retry time").0;
    assert!(
        next > now
            .saturating_add(jiff::SignedDuration::from_secs(4 * 60))
            .expect("time"),
        "the first retry is about 5 minutes away: {next}"
    );
    let authz = &status.authorizations[0];
    assert_eq!(authz.state, AuthorizationState::Invalid);
    assert_eq!(
        authz.error_type.as_deref(),
        Some("urn:ietf:params:acme:error:unauthorized")
    );
    assert!(authz.error_detail.is_some() && authz.next_retry_time.is_some());
    assert!(s.secrets().get_opt("bad-tls").await.expect("get").is_none());

    // No order loop: nudged (a new annotation wakes the controller) and given time, it waits.
    let nudge = serde_json::json!({"metadata": {"annotations": {"test/nudge": "1"}}});
    certs
        .patch("bad", &PatchParams::default(), &Patch::Merge(&nudge))
        .await
        .expect("annotate");
    tokio::time::sleep(Duration::from_secs(5)).await;
    expect_events(&s.client, s.ns.name(), "bad", "OrderCreated", 1).await;
    let cert = certs.get("bad").await.expect("Certificate");
    assert_eq!(
        cert.status.and_then(|s| s.failed_issuance_attempts),
        Some(1)
    );
    assert_eq!(s.challenge_ingresses().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_certificates_are_renewed_without_a_restart() {
    // 30 s certificates: renewal is due at two thirds, 20 s after issuance.
    let s = setup("certrenew", Duration::from_secs(30), None).await;
    let host = "renew.example.com";
    s.apply(&acme_issuer("Issuer", "acme", &s.pebble, &s.class));
    s.apply(&tls_ingress("renew", &s.class, &[host], "renew-tls", ""));
    s.apply(&certificate("renew", "renew-tls", &[host], "acme"));
    let first = s.wait_ready("renew", ISSUE_WITHIN).await;
    let first_status = first.status.clone().expect("status");
    let first_secret = s.secrets().get("renew-tls").await.expect("Secret");
    let root = s.pebble.issuing_root_pem().expect("root");
    s.serves_over_https(host, &first_secret, &root).await;

    // A client connected before the renewal keeps its connection (and the old certificate).
    let port = s.proxy.https_port;
    let (host_name, root_pem) = (host.to_owned(), root.clone());
    let mut kept = tokio::task::spawn_blocking(move || {
        let mut kept = KeptConnection::open(port, &host_name, &root_pem)?;
        kept.get().map(|status| (kept, status))
    })
    .await
    .expect("join")
    .map(|(kept, status)| {
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        kept
    })
    .expect("a kept HTTPS connection");

    let secrets = s.secrets();
    let first_leaf = chain_of(&first_secret).first().cloned();
    eventually(
        "the certificate is renewed",
        Duration::from_secs(45),
        || async {
            secrets
                .get_opt("renew-tls")
                .await
                .ok()
                .flatten()
                .is_some_and(|s| chain_of(&s).first() != first_leaf.as_ref())
        },
    )
    .await;
    // Ready all along (the old certificate served meanwhile); the status moves on.
    let certs = s.certs();
    let later = || async {
        certs.get("renew").await.ok().is_some_and(|c| {
            is_ready(&c) && c.status.and_then(|st| st.not_after) > first_status.not_after.clone()
        })
    };
    eventually(
        "the status shows a later expiry",
        Duration::from_secs(10),
        later,
    )
    .await;
    let status = certs
        .get("renew")
        .await
        .expect("Certificate")
        .status
        .expect("status");
    assert!(status.renewal_time > first_status.renewal_time);
    let second_secret = s.secrets().get("renew-tls").await.expect("Secret");
    verify_chain(&chain_of(&second_secret), &root, &[host]);
    s.serves_over_https(host, &second_secret, &root).await;
    let (status, kept) = tokio::task::spawn_blocking(move || (kept.get(), kept))
        .await
        .expect("join");
    assert!(
        status
            .as_deref()
            .is_ok_and(|s| s.starts_with("HTTP/1.1 200")),
        "the connection opened before the renewal was dropped: {status:?}"
    );
    assert_eq!(
        kept.leaf(),
        first_leaf,
        "the kept connection is the one set up before"
    );
    let renewed = || async { events(&s.client, s.ns.name(), "renew", "OrderCreated").await >= 2 };
    eventually(
        "a second OrderCreated Event",
        Duration::from_secs(10),
        renewed,
    )
    .await;
}
