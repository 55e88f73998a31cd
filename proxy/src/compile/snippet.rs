//! `configuration-snippet` and `server-snippet`: raw nginx text, parsed and never executed. A
//! safe subset is translated into typed header and rewrite steps; any other directive refuses
//! the whole snippet (the caller fails the paths closed and lists what was refused).
//!
//! The subset: `add_header NAME VALUE [always]`, `more_set_headers "Name: value"...`,
//! `more_clear_headers NAME...`, `proxy_hide_header NAME`, `proxy_set_header NAME VALUE`,
//! `more_set_input_headers "Name: value"...`, `more_clear_input_headers NAME...`,
//! `return CODE [TEXT|URL]`, `return URL`, `rewrite REGEX REPLACEMENT [break|last|redirect|permanent]`.
//! Values may use nginx variables (see [`crate::variables`]); rewrite replacements `$1`..`$9`.

use http::{HeaderName, StatusCode};
use regex::{Regex, RegexBuilder};

use crate::variables::{Scope, Template, TemplateError};

/// Snippet regexes are bounded like path regexes: linear-time matching, limited size.
const MAX_REGEX_SIZE: usize = 256 * 1024;

/// What a snippet does, in the order nginx applies it.
#[derive(Clone, Debug, Default)]
pub struct Snippet {
    /// `add_header` (`always` or not) and `more_set_headers` (always).
    pub response_headers: Vec<ResponseHeader>,
    /// `more_clear_headers`, `proxy_hide_header`, `more_set_headers "Name:"`.
    pub clear_response: Vec<HeaderPattern>,
    /// `proxy_set_header`, `more_set_input_headers`.
    pub upstream_headers: Vec<(HeaderName, Template)>,
    /// `more_clear_input_headers`, `proxy_set_header NAME ""`.
    pub clear_upstream: Vec<HeaderPattern>,
    /// `rewrite` and `return`, in their order (nginx's rewrite phase).
    pub steps: Vec<Step>,
}

impl Snippet {
    pub fn is_empty(&self) -> bool {
        self.response_headers.is_empty()
            && self.clear_response.is_empty()
            && self.upstream_headers.is_empty()
            && self.clear_upstream.is_empty()
            && self.steps.is_empty()
    }

    /// Adds `other`'s directives after this one's.
    pub fn extend(&mut self, other: Snippet) {
        self.response_headers.extend(other.response_headers);
        self.clear_response.extend(other.clear_response);
        self.upstream_headers.extend(other.upstream_headers);
        self.clear_upstream.extend(other.clear_upstream);
        self.steps.extend(other.steps);
    }
}

#[derive(Clone, Debug)]
pub struct ResponseHeader {
    pub name: HeaderName,
    pub value: Template,
    /// Set on every status; without it nginx's `add_header` skips errors.
    pub always: bool,
}

/// A header name, or a name prefix (`X-Hidden-*`, as headers-more allows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderPattern {
    Exact(HeaderName),
    Prefix(String),
}

impl HeaderPattern {
    fn parse(text: &str) -> Result<Self, String> {
        match text.strip_suffix('*') {
            Some(prefix) => {
                let prefix = prefix.to_ascii_lowercase();
                if prefix.is_empty() || HeaderName::from_bytes(prefix.as_bytes()).is_err() {
                    return Err(format!("{text:?} is not a header name pattern"));
                }
                Ok(Self::Prefix(prefix))
            }
            None => HeaderName::from_bytes(text.as_bytes())
                .map(Self::Exact)
                .map_err(|_| format!("{text:?} is not a header name")),
        }
    }

    pub fn matches(&self, name: &HeaderName) -> bool {
        match self {
            Self::Exact(exact) => exact == name,
            Self::Prefix(prefix) => name.as_str().starts_with(prefix.as_str()),
        }
    }

    /// Removes the matching headers.
    pub fn clear(&self, headers: &mut http::HeaderMap) {
        match self {
            Self::Exact(name) => {
                headers.remove(name);
            }
            Self::Prefix(_) => {
                let names: Vec<HeaderName> = headers
                    .keys()
                    .filter(|n| self.matches(n))
                    .cloned()
                    .collect();
                for name in names {
                    headers.remove(name);
                }
            }
        }
    }
}

/// One step of nginx's rewrite phase.
#[derive(Clone, Debug)]
pub enum Step {
    Rewrite(SnippetRewrite),
    Return(Return),
}

#[derive(Clone, Debug)]
pub struct SnippetRewrite {
    pub regex: Regex,
    pub replacement: Template,
    pub flag: RewriteFlag,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteFlag {
    /// No flag: the next step sees the new URI.
    Next,
    /// `break`: stop here; the new URI goes upstream.
    Break,
    /// `last`: stop here; the new URI chooses the location again.
    Last,
    /// `redirect`, or a replacement that is an absolute URL: 302.
    Redirect,
    /// `permanent`: 301.
    Permanent,
}

#[derive(Clone, Debug)]
pub struct Return {
    pub status: StatusCode,
    pub body: ReturnBody,
}

#[derive(Clone, Debug)]
pub enum ReturnBody {
    Empty,
    Text(Template),
    Location(Template),
}

/// Parses a snippet; `Err` lists what was refused.
pub fn parse(text: &str) -> Result<Snippet, String> {
    let mut snippet = Snippet::default();
    let mut refused = Vec::new();
    for words in statements(text)? {
        let statement = words.join(" ");
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        if let Err(why) = directive(&mut snippet, &words) {
            refused.push(format!("{statement:?}: {why}"));
        }
    }
    if refused.is_empty() {
        Ok(snippet)
    } else {
        Err(refused.join("; "))
    }
}

fn directive(snippet: &mut Snippet, words: &[&str]) -> Result<(), String> {
    match words {
        ["add_header", name, value] => {
            snippet
                .response_headers
                .push(response_header(name, value, false)?);
        }
        ["add_header", name, value, "always"] => {
            snippet
                .response_headers
                .push(response_header(name, value, true)?);
        }
        ["more_set_headers", pairs @ ..] if !pairs.is_empty() => {
            for pair in pairs {
                let (name, value) = name_value(pair)?;
                if value.is_empty() {
                    snippet.clear_response.push(HeaderPattern::parse(name)?);
                } else {
                    snippet
                        .response_headers
                        .push(response_header(name, value, true)?);
                }
            }
        }
        ["more_clear_headers", names @ ..] | ["more_clear_input_headers", names @ ..]
            if !names.is_empty() =>
        {
            let patterns = names
                .iter()
                .map(|n| HeaderPattern::parse(n))
                .collect::<Result<Vec<_>, _>>()?;
            if words[0] == "more_clear_headers" {
                snippet.clear_response.extend(patterns);
            } else {
                snippet.clear_upstream.extend(patterns);
            }
        }
        ["proxy_hide_header", name] => {
            snippet.clear_response.push(HeaderPattern::parse(name)?);
        }
        ["proxy_set_header", name, value] => {
            let name = header_name(name)?;
            if value.is_empty() {
                // nginx sends no header whose value is empty.
                snippet.clear_upstream.push(HeaderPattern::Exact(name));
            } else {
                snippet.upstream_headers.push((name, template(value)?));
            }
        }
        ["more_set_input_headers", pairs @ ..] if !pairs.is_empty() => {
            for pair in pairs {
                let (name, value) = name_value(pair)?;
                let name = header_name(name)?;
                if value.is_empty() {
                    snippet.clear_upstream.push(HeaderPattern::Exact(name));
                } else {
                    snippet.upstream_headers.push((name, template(value)?));
                }
            }
        }
        ["return", rest @ ..] if !rest.is_empty() && rest.len() <= 2 => {
            snippet.steps.push(Step::Return(return_step(rest)?));
        }
        ["rewrite", regex, replacement, flag @ ..] if flag.len() <= 1 => {
            snippet.steps.push(Step::Rewrite(rewrite_step(
                regex,
                replacement,
                flag.first().copied(),
            )?));
        }
        [directive, ..] => {
            return Err(format!(
                "the directive {directive:?} is not in the translated subset (add_header, more_set_headers, more_clear_headers, proxy_hide_header, proxy_set_header, more_set_input_headers, more_clear_input_headers, return, rewrite) or has the wrong number of arguments"
            ));
        }
        [] => {}
    }
    Ok(())
}

fn header_name(name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{name:?} is not a header name"))
}

fn template(value: &str) -> Result<Template, String> {
    Template::parse(value, Scope::Value).map_err(|e: TemplateError| e.to_string())
}

fn response_header(name: &str, value: &str, always: bool) -> Result<ResponseHeader, String> {
    let value = template(value)?;
    if value.is_literal() && http::HeaderValue::from_str(&value.to_string()).is_err() {
        return Err("the value is not a valid header value".to_owned());
    }
    Ok(ResponseHeader {
        name: header_name(name)?,
        value,
        always,
    })
}

/// `"Name: value"` of the headers-more directives.
fn name_value(pair: &str) -> Result<(&str, &str), String> {
    let (name, value) = pair
        .split_once(':')
        .ok_or_else(|| format!("{pair:?} is not \"Name: value\""))?;
    Ok((name.trim(), value.trim()))
}

fn return_step(args: &[&str]) -> Result<Return, String> {
    let absolute =
        |s: &str| s.starts_with("http://") || s.starts_with("https://") || s.starts_with("$scheme");
    match args {
        [url] if absolute(url) => Ok(Return {
            status: StatusCode::FOUND,
            body: ReturnBody::Location(template(url)?),
        }),
        [code, rest @ ..] => {
            let status = code
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=999).contains(c))
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| format!("{code:?} is not a status code"))?;
            let redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
            let body = match rest.first() {
                None => ReturnBody::Empty,
                Some(url) if redirect => ReturnBody::Location(template(url)?),
                Some(text) => ReturnBody::Text(template(text)?),
            };
            Ok(Return { status, body })
        }
        [] => Err("return needs a code or a URL".to_owned()),
    }
}

fn rewrite_step(
    regex: &str,
    replacement: &str,
    flag: Option<&str>,
) -> Result<SnippetRewrite, String> {
    let compiled = RegexBuilder::new(regex)
        .size_limit(MAX_REGEX_SIZE)
        .build()
        .map_err(|e| format!("the regex {regex:?} is not supported: {e}"))?;
    let replacement = Template::parse(replacement, Scope::Rewrite).map_err(|e| e.to_string())?;
    let absolute = {
        let text = replacement.to_string();
        text.starts_with("http://") || text.starts_with("https://") || text.starts_with("${scheme}")
    };
    let flag = match flag {
        None if absolute => RewriteFlag::Redirect,
        None => RewriteFlag::Next,
        Some("break") => RewriteFlag::Break,
        Some("last") => RewriteFlag::Last,
        Some("redirect") => RewriteFlag::Redirect,
        Some("permanent") => RewriteFlag::Permanent,
        Some(other) => {
            return Err(format!(
                "{other:?} is not break, last, redirect or permanent"
            ));
        }
    };
    Ok(SnippetRewrite {
        regex: compiled,
        replacement,
        flag,
    })
}

/// nginx's statements: words separated by whitespace, `"…"` or `'…'` quoted (a `;` inside
/// quotes is text), each statement ended by `;`. Blocks (`{`) and comments are not accepted:
/// `if`, `location` and friends are outside the subset anyway.
fn statements(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut statements = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '#' {
            // A comment runs to the end of the line.
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
        } else if c == ';' {
            chars.next();
            if !words.is_empty() {
                statements.push(std::mem::take(&mut words));
            }
        } else if c == '{' || c == '}' {
            return Err(format!(
                "blocks ({c:?}) are not in the translated subset: {:?}",
                words.join(" ")
            ));
        } else if c == '"' || c == '\'' {
            chars.next();
            let mut word = String::new();
            loop {
                match chars.next() {
                    Some(q) if q == c => break,
                    Some('\\') => word.extend(chars.next()),
                    Some(other) => word.push(other),
                    None => return Err("unterminated quote".to_owned()),
                }
            }
            words.push(word);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || matches!(c, ';' | '{' | '}') {
                    break;
                }
                word.push(c);
                chars.next();
            }
            words.push(word);
        }
    }
    if !words.is_empty() {
        return Err(format!("{:?} is not ended by `;`", words.join(" ")));
    }
    Ok(statements)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Snippet {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn header_directives_translate() {
        let s = parsed(
            "add_header X-Frame-Options DENY;\n\
             add_header X-Who $remote_addr always;\n\
             more_set_headers \"X-A: 1\" 'X-B: two words';\n\
             more_set_headers \"Server:\";\n\
             more_clear_headers X-Powered-By 'X-Internal-*';\n\
             proxy_hide_header X-Debug;\n\
             proxy_set_header X-Tenant $http_x_tenant_id;\n\
             proxy_set_header Accept-Encoding \"\";\n\
             more_set_input_headers 'X-Via: switchyard';\n\
             more_clear_input_headers Cookie;",
        );
        let names: Vec<(&str, bool)> = s
            .response_headers
            .iter()
            .map(|h| (h.name.as_str(), h.always))
            .collect();
        assert_eq!(
            names,
            [
                ("x-frame-options", false),
                ("x-who", true),
                ("x-a", true),
                ("x-b", true)
            ]
        );
        assert_eq!(s.response_headers[3].value.to_string(), "two words");
        assert_eq!(
            s.clear_response,
            [
                HeaderPattern::Exact(HeaderName::from_static("server")),
                HeaderPattern::Exact(HeaderName::from_static("x-powered-by")),
                HeaderPattern::Prefix("x-internal-".to_owned()),
                HeaderPattern::Exact(HeaderName::from_static("x-debug")),
            ]
        );
        let upstream: Vec<String> = s
            .upstream_headers
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        assert_eq!(
            upstream,
            ["x-tenant=${http_x_tenant_id}", "x-via=switchyard"]
        );
        assert_eq!(s.clear_upstream.len(), 2);
    }

    #[test]
    fn rewrite_and_return_keep_their_order() {
        let s = parsed(
            "rewrite ^/old/(.*)$ /new/$1 break;\n\
             rewrite ^/go$ https://example.org/;\n\
             rewrite ^/perm$ /target permanent;\n\
             rewrite ^/again$ /other last;\n\
             return 418 \"short and stout\";\n\
             return https://$host/moved;",
        );
        let kinds: Vec<String> = s
            .steps
            .iter()
            .map(|step| match step {
                Step::Rewrite(r) => format!("rewrite {:?}", r.flag),
                Step::Return(r) => format!("return {}", r.status.as_u16()),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "rewrite Break",
                "rewrite Redirect",
                "rewrite Permanent",
                "rewrite Last",
                "return 418",
                "return 302"
            ]
        );
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for (text, named) in [
            ("deny all;", "\"deny\""),
            ("lua_need_request_body on;", "\"lua_need_request_body\""),
            ("if ($http_x) { return 403; }", "blocks"),
            ("add_header X-A $upstream_addr;", "$upstream_addr"),
            ("rewrite (?<=a)b /c;", "not supported"),
            ("rewrite ^/a /b sideways;", "sideways"),
            ("return 1000;", "status code"),
            ("add_header X-A \"1\"", "not ended"),
            ("proxy_set_header X-A $1;", "captures"),
        ] {
            let err = parse(text).err().unwrap_or_default();
            assert!(err.contains(named), "{text}: {err}");
        }
    }

    #[test]
    fn comments_are_skipped() {
        let s = parsed("# set by the platform team\nadd_header X-Team platform; # inline\n");
        assert_eq!(s.response_headers.len(), 1);
    }

    #[test]
    fn header_patterns_match_names_and_prefixes() {
        let mut headers = http::HeaderMap::new();
        for name in ["x-internal-a", "x-internal-b", "x-public"] {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap_or(HeaderName::from_static("x")),
                http::HeaderValue::from_static("1"),
            );
        }
        HeaderPattern::parse("X-Internal-*")
            .unwrap_or_else(|e| panic!("{e}"))
            .clear(&mut headers);
        assert_eq!(
            headers.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            ["x-public"]
        );
    }
}
