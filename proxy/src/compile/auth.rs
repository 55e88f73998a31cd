//! The authentication annotations (`auth-type`, `auth-secret*`, `auth-realm`, `auth-url` and its
//! options, `satisfy`, `enable-global-auth`) and the controller ConfigMap's `global-auth-*`
//! keys: values are validated when the annotations are parsed ([`parse`]), and the Secret and
//! ConfigMap they name are read when the Ingress is compiled ([`resolve`]). Anything that cannot
//! be honoured closes the paths: these annotations restrict access.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};

use super::canary::PREFIX;
use super::config::ConfigProblem;
use super::policy::Finding;
use crate::auth::htpasswd::Users;
use crate::auth::{Auth, Basic, CachePolicy, Codes, Digest, External, digest};
use crate::model::{ObjectKey, Severity, Snapshot};
use crate::variables::{RequestView, Scope, Template};

/// The authentication an Ingress's annotations ask for, before its Secret and ConfigMap are read.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub basic: Option<BasicSpec>,
    pub external: Option<ExternalSpec>,
    /// `enable-global-auth: "false"`.
    pub no_global: bool,
    /// `satisfy: any`.
    pub satisfy_any: bool,
}

impl Spec {
    pub fn is_empty(&self) -> bool {
        self.basic.is_none() && self.external.is_none() && !self.no_global && !self.satisfy_any
    }
}

#[derive(Clone, Debug)]
pub struct BasicSpec {
    /// `auth-secret` as written: `NAME` or `NAMESPACE/NAME`.
    secret: String,
    /// `auth-secret-type: auth-map`.
    map: bool,
    challenge: HeaderValue,
    /// `auth-type: digest`: the Secret holds htdigest lines of `realm`.
    digest: bool,
    realm: String,
}

#[derive(Clone, Debug)]
pub struct ExternalSpec {
    external: External,
    /// `auth-proxy-set-headers`: the ConfigMap, as written.
    proxy_set_headers: Option<String>,
}

/// The annotation names this module reads (without the prefix).
pub fn handles(name: &str) -> bool {
    matches!(
        name,
        "auth-type"
            | "auth-secret"
            | "auth-secret-type"
            | "auth-realm"
            | "satisfy"
            | "enable-global-auth"
    ) || (name.starts_with("auth-")
        && !name.starts_with("auth-tls-")
        && name != "auth-snippet"
        && external_option(name.trim_start_matches("auth-")))
}

/// The options of external auth, as suffixes of `auth-` and `global-auth-`.
fn external_option(suffix: &str) -> bool {
    matches!(
        suffix,
        "url"
            | "method"
            | "signin"
            | "signin-redirect-param"
            | "response-headers"
            | "request-redirect"
            | "cache-key"
            | "cache-duration"
            | "proxy-set-headers"
            | "always-set-cookie"
            | "keepalive"
            | "keepalive-share-vars"
            | "keepalive-requests"
            | "keepalive-timeout"
    )
}

/// Parses the annotations: the spec, findings (Warnings), and the reasons to close the paths.
pub fn parse(annotations: &BTreeMap<String, String>) -> (Spec, Vec<Finding>, Vec<String>) {
    let get = |name: &str| {
        annotations
            .get(&format!("{PREFIX}{name}"))
            .map(|v| v.trim())
    };
    let mut findings = Vec::new();
    let mut closed = Vec::new();
    let mut warn = |name: &str, message: String| {
        findings.push(Finding {
            annotation: format!("{PREFIX}{name}"),
            severity: Severity::Warning,
            reason: "InvalidAnnotation",
            message,
        });
    };
    let mut spec = Spec::default();

    match get("auth-type") {
        Some(kind @ ("basic" | "digest")) => match basic_spec(&get, kind == "digest") {
            Ok(basic) => spec.basic = Some(basic),
            Err(why) => closed.push(why),
        },
        Some(other) => closed.push(format!(
            "{PREFIX}auth-type: {other:?} is not basic or digest"
        )),
        None => {
            for name in ["auth-secret", "auth-secret-type", "auth-realm"] {
                if get(name).is_some() {
                    warn(name, "has no effect without auth-type; ignored".to_owned());
                }
            }
        }
    }

    let options = |suffix: &str| get(&format!("auth-{suffix}"));
    let label = |suffix: &str| format!("{PREFIX}auth-{suffix}");
    match options("url") {
        Some(_) => match external(&options, &label) {
            Ok(parsed) => {
                spec.external = Some(ExternalSpec {
                    external: parsed.external,
                    proxy_set_headers: options("proxy-set-headers")
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned),
                });
                for (name, why) in parsed.warnings {
                    let name = name.strip_prefix(PREFIX).unwrap_or(&name).to_owned();
                    warn(&name, why);
                }
            }
            Err(why) => closed.push(why),
        },
        None => {
            for (key, _) in annotations.range(format!("{PREFIX}auth-")..) {
                let Some(name) = key.strip_prefix(PREFIX) else {
                    break;
                };
                let Some(suffix) = name.strip_prefix("auth-") else {
                    break;
                };
                if suffix != "url" && external_option(suffix) {
                    warn(name, "has no effect without auth-url; ignored".to_owned());
                }
            }
        }
    }

    match get("enable-global-auth").map(parse_bool) {
        None | Some(Some(true)) => {}
        Some(Some(false)) => spec.no_global = true,
        Some(None) => warn(
            "enable-global-auth",
            "is not true or false; using true".to_owned(),
        ),
    }
    match get("satisfy") {
        None | Some("all") | Some("") => {}
        Some("any") => spec.satisfy_any = true,
        Some(other) => warn("satisfy", format!("{other:?} is not all or any; using all")),
    }
    (spec, findings, closed)
}

fn basic_spec<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    digest: bool,
) -> Result<BasicSpec, String> {
    let kind = if digest { "digest" } else { "basic" };
    let secret = match get("auth-secret") {
        None | Some("") => {
            return Err(format!(
                "{PREFIX}auth-type: {kind} needs {PREFIX}auth-secret, which is not set"
            ));
        }
        Some(secret) => secret,
    };
    let valid_name = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    let valid = match secret.split_once('/') {
        Some((ns, name)) => valid_name(ns) && valid_name(name),
        None => valid_name(secret),
    };
    if !valid {
        return Err(format!(
            "{PREFIX}auth-secret: {secret:?} is not a Secret name or NAMESPACE/NAME"
        ));
    }
    let map = match get("auth-secret-type") {
        None | Some("") | Some("auth-file") => false,
        Some("auth-map") => true,
        Some(other) => {
            return Err(format!(
                "{PREFIX}auth-secret-type: {other:?} is not auth-file or auth-map"
            ));
        }
    };
    let realm = get("auth-realm").unwrap_or("");
    if realm
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(format!(
            "{PREFIX}auth-realm: {realm:?} may not contain quotes, backslashes or control characters"
        ));
    }
    let challenge = HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
        .map_err(|_| format!("{PREFIX}auth-realm: {realm:?} is not a valid header value"))?;
    Ok(BasicSpec {
        secret: secret.to_owned(),
        map,
        challenge,
        digest,
        realm: realm.to_owned(),
    })
}

struct ParsedExternal {
    external: External,
    /// (annotation or key, why): options ignored with a warning.
    warnings: Vec<(String, String)>,
}

/// The external auth options, shared by the annotations (`auth-*`) and the ConfigMap
/// (`global-auth-*`): `get` reads an option by suffix, `label` names it in messages.
fn external<'a>(
    get: &impl Fn(&str) -> Option<&'a str>,
    label: &impl Fn(&str) -> String,
) -> Result<ParsedExternal, String> {
    let mut warnings = Vec::new();
    let url_text = get("url").unwrap_or("");
    let url = url_template(url_text).map_err(|why| format!("{}: {why}", label("url")))?;
    let method = match get("method") {
        None | Some("") => None,
        Some(m) if VALID_METHODS.contains(&m) => Method::from_bytes(m.as_bytes()).ok(),
        Some(m) => {
            return Err(format!(
                "{}: {m:?} is not one of {}",
                label("method"),
                VALID_METHODS.join(", ")
            ));
        }
    };
    let signin = match get("signin").filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => {
            let param = match get("signin-redirect-param").filter(|p| !p.is_empty()) {
                None => "rd",
                Some(p)
                    if p.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
                    }) =>
                {
                    p
                }
                Some(p) => {
                    return Err(format!(
                        "{}: {p:?} is not a URL parameter name",
                        label("signin-redirect-param")
                    ));
                }
            };
            let text = signin_with_redirect(text, param);
            Some(url_template(&text).map_err(|why| format!("{}: {why}", label("signin")))?)
        }
    };
    let mut response_headers = Vec::new();
    for name in get("response-headers")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        let valid = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(header) if valid => response_headers.push(header),
            _ => {
                return Err(format!(
                    "{}: {name:?} is not a header name",
                    label("response-headers")
                ));
            }
        }
    }
    let request_redirect = match get("request-redirect").filter(|r| !r.is_empty()) {
        None => None,
        Some(text) => Some(
            header_template(text).map_err(|why| format!("{}: {why}", label("request-redirect")))?,
        ),
    };
    let cache = match get("cache-key").filter(|k| !k.is_empty()) {
        None => None,
        Some(key) => {
            let key = Template::parse(key, Scope::Value)
                .map_err(|why| format!("{}: {why}", label("cache-key")))?;
            let valid = cache_durations(get("cache-duration").unwrap_or(""))
                .map_err(|why| format!("{}: {why}", label("cache-duration")))?;
            Some(CachePolicy { key, valid })
        }
    };
    if cache.is_none()
        && let Some(text) = get("cache-duration")
        && let Err(why) = cache_durations(text)
    {
        return Err(format!("{}: {why}", label("cache-duration")));
    }
    let always_set_cookie = match get("always-set-cookie") {
        None => false,
        Some(value) => parse_bool(value).ok_or_else(|| {
            format!(
                "{}: {value:?} is not true or false",
                label("always-set-cookie")
            )
        })?,
    };
    // Connections to the auth service are always pooled; these only need to be well-formed.
    for suffix in ["keepalive", "keepalive-requests", "keepalive-timeout"] {
        if let Some(value) = get(suffix)
            && value.parse::<i64>().is_err()
        {
            warnings.push((label(suffix), format!("{value:?} is not a number; ignored")));
        }
    }
    if let Some(value) = get("keepalive-share-vars")
        && parse_bool(value).is_none()
    {
        warnings.push((
            label("keepalive-share-vars"),
            format!("{value:?} is not true or false; ignored"),
        ));
    }
    Ok(ParsedExternal {
        external: External {
            url,
            method,
            signin,
            response_headers,
            request_redirect,
            proxy_set_headers: Vec::new(),
            cache,
            always_set_cookie,
            identity: url_text.into(),
        },
        warnings,
    })
}

const VALID_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
];

/// ingress-nginx's sign-in URL: the redirect parameter is added (`$scheme://$best_http_host
/// $escaped_request_uri`) unless the URL already has it.
fn signin_with_redirect(url: &str, param: &str) -> String {
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(""));
    let has_param = query.is_some_and(|q| {
        q.split('&').any(|pair| {
            pair.split_once('=')
                .is_some_and(|(k, v)| k == param && !v.is_empty())
        })
    });
    let redirect = "$scheme://$best_http_host$escaped_request_uri";
    match query {
        _ if has_param => url.to_owned(),
        Some(q) if !q.is_empty() => format!("{url}&{param}={redirect}"),
        Some(_) => format!("{url}{param}={redirect}"),
        None => format!("{url}?{param}={redirect}"),
    }
}

/// A URL with nginx variables: `http(s)://host...`, which must still be a valid URL once the
/// variables are expanded (checked here with a sample request).
fn url_template(text: &str) -> Result<Template, String> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{text:?} contains spaces or control characters"));
    }
    let lower = text.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(format!("{text:?} is not an http or https URL"));
    }
    let template = Template::parse(text, Scope::Value).map_err(|e| e.to_string())?;
    let expanded = sample_expansion(&template);
    let uri =
        Uri::try_from(expanded.as_str()).map_err(|_| format!("{text:?} is not a valid URL"))?;
    match uri.host() {
        Some(host) if !host.is_empty() && !host.contains("..") => Ok(template),
        _ => Err(format!("{text:?} has no valid host")),
    }
}

/// A header value with nginx variables.
fn header_template(text: &str) -> Result<Template, String> {
    let template = Template::parse(text, Scope::Value).map_err(|e| e.to_string())?;
    HeaderValue::from_str(&sample_expansion(&template))
        .map(|_| template)
        .map_err(|_| format!("{text:?} is not a valid header value"))
}

/// `template` expanded for a made-up request, to check what the literal text makes.
fn sample_expansion(template: &Template) -> String {
    let method = Method::GET;
    let uri = Uri::from_static("/sample?a=b");
    let mut headers = HeaderMap::new();
    headers.insert(http::header::HOST, HeaderValue::from_static("example.com"));
    let view = RequestView {
        method: &method,
        uri: &uri,
        version: Version::HTTP_11,
        headers: &headers,
        host: "example.com",
        server_name: "example.com",
        path: "/sample",
        client: std::net::IpAddr::from([192, 0, 2, 1]),
        client_port: 40000,
        server_port: 80,
        tls: false,
        request_id: None,
        captures: &[],
    };
    template.expand(&view)
}

/// `auth-cache-duration`: entries separated by commas, each `[code ...] time [time ...]`
/// (nginx's `proxy_cache_valid`; `any` for every code, no code for 200, 301 and 302). Empty:
/// ingress-nginx's default `200 202 401 5m`.
pub fn cache_durations(text: &str) -> Result<Vec<(Codes, Duration)>, String> {
    let text = if text.trim().is_empty() {
        "200 202 401 5m"
    } else {
        text
    };
    let mut out = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut codes = Vec::new();
        let mut any = false;
        let mut lifetime: Option<Duration> = None;
        for word in entry.split_whitespace() {
            if word == "any" || (word.len() == 3 && word.bytes().all(|b| b.is_ascii_digit())) {
                if lifetime.is_some() {
                    return Err(format!("{entry:?}: a status code follows the time"));
                }
                match word.parse::<u16>() {
                    Ok(code) if (100..=599).contains(&code) => codes.push(code),
                    Ok(_) => return Err(format!("{entry:?}: {word} is not a status code")),
                    Err(_) => any = true,
                }
            } else {
                let time = nginx_time(word).ok_or_else(|| {
                    format!("{entry:?}: {word:?} is not a status code or a time like 5m")
                })?;
                lifetime = Some(lifetime.unwrap_or_default() + time);
            }
        }
        let lifetime = lifetime.ok_or_else(|| format!("{entry:?} has no time"))?;
        let codes = match (any, codes.is_empty()) {
            (true, _) => Codes::Any,
            (false, true) => Codes::Listed(vec![200, 301, 302]),
            (false, false) => Codes::Listed(codes),
        };
        out.push((codes, lifetime));
    }
    Ok(out)
}

/// nginx's time syntax: a number with `ms`, `s`, `m`, `h`, `d`, `w`, `M` or `y`.
fn nginx_time(word: &str) -> Option<Duration> {
    let split = word.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = word.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let seconds: u64 = match unit {
        "ms" => return Some(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        "M" => 30 * 86_400,
        "y" => 365 * 86_400,
        _ => return None,
    };
    n.checked_mul(seconds).map(Duration::from_secs)
}

/// Go's `strconv.ParseBool`, which ingress-nginx uses.
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The controller ConfigMap's global external auth.
#[derive(Clone, Debug, Default)]
pub enum Global {
    #[default]
    Off,
    On(Arc<External>),
    /// Set but unusable: the paths it would guard fail closed.
    Invalid(String),
}

/// Whether a ConfigMap key is one of the global auth keys read here.
pub fn is_global_auth_key(key: &str) -> bool {
    key.strip_prefix("global-auth-")
        .is_some_and(|suffix| external_option(suffix) || suffix == "snippet")
}

/// Parses the `global-auth-*` keys of the controller ConfigMap.
pub fn parse_global(data: &BTreeMap<String, String>) -> (Global, Vec<ConfigProblem>) {
    let get = |suffix: &str| data.get(&format!("global-auth-{suffix}")).map(|v| v.trim());
    let label = |suffix: &str| format!("global-auth-{suffix}");
    let mut problems = Vec::new();
    let problem = |key: String, reason: &'static str, message: String| ConfigProblem {
        key,
        reason,
        message,
    };
    if get("url").is_none_or(str::is_empty) {
        for key in data.keys().filter(|k| is_global_auth_key(k)) {
            if key != "global-auth-url" {
                problems.push(problem(
                    key.clone(),
                    "IneffectiveConfigKey",
                    format!("ConfigMap key {key:?} has no effect without global-auth-url"),
                ));
            }
        }
        return (Global::Off, problems);
    }
    if get("snippet").is_some_and(|s| !s.is_empty()) {
        let why = "global-auth-snippet: raw nginx configuration is not supported by Switchyard"
            .to_owned();
        problems.push(problem(
            "global-auth-snippet".to_owned(),
            "InvalidConfigValue",
            format!("{why}; paths under global auth answer 503"),
        ));
        return (Global::Invalid(why), problems);
    }
    for suffix in [
        "proxy-set-headers",
        "keepalive",
        "keepalive-share-vars",
        "keepalive-requests",
        "keepalive-timeout",
    ] {
        if get(suffix).is_some() {
            let key = label(suffix);
            problems.push(problem(
                key.clone(),
                "UnsupportedConfigKey",
                format!("ConfigMap key {key:?} is not an ingress-nginx key; ignored"),
            ));
        }
    }
    match external(&get, &label) {
        Ok(parsed) => {
            for (key, why) in parsed.warnings {
                problems.push(problem(key, "InvalidConfigValue", why));
            }
            (Global::On(Arc::new(parsed.external)), problems)
        }
        Err(why) => {
            let key = why
                .split(':')
                .next()
                .unwrap_or("global-auth-url")
                .to_owned();
            problems.push(problem(
                key,
                "InvalidConfigValue",
                format!("{why}; paths under global auth answer 503"),
            ));
            (Global::Invalid(why), problems)
        }
    }
}

/// What resolving an Ingress's spec gives: the auth to apply (or why the paths close) and
/// findings about its Secret.
pub struct Resolved {
    pub auth: Result<Option<Arc<Auth>>, String>,
    pub findings: Vec<Finding>,
}

/// Reads the Secret and ConfigMap the spec names, and adds the global auth.
pub fn resolve(spec: &Spec, snapshot: &Snapshot, namespace: &str, global: &Global) -> Resolved {
    let mut findings = Vec::new();
    let auth = resolve_inner(spec, snapshot, namespace, global, &mut findings);
    Resolved { auth, findings }
}

fn resolve_inner(
    spec: &Spec,
    snapshot: &Snapshot,
    namespace: &str,
    global: &Global,
    findings: &mut Vec<Finding>,
) -> Result<Option<Arc<Auth>>, String> {
    let (basic, digest) = match &spec.basic {
        Some(basic) if basic.digest => (
            None,
            Some(resolve_digest(basic, snapshot, namespace, findings)?),
        ),
        Some(basic) => (
            Some(resolve_basic(basic, snapshot, namespace, findings)?),
            None,
        ),
        None => (None, None),
    };
    let external = match (&spec.external, global, spec.no_global) {
        (Some(own), _, _) => Some(Arc::new(resolve_external(own, snapshot, namespace)?)),
        (None, Global::On(global), false) => Some(global.clone()),
        (None, Global::Invalid(why), false) => {
            return Err(format!(
                "the controller ConfigMap's global auth cannot be honoured ({why}); set {PREFIX}enable-global-auth: \"false\" to opt out"
            ));
        }
        _ => None,
    };
    if basic.is_none() && digest.is_none() && external.is_none() {
        return Ok(None);
    }
    Ok(Some(Arc::new(Auth {
        basic,
        digest,
        external,
        satisfy_any: spec.satisfy_any,
    })))
}

/// `NAME` or `NAMESPACE/NAME` in the Ingress's namespace; other namespaces are refused, as
/// ingress-nginx refuses them by default.
fn same_namespace(written: &str, namespace: &str, what: &str) -> Result<ObjectKey, String> {
    let key = match written.split_once('/') {
        Some((ns, name)) => ObjectKey::new(ns, name),
        None => ObjectKey::new(namespace, written),
    };
    if key.namespace != namespace {
        return Err(format!(
            "{what} {key} is in another namespace; only the Ingress's own namespace is allowed"
        ));
    }
    Ok(key)
}

/// The `auth-secret` Secret (of the Ingress's own namespace) and its data.
fn secret_data(
    spec: &BasicSpec,
    snapshot: &Snapshot,
    namespace: &str,
) -> Result<(ObjectKey, BTreeMap<String, k8s_openapi::ByteString>), String> {
    let annotation = format!("{PREFIX}auth-secret");
    let key = same_namespace(&spec.secret, namespace, "Secret")
        .map_err(|why| format!("{annotation}: {why}"))?;
    let secret = snapshot
        .secrets
        .get(&key)
        .ok_or_else(|| format!("{annotation}: Secret {key} not found"))?;
    Ok((key, secret.data.clone().unwrap_or_default()))
}

fn resolve_basic(
    spec: &BasicSpec,
    snapshot: &Snapshot,
    namespace: &str,
    findings: &mut Vec<Finding>,
) -> Result<Basic, String> {
    let annotation = format!("{PREFIX}auth-secret");
    let (key, data) = secret_data(spec, snapshot, namespace)?;
    let mut version = ring::digest::Context::new(&ring::digest::SHA256);
    let (users, problems) = if spec.map {
        version.update(b"auth-map");
        let mut entries = Vec::new();
        for (user, value) in &data {
            version.update(&(user.len() as u64).to_le_bytes());
            version.update(user.as_bytes());
            version.update(&(value.0.len() as u64).to_le_bytes());
            version.update(&value.0);
            match std::str::from_utf8(&value.0) {
                Ok(text) => entries.push((user.as_str(), text)),
                Err(_) => findings.push(secret_finding(
                    &annotation,
                    &key,
                    format!("entry {user:?} is not text; that user cannot log in"),
                )),
            }
        }
        Users::from_map(entries.into_iter())
    } else {
        let file = data
            .get("auth")
            .ok_or_else(|| format!("{annotation}: Secret {key} has no key `auth` (auth-file)"))?;
        version.update(b"auth-file");
        version.update(&file.0);
        let text = std::str::from_utf8(&file.0)
            .map_err(|_| format!("{annotation}: Secret {key}: `auth` is not text"))?;
        Users::from_file(text)
    };
    for problem in &problems {
        findings.push(secret_finding(
            &annotation,
            &key,
            format!("{problem}; that line gives no user"),
        ));
    }
    let users = users.ok_or_else(|| format!("{annotation}: Secret {key} has no usable user"))?;
    let mut digest = [0u8; 32];
    digest.copy_from_slice(version.finish().as_ref());
    Ok(Basic {
        challenge: spec.challenge.clone(),
        users: Arc::new(users),
        version: digest,
    })
}

/// `auth-type: digest`: the Secret's htdigest lines (`auth-file`) or `realm:HA1` values
/// (`auth-map`) of `auth-realm`.
fn resolve_digest(
    spec: &BasicSpec,
    snapshot: &Snapshot,
    namespace: &str,
    findings: &mut Vec<Finding>,
) -> Result<Digest, String> {
    let annotation = format!("{PREFIX}auth-secret");
    let (key, data) = secret_data(spec, snapshot, namespace)?;
    let (users, problems) = if spec.map {
        let mut entries = Vec::new();
        for (user, value) in &data {
            match std::str::from_utf8(&value.0) {
                Ok(text) => entries.push((user.as_str(), text)),
                Err(_) => findings.push(secret_finding(
                    &annotation,
                    &key,
                    format!("entry {user:?} is not text; that user cannot log in"),
                )),
            }
        }
        digest::Users::from_map(&spec.realm, entries.into_iter())
    } else {
        let file = data
            .get("auth")
            .ok_or_else(|| format!("{annotation}: Secret {key} has no key `auth` (auth-file)"))?;
        let text = std::str::from_utf8(&file.0)
            .map_err(|_| format!("{annotation}: Secret {key}: `auth` is not text"))?;
        digest::Users::from_file(text, &spec.realm)
    };
    for problem in &problems {
        findings.push(secret_finding(
            &annotation,
            &key,
            format!("{problem}; that line gives no user"),
        ));
    }
    let users = users.ok_or_else(|| {
        format!(
            "{annotation}: Secret {key} has no usable user in realm {:?}",
            spec.realm
        )
    })?;
    Ok(Digest {
        users: Arc::new(users),
    })
}

fn secret_finding(annotation: &str, key: &ObjectKey, message: String) -> Finding {
    Finding {
        annotation: annotation.to_owned(),
        severity: Severity::Warning,
        reason: "InvalidAuthSecret",
        message: format!("Secret {key}: {message}"),
    }
}

fn resolve_external(
    spec: &ExternalSpec,
    snapshot: &Snapshot,
    namespace: &str,
) -> Result<External, String> {
    let mut external = spec.external.clone();
    let Some(written) = &spec.proxy_set_headers else {
        return Ok(external);
    };
    let annotation = format!("{PREFIX}auth-proxy-set-headers");
    let key = same_namespace(written, namespace, "ConfigMap")
        .map_err(|why| format!("{annotation}: {why}"))?;
    let map = snapshot
        .config_maps
        .get(&key)
        .ok_or_else(|| format!("{annotation}: ConfigMap {key} not found"))?;
    for (name, value) in map.data.iter().flatten() {
        let valid = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let header = HeaderName::from_bytes(name.as_bytes())
            .ok()
            .filter(|_| valid)
            .ok_or_else(|| {
                format!("{annotation}: ConfigMap {key}: {name:?} is not a header name")
            })?;
        let value = header_template(value)
            .map_err(|why| format!("{annotation}: ConfigMap {key}: {name}: {why}"))?;
        external.proxy_set_headers.push((header, value));
    }
    Ok(external)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned()))
            .collect()
    }

    fn snapshot_with_secret(name: &str, data: &[(&str, &str)]) -> Snapshot {
        let mut snapshot = Snapshot::default();
        let secret = Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        };
        snapshot
            .secrets
            .insert(ObjectKey::new("ns", name), Arc::new(secret));
        snapshot
    }

    #[test]
    fn basic_auth_resolves_its_secret_or_closes() {
        let (spec, findings, closed) = parse(&annotations(&[
            ("auth-type", "basic"),
            ("auth-secret", "htpasswd"),
            ("auth-realm", "Staff only"),
        ]));
        assert!(
            findings.is_empty() && closed.is_empty(),
            "{findings:?} {closed:?}"
        );
        let snapshot =
            snapshot_with_secret("htpasswd", &[("auth", "ann:{PLAIN}x\nold:abJnggxhB/yWI\n")]);
        let resolved = resolve(&spec, &snapshot, "ns", &Global::Off);
        let auth = resolved.auth.expect("resolves").expect("auth");
        let basic = auth.basic.as_ref().expect("basic");
        assert_eq!(basic.challenge, "Basic realm=\"Staff only\"");
        assert_eq!(basic.users.len(), 1);
        assert_eq!(resolved.findings.len(), 1);
        assert!(
            resolved.findings[0]
                .message
                .contains("line 2 (user \"old\")")
        );

        for (snapshot, expected) in [
            (Snapshot::default(), "Secret ns/htpasswd not found"),
            (
                snapshot_with_secret("htpasswd", &[("users", "x")]),
                "has no key `auth`",
            ),
            (
                snapshot_with_secret("htpasswd", &[("auth", "old:abJnggxhB/yWI\n")]),
                "no usable user",
            ),
        ] {
            let why = resolve(&spec, &snapshot, "ns", &Global::Off)
                .auth
                .err()
                .unwrap_or_default();
            assert!(why.contains(expected), "{why}");
        }
        let other_ns = resolve(&spec, &snapshot, "elsewhere", &Global::Off);
        assert!(other_ns.auth.is_err());
    }

    #[test]
    fn digest_auth_reads_htdigest_lines_of_its_realm() {
        let (spec, findings, closed) = parse(&annotations(&[
            ("auth-type", "digest"),
            ("auth-secret", "htdigest"),
            ("auth-realm", "staff"),
        ]));
        assert!(
            findings.is_empty() && closed.is_empty(),
            "{findings:?} {closed:?}"
        );
        let ann = digest::ha1("ann", "staff", "x");
        let bob = digest::ha1("bob", "other", "x");
        let file = format!("ann:staff:{ann}\nbob:other:{bob}\n");
        let snapshot = snapshot_with_secret("htdigest", &[("auth", &file)]);
        let resolved = resolve(&spec, &snapshot, "ns", &Global::Off);
        let auth = resolved.auth.expect("resolves").expect("auth");
        assert!(auth.basic.is_none());
        let digest = auth.digest.as_ref().expect("digest");
        assert_eq!((digest.users.realm(), digest.users.len()), ("staff", 1));
        assert_eq!(resolved.findings.len(), 1);
        assert!(
            resolved.findings[0]
                .message
                .contains("line 2 (user \"bob\")")
        );

        let only_other = format!("bob:other:{bob}\n");
        for (snapshot, expected) in [
            (Snapshot::default(), "Secret ns/htdigest not found"),
            (
                snapshot_with_secret("htdigest", &[("auth", &only_other)]),
                "no usable user in realm \"staff\"",
            ),
        ] {
            let why = resolve(&spec, &snapshot, "ns", &Global::Off)
                .auth
                .err()
                .unwrap_or_default();
            assert!(why.contains(expected), "{why}");
        }
    }

    #[test]
    fn bad_values_close_the_paths() {
        for pairs in [
            &[("auth-type", "digest")][..],
            &[("auth-type", "Basic"), ("auth-secret", "s")],
            &[("auth-type", "basic")],
            &[("auth-type", "basic"), ("auth-secret", "a/b/c")],
            &[
                ("auth-type", "basic"),
                ("auth-secret", "s"),
                ("auth-secret-type", "auth-list"),
            ],
            &[
                ("auth-type", "basic"),
                ("auth-secret", "s"),
                ("auth-realm", "say \"hi\""),
            ],
            &[("auth-url", "auth.example/check")],
            &[("auth-url", "http://$upstream_addr/check")],
            &[("auth-url", "http://auth/check"), ("auth-method", "get")],
            &[
                ("auth-url", "http://auth/check"),
                ("auth-response-headers", "X-User, X User"),
            ],
            &[
                ("auth-url", "http://auth/check"),
                ("auth-cache-key", "$remote_user"),
                ("auth-cache-duration", "5 minutes"),
            ],
            &[
                ("auth-url", "http://auth/check"),
                ("auth-cache-duration", "5m 200"),
            ],
            &[
                ("auth-url", "http://auth/check"),
                ("auth-signin", "https://$nope/start"),
            ],
        ] {
            let (_, _, closed) = parse(&annotations(pairs));
            assert!(!closed.is_empty(), "{pairs:?}");
        }
    }

    #[test]
    fn external_auth_options_are_typed() {
        let (spec, findings, closed) = parse(&annotations(&[
            ("auth-url", "https://auth.example/oauth2/auth?host=$host"),
            ("auth-method", "POST"),
            ("auth-signin", "https://$host/oauth2/start"),
            (
                "auth-response-headers",
                "X-Auth-Request-User, X-Auth-Request-Email",
            ),
            ("auth-cache-key", "$cookie_session$http_authorization"),
            ("auth-cache-duration", "200 202 5m, 401 30s"),
            ("auth-keepalive", "10"),
            ("satisfy", "any"),
        ]));
        assert!(
            findings.is_empty() && closed.is_empty(),
            "{findings:?} {closed:?}"
        );
        assert!(spec.satisfy_any);
        let external = spec.external.expect("external").external;
        assert_eq!(external.method, Some(Method::POST));
        assert_eq!(
            external.signin.map(|s| s.to_string()),
            Some("https://${host}/oauth2/start?rd=${scheme}://${best_http_host}${escaped_request_uri}".to_owned())
        );
        assert_eq!(external.response_headers.len(), 2);
        let cache = external.cache.expect("cache");
        assert_eq!(cache.lifetime(202), Some(Duration::from_secs(300)));
        assert_eq!(cache.lifetime(401), Some(Duration::from_secs(30)));
        assert_eq!(cache.lifetime(403), None);
    }

    #[test]
    fn signin_keeps_an_existing_redirect_parameter() {
        assert_eq!(
            signin_with_redirect("https://a/s?rd=/x", "rd"),
            "https://a/s?rd=/x"
        );
        assert_eq!(
            signin_with_redirect("https://a/s?x=1", "next"),
            "https://a/s?x=1&next=$scheme://$best_http_host$escaped_request_uri"
        );
    }

    #[test]
    fn cache_durations_follow_proxy_cache_valid() {
        assert_eq!(
            cache_durations("").expect("default"),
            vec![(Codes::Listed(vec![200, 202, 401]), Duration::from_secs(300))]
        );
        assert_eq!(
            cache_durations("1h 30m, any 10s").expect("valid"),
            vec![
                (
                    Codes::Listed(vec![200, 301, 302]),
                    Duration::from_secs(5400)
                ),
                (Codes::Any, Duration::from_secs(10)),
            ]
        );
        assert!(cache_durations("200").is_err());
    }

    #[test]
    fn global_auth_applies_unless_the_ingress_opts_out_or_has_its_own() {
        let data: BTreeMap<String, String> = [
            ("global-auth-url", "http://auth.example/check"),
            ("global-auth-response-headers", "X-User"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let (global, problems) = parse_global(&data);
        assert!(problems.is_empty(), "{problems:?}");
        assert!(matches!(global, Global::On(_)));
        let plain = resolve(&Spec::default(), &Snapshot::default(), "ns", &global);
        assert!(
            plain
                .auth
                .expect("ok")
                .is_some_and(|a| a.external.is_some())
        );
        let (opt_out, _, _) = parse(&annotations(&[("enable-global-auth", "false")]));
        let resolved = resolve(&opt_out, &Snapshot::default(), "ns", &global);
        assert!(resolved.auth.expect("ok").is_none());

        let bad: BTreeMap<String, String> =
            [("global-auth-url".to_owned(), "not a url".to_owned())].into();
        let (global, problems) = parse_global(&bad);
        assert!(matches!(global, Global::Invalid(_)));
        assert_eq!(problems[0].key, "global-auth-url");
        assert!(
            resolve(&Spec::default(), &Snapshot::default(), "ns", &global)
                .auth
                .is_err()
        );
    }

    #[test]
    fn proxy_set_headers_come_from_a_configmap_of_the_namespace() {
        let (spec, _, closed) = parse(&annotations(&[
            ("auth-url", "http://auth/check"),
            ("auth-proxy-set-headers", "auth-headers"),
        ]));
        assert!(closed.is_empty());
        let missing = resolve(&spec, &Snapshot::default(), "ns", &Global::Off);
        assert!(
            missing
                .auth
                .err()
                .unwrap_or_default()
                .contains("ConfigMap ns/auth-headers not found")
        );
        let mut snapshot = Snapshot::default();
        let map = ConfigMap {
            data: Some([("X-Tenant".to_owned(), "$host".to_owned())].into()),
            ..ConfigMap::default()
        };
        snapshot
            .config_maps
            .insert(ObjectKey::new("ns", "auth-headers"), Arc::new(map));
        let auth = resolve(&spec, &snapshot, "ns", &Global::Off)
            .auth
            .expect("resolves")
            .expect("auth");
        let external = auth.external.as_ref().expect("external");
        assert_eq!(external.proxy_set_headers.len(), 1);
    }
}
