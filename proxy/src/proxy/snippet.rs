//! A route's translated snippet at request time: nginx's rewrite phase (`rewrite`, `return`)
//! and the header directives, their variables expanded from the request. Routes without a
//! snippet never get here.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use crate::compile::snippet::{ResponseHeader, ReturnBody, RewriteFlag, Step};
use crate::routes::encode_path;
use crate::variables::{RequestView, Template};

use super::{LocalBody, body_of, local, redirect};

/// What the rewrite phase decided.
pub enum Phase {
    /// Go on; `Some`: the path and query to send upstream instead of the request's.
    Continue(Option<String>),
    /// Answer with this.
    Respond(Response<LocalBody>),
    /// `rewrite … last`: choose the location again for this path and query.
    Last(String),
}

/// Runs the `rewrite` and `return` steps in order, as nginx's rewrite phase does.
pub fn rewrite_phase(steps: &[Step], view: &RequestView<'_>) -> Phase {
    let mut path: Option<String> = None;
    let mut query: Option<String> = view.uri.query().map(str::to_owned);
    for step in steps {
        match step {
            Step::Return(ret) => {
                let text = |t: &Template| t.expand(view);
                return Phase::Respond(match &ret.body {
                    ReturnBody::Empty => local(ret.status, ""),
                    ReturnBody::Location(url) => match HeaderValue::from_str(&text(url)) {
                        Ok(location) => redirect(ret.status, location),
                        Err(_) => local(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "500 Internal Server Error\n",
                        ),
                    },
                    ReturnBody::Text(body) => {
                        let mut response = Response::new(body_of(Bytes::from(text(body))));
                        *response.status_mut() = ret.status;
                        // ingress-nginx's `default_type`.
                        response
                            .headers_mut()
                            .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
                        response
                    }
                });
            }
            Step::Rewrite(rewrite) => {
                let subject = path.as_deref().unwrap_or(view.path);
                let Some(found) = rewrite.regex.captures(subject) else {
                    continue;
                };
                let captures: [Option<&str>; 9] =
                    std::array::from_fn(|i| found.get(i + 1).map(|m| m.as_str()));
                let with_captures = RequestView {
                    captures: &captures,
                    ..*view
                };
                let replaced = rewrite.replacement.expand(&with_captures);
                // nginx: new arguments in the replacement come first, the request's follow
                // unless the replacement ends with `?`.
                let (new_path, new_query) = match replaced.split_once('?') {
                    None => (replaced.as_str(), None),
                    Some((p, "")) => {
                        query = None;
                        (p, None)
                    }
                    Some((p, q)) => (p, Some(q)),
                };
                if let Some(q) = new_query {
                    query = Some(match query {
                        Some(old) => format!("{q}&{old}"),
                        None => q.to_owned(),
                    });
                }
                let absolute = new_path.starts_with("http://") || new_path.starts_with("https://");
                let new_path = if absolute {
                    new_path.to_owned()
                } else {
                    encode_path(new_path)
                };
                let with_query = |p: &str| match &query {
                    Some(q) => format!("{p}?{q}"),
                    None => p.to_owned(),
                };
                match rewrite.flag {
                    RewriteFlag::Redirect | RewriteFlag::Permanent => {
                        let code = if rewrite.flag == RewriteFlag::Permanent {
                            StatusCode::MOVED_PERMANENTLY
                        } else {
                            StatusCode::FOUND
                        };
                        return Phase::Respond(
                            match HeaderValue::from_str(&with_query(&new_path)) {
                                Ok(location) => redirect(code, location),
                                Err(_) => local(
                                    StatusCode::INTERNAL_SERVER_ERROR,
                                    "500 Internal Server Error\n",
                                ),
                            },
                        );
                    }
                    RewriteFlag::Break => return Phase::Continue(Some(with_query(&new_path))),
                    RewriteFlag::Last => return Phase::Last(with_query(&new_path)),
                    RewriteFlag::Next => path = Some(new_path),
                }
            }
        }
    }
    Phase::Continue(path.map(|p| match &query {
        Some(q) => format!("{p}?{q}"),
        None => p,
    }))
}

/// Header templates expanded for this request. As in nginx, a value that expands to nothing
/// is not sent; nor is one that is not a valid header value.
pub fn expand_headers(
    templates: &[(HeaderName, Template)],
    view: &RequestView<'_>,
    out: &mut Vec<(HeaderName, HeaderValue)>,
) {
    for (name, template) in templates {
        if let Some(value) = template.header_value(view).filter(|v| !v.is_empty()) {
            out.push((name.clone(), value));
        }
    }
}

/// Response header directives expanded for this request: name, value, and whether it applies
/// to every status.
pub fn expand_response_headers(
    headers: &[ResponseHeader],
    view: &RequestView<'_>,
    out: &mut Vec<(HeaderName, HeaderValue, bool)>,
) {
    for h in headers {
        if let Some(value) = h.value.header_value(view).filter(|v| !v.is_empty()) {
            out.push((h.name.clone(), value, h.always));
        }
    }
}
