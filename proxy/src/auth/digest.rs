//! Digest authentication (RFC 2617, MD5, `qop="auth"`) as ingress-nginx serves `auth-type:
//! digest` with the nginx-http-auth-digest module: the users of a Secret in htdigest lines
//! (`user:realm:HA1`, HA1 = MD5(user:realm:password)), the `Authorization: Digest` header, the
//! expected response, and the nonces.
//!
//! Nonces are stateless and unforgeable: when they were issued, a serial number, and an HMAC of
//! both under a key drawn when the process starts. Only a nonce that answered correctly takes
//! room in the replay record, which remembers the `nc` values used with it while it is valid.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use md5::{Digest as _, Md5};
use ring::hmac;
use subtle::ConstantTimeEq;

/// How long a nonce answers, in seconds: the module's `auth_digest_timeout` default.
pub const NONCE_LIFETIME: u64 = 60;
/// `nc` values a nonce may be used with (1 to 19): the module's `auth_digest_replays` default.
pub const REPLAYS: u32 = 20;
/// Nonces the replay record holds at most; beyond, new ones are refused until old ones expire
/// (never accepted unrecorded).
const RECORD_CAPACITY: usize = 65_536;
const SHARDS: usize = 16;

/// Why an htdigest line gives no user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("the line is not user:realm:HA1")]
    Shape,
    #[error("the user name is empty")]
    NoUser,
    #[error("the HA1 is not 32 hexadecimal digits")]
    Ha1,
    #[error("its realm {0:?} is not auth-realm")]
    OtherRealm(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineProblem {
    pub line: usize,
    pub user: String,
    pub why: LineError,
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.user.is_empty() {
            write!(f, "line {}: {}", self.line, self.why)
        } else {
            write!(f, "line {} (user {:?}): {}", self.line, self.user, self.why)
        }
    }
}

/// The users of one realm, with their HA1 (never printed).
#[derive(Clone)]
pub struct Users {
    realm: Box<str>,
    users: HashMap<Box<str>, [u8; 16]>,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Users({:?}, {} users)", self.realm, self.users.len())
    }
}

impl Users {
    /// An htdigest file (`auth-file`): one `user:realm:HA1` per line; blank lines and `#`
    /// comments are skipped. The first line of a user counts. `None` when no line is usable.
    pub fn from_file(text: &str, realm: &str) -> (Option<Self>, Vec<LineProblem>) {
        let lines = text.lines().enumerate().filter_map(|(i, line)| {
            let line = line.trim_end_matches('\r');
            (!line.trim().is_empty() && !line.starts_with('#')).then_some((i + 1, line))
        });
        Self::build(realm, lines)
    }

    /// An `auth-map` Secret: each key a user, its value `realm:HA1` (ingress-nginx writes the
    /// entries as `key:value` lines).
    pub fn from_map<'a>(
        realm: &str,
        entries: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> (Option<Self>, Vec<LineProblem>) {
        let lines: Vec<(usize, String)> = entries
            .enumerate()
            .map(|(i, (user, value))| (i + 1, format!("{user}:{}", value.trim_end())))
            .collect();
        Self::build(realm, lines.iter().map(|(n, l)| (*n, l.as_str())))
    }

    fn build<'a>(
        realm: &str,
        lines: impl Iterator<Item = (usize, &'a str)>,
    ) -> (Option<Self>, Vec<LineProblem>) {
        let mut users = HashMap::new();
        let mut problems = Vec::new();
        for (line, text) in lines {
            match parse_line(text, realm) {
                Ok((user, ha1)) => {
                    users.entry(user.into()).or_insert(ha1);
                }
                Err((user, why)) => problems.push(LineProblem {
                    line,
                    user: user.to_owned(),
                    why,
                }),
            }
        }
        let users = (!users.is_empty()).then(|| Self {
            realm: realm.into(),
            users,
        });
        (users, problems)
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// `user:realm:HA1` of `realm`; on error, the user (if any) and why.
fn parse_line<'a>(text: &'a str, realm: &str) -> Result<(&'a str, [u8; 16]), (&'a str, LineError)> {
    let mut fields = text.splitn(3, ':');
    let user = fields.next().unwrap_or("");
    let (Some(line_realm), Some(ha1)) = (fields.next(), fields.next()) else {
        return Err(("", LineError::Shape));
    };
    if user.is_empty() {
        return Err(("", LineError::NoUser));
    }
    let ha1 = unhex16(ha1.trim_end()).ok_or((user, LineError::Ha1))?;
    if line_realm != realm {
        return Err((user, LineError::OtherRealm(line_realm.to_owned())));
    }
    Ok((user, ha1))
}

fn unhex16(text: &str) -> Option<[u8; 16]> {
    let bytes = text.as_bytes();
    if bytes.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = char::from(pair[0]).to_digit(16)?;
        let lo = char::from(pair[1]).to_digit(16)?;
        out[i] = u8::try_from(hi * 16 + lo).ok()?;
    }
    Some(out)
}

/// Lowercase hex of an MD5 over `parts` joined by `:`.
fn md5_hex(parts: &[&[u8]]) -> [u8; 32] {
    let mut md5 = Md5::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            md5.update(b":");
        }
        md5.update(part);
    }
    hex32(&md5.finalize().into())
}

fn hex32(bytes: &[u8; 16]) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 15)];
    }
    out
}

/// The parameters of an `Authorization: Digest` header that matter here.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub qop: String,
    pub nc: String,
    pub cnonce: String,
    pub algorithm: Option<String>,
}

/// Parses `Digest name=value, name="quoted \" value", ...` (RFC 2617's auth-param list: values
/// are tokens or quoted strings with backslash escapes, commas inside quotes belong to the value).
/// `None` unless the scheme is Digest and username, realm, nonce, uri, response, qop, nc and
/// cnonce are all present and non-empty, as the module requires.
pub fn parse_authorization(value: &[u8]) -> Option<Credentials> {
    let text = std::str::from_utf8(value).ok()?;
    let text = text.trim_start();
    let (scheme, mut rest) = text.split_at(text.find([' ', '\t'])?);
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut out = Credentials::default();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim();
        if name.is_empty() || !name.bytes().all(token_byte) {
            return None;
        }
        rest = rest[eq + 1..].trim_start_matches([' ', '\t']);
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut unescaped = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => unescaped.push(chars.next()?.1),
                    (_, c) => unescaped.push(c),
                }
            };
            value = unescaped;
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(|c: char| !token_byte(c as u8) || !c.is_ascii());
            let end = end.unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            value = rest[..end].to_owned();
            rest = &rest[end..];
        }
        let rest_trimmed = rest.trim_start_matches([' ', '\t']);
        if !(rest_trimmed.is_empty() || rest_trimmed.starts_with(',')) {
            return None;
        }
        let slot = match name.to_ascii_lowercase().as_str() {
            "username" => &mut out.username,
            "realm" => &mut out.realm,
            "nonce" => &mut out.nonce,
            "uri" => &mut out.uri,
            "response" => &mut out.response,
            "qop" => &mut out.qop,
            "nc" => &mut out.nc,
            "cnonce" => &mut out.cnonce,
            "algorithm" => {
                out.algorithm = Some(value);
                continue;
            }
            _ => continue,
        };
        *slot = value;
    }
    let complete = [
        &out.username,
        &out.realm,
        &out.nonce,
        &out.uri,
        &out.response,
        &out.qop,
        &out.nc,
        &out.cnonce,
    ]
    .iter()
    .all(|v| !v.is_empty());
    complete.then_some(out)
}

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 2617's `request-digest` with `qop="auth"`: MD5(HA1:nonce:nc:cnonce:qop:MD5(method:uri)),
/// in lowercase hex. Public so that tests (and clients) can compute it.
pub fn response(
    ha1_hex: &[u8],
    nonce: &str,
    nc: &str,
    cnonce: &str,
    qop: &str,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = md5_hex(&[method.as_bytes(), uri.as_bytes()]);
    let out = md5_hex(&[
        ha1_hex,
        nonce.as_bytes(),
        nc.as_bytes(),
        cnonce.as_bytes(),
        qop.as_bytes(),
        &ha2,
    ]);
    String::from_utf8_lossy(&out).into_owned()
}

/// HA1 = MD5(user:realm:password) in lowercase hex, as `htdigest` writes it.
pub fn ha1(user: &str, realm: &str, password: &str) -> String {
    String::from_utf8_lossy(&md5_hex(&[
        user.as_bytes(),
        realm.as_bytes(),
        password.as_bytes(),
    ]))
    .into_owned()
}

/// The verdict on a request's credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Granted,
    /// A new challenge; `stale`: the credentials were right but the nonce is used up.
    Denied {
        stale: bool,
    },
}

/// A nonce that verified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Nonce {
    issued: u64,
    serial: u64,
}

struct Used {
    issued: u64,
    /// Bit n: `nc` n was used.
    ncs: u32,
}

/// Nonces and the replay record, kept across route tables for the process's life.
pub struct Tracker {
    key: hmac::Key,
    serial: AtomicU64,
    epoch: Instant,
    used: Vec<Mutex<HashMap<u64, Used>>>,
    per_shard: usize,
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("digest::Tracker")
    }
}

impl Tracker {
    /// A fresh random key. Fails only when the system has no randomness.
    pub fn random() -> Result<Self, ring::error::Unspecified> {
        Ok(Self::with_capacity(
            hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())?,
            RECORD_CAPACITY,
        ))
    }

    fn with_capacity(key: hmac::Key, capacity: usize) -> Self {
        Self {
            key,
            serial: AtomicU64::new(0),
            epoch: Instant::now(),
            // Empty maps allocate nothing: routes without digest auth pay nothing.
            used: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: (capacity / SHARDS).max(1),
        }
    }

    /// Seconds since the tracker started: the clock nonces are stamped with.
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_secs()
    }

    /// A new nonce: hex of issue time, serial, and the first 16 bytes of their HMAC.
    pub fn nonce(&self, now: u64) -> String {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let mut body = [0u8; 16];
        body[..8].copy_from_slice(&now.to_be_bytes());
        body[8..].copy_from_slice(&serial.to_be_bytes());
        let tag = hmac::sign(&self.key, &body);
        let mut out = String::with_capacity(64);
        for b in body.iter().chain(&tag.as_ref()[..16]) {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// The nonce's issue time and serial, when this process made it.
    fn open(&self, text: &str) -> Option<Nonce> {
        if text.len() != 64 {
            return None;
        }
        let body = unhex16(&text[..32])?;
        let tag = unhex16(&text[32..])?;
        let expected = hmac::sign(&self.key, &body);
        if !bool::from(expected.as_ref()[..16].ct_eq(&tag)) {
            return None;
        }
        let mut issued = [0u8; 8];
        let mut serial = [0u8; 8];
        issued.copy_from_slice(&body[..8]);
        serial.copy_from_slice(&body[8..]);
        Some(Nonce {
            issued: u64::from_be_bytes(issued),
            serial: u64::from_be_bytes(serial),
        })
    }

    /// Records a use of (nonce, nc); false when it was used before or the record is full.
    fn record(&self, nonce: Nonce, nc: u32, now: u64) -> bool {
        let shard = &self.used[(nonce.serial % SHARDS as u64) as usize];
        let mut map = shard.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.per_shard && !map.contains_key(&nonce.serial) {
            map.retain(|_, used| now.saturating_sub(used.issued) < NONCE_LIFETIME);
            if map.len() >= self.per_shard {
                return false;
            }
        }
        let used = map.entry(nonce.serial).or_insert(Used {
            issued: nonce.issued,
            ncs: 0,
        });
        let bit = 1u32 << nc;
        if used.ncs & bit != 0 {
            return false;
        }
        used.ncs |= bit;
        true
    }

    /// Checks an `Authorization` value for a request (`method`, `request_uri` as sent).
    pub fn check(
        &self,
        users: &Users,
        authorization: &[u8],
        method: &str,
        request_uri: &str,
        now: u64,
    ) -> Verdict {
        let denied = Verdict::Denied { stale: false };
        let Some(creds) = parse_authorization(authorization) else {
            return denied;
        };
        if creds.realm != *users.realm
            || creds.qop != "auth"
            || creds
                .algorithm
                .as_deref()
                .is_some_and(|a| !a.eq_ignore_ascii_case("md5"))
        {
            return denied;
        }
        // The module accepts the request URI, or its path alone (what .NET clients send).
        let uri_matches = request_uri == creds.uri
            || request_uri
                .strip_prefix(creds.uri.as_str())
                .is_some_and(|rest| rest.starts_with('?'));
        if !uri_matches {
            return denied;
        }
        // An unknown user still costs the same work.
        let (known, ha1) = match users.users.get(creds.username.as_str()) {
            Some(ha1) => (true, hex32(ha1)),
            None => (false, [b'0'; 32]),
        };
        let expected = response(
            &ha1,
            &creds.nonce,
            &creds.nc,
            &creds.cnonce,
            &creds.qop,
            method,
            &creds.uri,
        );
        let matches = expected.len() == creds.response.len()
            && bool::from(expected.as_bytes().ct_eq(creds.response.as_bytes()));
        if !(known && matches) {
            return denied;
        }
        let Some(nonce) = self.open(&creds.nonce) else {
            return denied;
        };
        let nc = match u32::from_str_radix(&creds.nc, 16) {
            Ok(nc) if nc >= 1 => nc,
            _ => return denied,
        };
        if nc >= REPLAYS || now.saturating_sub(nonce.issued) >= NONCE_LIFETIME {
            return Verdict::Denied { stale: true };
        }
        if !self.record(nonce, nc, now) {
            return denied;
        }
        Verdict::Granted
    }
}

/// The `WWW-Authenticate` value of a 401, as the module writes it.
pub fn challenge(realm: &str, nonce: &str, stale: bool) -> String {
    let stale = if stale { ", stale=\"true\"" } else { "" };
    format!("Digest algorithm=\"MD5\", qop=\"auth\", realm=\"{realm}\", nonce=\"{nonce}\"{stale}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker(capacity: usize) -> Tracker {
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"test key");
        Tracker::with_capacity(key, capacity)
    }

    fn users() -> Users {
        let line = format!("ann:staff:{}\n", ha1("ann", "staff", "secret"));
        Users::from_file(&line, "staff").0.expect("one user")
    }

    fn header(
        user: &str,
        password: &str,
        nonce: &str,
        nc: &str,
        method: &str,
        uri: &str,
    ) -> String {
        let ha1 = ha1(user, "staff", password);
        let response = response(ha1.as_bytes(), nonce, nc, "abc,def", "auth", method, uri);
        format!(
            "Digest username=\"{user}\", realm=\"staff\", nonce=\"{nonce}\", uri=\"{uri}\", \
             algorithm=MD5, qop=auth, nc={nc}, cnonce=\"abc,def\", response=\"{response}\""
        )
    }

    #[test]
    fn rfc_2617_example() {
        // RFC 2617 section 3.5: Mufasa, "Circle Of Life", testrealm@host.com.
        let ha1 = ha1("Mufasa", "testrealm@host.com", "Circle Of Life");
        assert_eq!(
            response(
                ha1.as_bytes(),
                "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                "00000001",
                "0a4f113b",
                "auth",
                "GET",
                "/dir/index.html",
            ),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    #[test]
    fn authorization_params_may_quote_commas_and_escapes() {
        let creds = parse_authorization(
            br#"Digest username="a\"b", realm="x, y", nonce=n, uri="/p?q=1,2", response="r", qop=auth, nc=00000001, cnonce="c", opaque="o""#,
        )
        .expect("parses");
        assert_eq!(creds.username, "a\"b");
        assert_eq!(creds.realm, "x, y");
        assert_eq!(creds.uri, "/p?q=1,2");
        assert_eq!(creds.nc, "00000001");
        assert_eq!(creds.algorithm, None);
        assert_eq!(parse_authorization(b"Basic YTpi"), None);
        // Missing cnonce, unterminated quote, junk after a value.
        assert_eq!(
            parse_authorization(
                br#"Digest username="a", realm="x", nonce=n, uri="/", response=r, qop=auth, nc=1"#
            ),
            None
        );
        assert_eq!(parse_authorization(br#"Digest username="a"#), None);
        assert_eq!(
            parse_authorization(br#"Digest username="a" x, realm=b"#),
            None
        );
    }

    #[test]
    fn htdigest_lines_of_other_realms_or_bad_hashes_give_no_user() {
        let text = format!(
            "# comment\nann:staff:{}\nbob:other:{}\ncid:staff:xyz\nnocolons\n",
            ha1("ann", "staff", "a"),
            ha1("bob", "other", "b")
        );
        let (users, problems) = Users::from_file(&text, "staff");
        assert_eq!(users.expect("ann").len(), 1);
        let whys: Vec<_> = problems.iter().map(|p| (p.line, p.why.clone())).collect();
        assert_eq!(
            whys,
            vec![
                (3, LineError::OtherRealm("other".to_owned())),
                (4, LineError::Ha1),
                (5, LineError::Shape),
            ]
        );
        assert!(!problems[0].to_string().contains(&ha1("bob", "other", "b")));
        let (none, _) = Users::from_file("bob:other:0123456789abcdef0123456789abcdef", "staff");
        assert!(none.is_none());
    }

    #[test]
    fn correct_credentials_pass_once_per_nc() {
        let tracker = tracker(1024);
        let users = users();
        let nonce = tracker.nonce(100);
        let ok = header("ann", "secret", &nonce, "00000001", "GET", "/a?b=c");
        assert_eq!(
            tracker.check(&users, ok.as_bytes(), "GET", "/a?b=c", 110),
            Verdict::Granted
        );
        // The same nc again: a replay.
        assert_eq!(
            tracker.check(&users, ok.as_bytes(), "GET", "/a?b=c", 111),
            Verdict::Denied { stale: false }
        );
        let next = header("ann", "secret", &nonce, "00000002", "GET", "/a");
        assert_eq!(
            tracker.check(&users, next.as_bytes(), "GET", "/a?b=c", 111),
            Verdict::Granted
        );
        // Another URI, method or password: refused.
        let denied = Verdict::Denied { stale: false };
        let other = header("ann", "secret", &nonce, "00000003", "GET", "/other");
        assert_eq!(
            tracker.check(&users, other.as_bytes(), "GET", "/a", 111),
            denied
        );
        assert_eq!(
            tracker.check(&users, other.as_bytes(), "POST", "/other", 111),
            denied
        );
        let wrong = header("ann", "wrong", &nonce, "00000004", "GET", "/a");
        assert_eq!(
            tracker.check(&users, wrong.as_bytes(), "GET", "/a", 111),
            denied
        );
        let unknown = header("zed", "secret", &nonce, "00000005", "GET", "/a");
        assert_eq!(
            tracker.check(&users, unknown.as_bytes(), "GET", "/a", 111),
            denied
        );
    }

    #[test]
    fn nonces_expire_and_cannot_be_forged() {
        let tracker = tracker(1024);
        let users = users();
        let nonce = tracker.nonce(100);
        let late = header("ann", "secret", &nonce, "00000001", "GET", "/");
        assert_eq!(
            tracker.check(&users, late.as_bytes(), "GET", "/", 100 + NONCE_LIFETIME),
            Verdict::Denied { stale: true }
        );
        assert_eq!(
            tracker.check(
                &users,
                late.as_bytes(),
                "GET",
                "/",
                100 + NONCE_LIFETIME - 1
            ),
            Verdict::Granted
        );
        // A nonce stamped later, with the tag of another: refused, not stale.
        let mut forged = nonce.clone();
        forged.replace_range(0..16, &format!("{:016x}", 10_000u64));
        let forged = header("ann", "secret", &forged, "00000001", "GET", "/");
        assert_eq!(
            tracker.check(&users, forged.as_bytes(), "GET", "/", 10_001),
            Verdict::Denied { stale: false }
        );
        // Another process's key.
        let other = Tracker::with_capacity(hmac::Key::new(hmac::HMAC_SHA256, b"other"), 16);
        let foreign = header("ann", "secret", &other.nonce(100), "00000001", "GET", "/");
        assert_eq!(
            tracker.check(&users, foreign.as_bytes(), "GET", "/", 101),
            Verdict::Denied { stale: false }
        );
        // nc beyond the replays: stale, as the module says.
        let many = header("ann", "secret", &tracker.nonce(100), "00000014", "GET", "/");
        assert_eq!(
            tracker.check(&users, many.as_bytes(), "GET", "/", 101),
            Verdict::Denied { stale: true }
        );
    }

    #[test]
    fn a_full_record_refuses_until_nonces_expire() {
        // One nonce per shard at most.
        let tracker = tracker(SHARDS);
        let users = users();
        let first = tracker.nonce(0);
        // Serials 0 and 16 land in the same shard.
        for _ in 0..SHARDS - 1 {
            tracker.nonce(0);
        }
        let second = tracker.nonce(0);
        let check = |nonce: &str, now| {
            let h = header("ann", "secret", nonce, "00000001", "GET", "/");
            tracker.check(&users, h.as_bytes(), "GET", "/", now)
        };
        assert_eq!(check(&first, 1), Verdict::Granted);
        assert_eq!(check(&second, 1), Verdict::Denied { stale: false });
        for _ in 0..SHARDS - 1 {
            tracker.nonce(NONCE_LIFETIME);
        }
        // Serial 32: the same shard again, once the first nonce has expired its room is free.
        let third = tracker.nonce(NONCE_LIFETIME);
        assert_eq!(check(&third, NONCE_LIFETIME + 1), Verdict::Granted);
    }

    #[test]
    fn challenge_names_realm_nonce_and_staleness() {
        assert_eq!(
            challenge("staff", "n", false),
            "Digest algorithm=\"MD5\", qop=\"auth\", realm=\"staff\", nonce=\"n\""
        );
        assert!(challenge("staff", "n", true).ends_with("nonce=\"n\", stale=\"true\""));
    }
}
