//! Headers kept in ConfigMaps: the controller ConfigMap's `proxy-set-headers` (sent upstream)
//! and `add-headers` (sent to clients), each naming another ConfigMap whose data are the
//! headers, and the `custom-headers` annotation (response headers, limited to the names the
//! controller ConfigMap's `global-allowed-response-headers` lists, as in ingress-nginx).
//! Values may use nginx variables; they are parsed here, once.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderName;
use k8s_openapi::api::core::v1::ConfigMap;

use crate::model::ObjectKey;
use crate::variables::{Scope, Template};

use super::snippet::ResponseHeader;

/// Headers every route gets, from the controller ConfigMap.
#[derive(Clone, Debug, Default)]
pub struct GlobalHeaders {
    /// `proxy-set-headers`.
    pub upstream: Vec<(HeaderName, Template)>,
    /// `add-headers`.
    pub response: Vec<(HeaderName, Template)>,
}

/// The ConfigMap `reference` names (`NS/NAME`, or `NAME` in `namespace`).
pub fn config_map_key(reference: &str, namespace: &str) -> Result<ObjectKey, String> {
    let reference = reference.trim();
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    let key = match reference.split_once('/') {
        Some((ns, name)) => ObjectKey::new(ns, name),
        None => ObjectKey::new(namespace, reference),
    };
    if valid(&key.namespace) && valid(&key.name) {
        Ok(key)
    } else {
        Err(format!(
            "{reference:?} is not a ConfigMap name (NAMESPACE/NAME)"
        ))
    }
}

/// A ConfigMap's data as headers; `Err` names every entry that is not a header.
pub fn header_entries(map: &ConfigMap) -> Result<Vec<(HeaderName, Template)>, String> {
    let empty = BTreeMap::new();
    let data = map.data.as_ref().unwrap_or(&empty);
    let mut headers = Vec::new();
    let mut wrong = Vec::new();
    for (name, value) in data {
        match entry(name, value) {
            Ok(header) => headers.push(header),
            Err(why) => wrong.push(why),
        }
    }
    if wrong.is_empty() {
        Ok(headers)
    } else {
        Err(wrong.join("; "))
    }
}

/// ingress-nginx's character rules for custom header names and values, then ours: a valid
/// header name and a value whose variables we know.
fn entry(name: &str, value: &str) -> Result<(HeaderName, Template), String> {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let header = HeaderName::from_bytes(name.as_bytes())
        .ok()
        .filter(|_| name_ok)
        .ok_or_else(|| format!("{name:?} is not a header name"))?;
    if value.is_empty() || value.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(format!(
            "{name}: the value is empty or has control or non-ASCII characters"
        ));
    }
    let template = Template::parse(value, Scope::Value).map_err(|e| format!("{name}: {e}"))?;
    Ok((header, template))
}

/// `custom-headers`: the response headers of the ConfigMap it names. `Err` explains why the
/// paths are denied (ingress-nginx denies the location too).
pub fn custom_headers(
    reference: &str,
    namespace: &str,
    config_maps: &BTreeMap<ObjectKey, Arc<ConfigMap>>,
    allowed: &[HeaderName],
) -> Result<Vec<ResponseHeader>, String> {
    let key = config_map_key(reference, namespace)?;
    let map = config_maps
        .get(&key)
        .ok_or_else(|| format!("the ConfigMap {key} was not found"))?;
    let entries = header_entries(map).map_err(|why| format!("ConfigMap {key}: {why}"))?;
    let refused: Vec<&str> = entries
        .iter()
        .map(|(name, _)| name)
        .filter(|name| !allowed.contains(name))
        .map(HeaderName::as_str)
        .collect();
    if !refused.is_empty() {
        return Err(format!(
            "ConfigMap {key}: the headers {refused:?} are not listed in the controller ConfigMap's global-allowed-response-headers"
        ));
    }
    Ok(entries
        .into_iter()
        .map(|(name, value)| ResponseHeader {
            name,
            value,
            always: true,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(ns: &str, name: &str, data: &[(&str, &str)]) -> (ObjectKey, Arc<ConfigMap>) {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some(ns.to_owned());
        cm.metadata.name = Some(name.to_owned());
        cm.data = Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        (ObjectKey::new(ns, name), Arc::new(cm))
    }

    #[test]
    fn custom_headers_need_the_configmap_and_allowed_names() {
        let maps: BTreeMap<_, _> = [
            map(
                "shop",
                "headers",
                &[("X-Shop", "eu-$host"), ("X-Team", "web")],
            ),
            map("shop", "broken", &[("X Bad", "1")]),
        ]
        .into_iter()
        .collect();
        let allowed = [
            HeaderName::from_static("x-shop"),
            HeaderName::from_static("x-team"),
        ];
        let headers =
            custom_headers("headers", "shop", &maps, &allowed).unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<String> = headers
            .iter()
            .map(|h| format!("{}={}", h.name, h.value))
            .collect();
        assert_eq!(got, ["x-shop=eu-${host}", "x-team=web"]);

        let err = custom_headers("shop/headers", "other", &maps, &allowed[..1]).err();
        assert!(
            err.is_some_and(
                |e| e.contains("x-team") && e.contains("global-allowed-response-headers")
            )
        );
        let err = custom_headers("shop/missing", "shop", &maps, &allowed).err();
        assert!(err.is_some_and(|e| e.contains("shop/missing was not found")));
        let err = custom_headers("broken", "shop", &maps, &allowed).err();
        assert!(err.is_some_and(|e| e.contains("\"X Bad\" is not a header name")));
        assert!(custom_headers("Not/A Name", "shop", &maps, &allowed).is_err());
    }

    #[test]
    fn entries_refuse_unknown_variables_and_control_characters() {
        let (_, cm) = map(
            "ns",
            "m",
            &[("X-A", "$upstream_status"), ("X-B", "a\u{7f}b")],
        );
        let err = header_entries(&cm).err().unwrap_or_default();
        assert!(
            err.contains("$upstream_status") && err.contains("X-B"),
            "{err}"
        );
    }
}
