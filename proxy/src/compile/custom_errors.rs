//! `custom-http-errors`: the upstream statuses whose responses are replaced by the default
//! backend's answer (ingress-nginx's `proxy_intercept_errors` with `error_page`).

use std::collections::BTreeMap;

use http::StatusCode;

use super::canary::PREFIX;

pub fn handles(name: &str) -> bool {
    name == "custom-http-errors"
}

/// The codes, or a problem `(annotation, reason)`. ingress-nginx takes 4xx and 5xx codes only.
pub fn parse(
    annotations: &BTreeMap<String, String>,
) -> (Vec<StatusCode>, Option<(String, String)>) {
    let Some(value) = annotations.get(&format!("{PREFIX}custom-http-errors")) else {
        return (Vec::new(), None);
    };
    let mut codes = Vec::new();
    for code in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        match code
            .parse::<u16>()
            .ok()
            .filter(|c| (400..600).contains(c))
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(status) if !codes.contains(&status) => codes.push(status),
            Some(_) => {}
            None => {
                let why =
                    format!("{code:?} is not an HTTP status from 400 to 599; no error is replaced");
                return (
                    Vec::new(),
                    Some((format!("{PREFIX}custom-http-errors"), why)),
                );
            }
        }
    }
    (codes, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(value: &str) -> (Vec<u16>, bool) {
        let map = BTreeMap::from([(format!("{PREFIX}custom-http-errors"), value.to_owned())]);
        let (codes, problem) = parse(&map);
        (
            codes.iter().map(StatusCode::as_u16).collect(),
            problem.is_some(),
        )
    }

    #[test]
    fn lists_of_codes() {
        assert_eq!(codes("404, 503,503"), (vec![404, 503], false));
        assert_eq!(codes("404,302"), (vec![], true));
        assert_eq!(codes("404,abc"), (vec![], true));
        assert_eq!(codes("600"), (vec![], true));
    }
}
