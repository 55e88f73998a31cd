//! The users of a basic-auth Secret: htpasswd lines (`user:hash`) parsed at compile time into
//! typed hashes, in the formats nginx's `auth_basic` accepts. Verifying costs CPU (bcrypt: tens
//! of milliseconds), so it never runs on a serving thread; see `proxy::auth`.
//!
//! Nothing here prints a hash: `Debug` shows only the kind, and a refused line is named by its
//! number and user.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha_crypt::password_hash::PasswordVerifier as _;
use subtle::ConstantTimeEq;

use super::md5_crypt::{self, CRYPT_ALPHABET};

/// One user's password hash.
#[derive(Clone)]
pub enum PasswordHash {
    /// `$2a$`, `$2b$`, `$2y$`, `$2x$`.
    Bcrypt(Box<str>),
    /// `$1$` (glibc) or `$apr1$` (Apache): salt and the 22-character hash.
    Md5Crypt {
        apr1: bool,
        salt: Box<str>,
        hash: Box<str>,
    },
    /// `$5$` / `$6$`, with an optional `rounds=N$`.
    ShaCrypt(Box<str>),
    /// `{SHA}`: base64 of the password's SHA-1.
    Sha1([u8; 20]),
    /// `{SSHA}`: base64 of SHA-1(password + salt) followed by the salt.
    SaltedSha1 { digest: [u8; 20], salt: Box<[u8]> },
    /// `{PLAIN}`: the password itself.
    Plain(Box<[u8]>),
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// Why a hash is not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("DES crypt hashes are not supported (re-create the entry with htpasswd -B or -m)")]
    Des,
    #[error(
        "the hash is in no format nginx accepts (bcrypt, $apr1$, $1$, $5$, $6$, {{SHA}}, {{SSHA}}, {{PLAIN}})"
    )]
    Unknown,
    #[error("the {0} hash is malformed")]
    Malformed(&'static str),
    #[error("the line has no `:` between user and hash")]
    NoSeparator,
    #[error("the user name is empty")]
    NoUser,
}

impl PasswordHash {
    /// Parses the hash field of a line (what follows `user:`, up to the next `:`).
    pub fn parse(text: &str) -> Result<Self, HashError> {
        if let Some(rest) = text.strip_prefix("{PLAIN}") {
            return Ok(Self::Plain(rest.as_bytes().into()));
        }
        if let Some(rest) = text.strip_prefix("{SHA}") {
            let bytes = STANDARD
                .decode(rest)
                .map_err(|_| HashError::Malformed("{SHA}"))?;
            let digest: [u8; 20] = bytes
                .try_into()
                .map_err(|_| HashError::Malformed("{SHA}"))?;
            return Ok(Self::Sha1(digest));
        }
        if let Some(rest) = text.strip_prefix("{SSHA}") {
            let bytes = STANDARD
                .decode(rest)
                .map_err(|_| HashError::Malformed("{SSHA}"))?;
            if bytes.len() <= 20 {
                return Err(HashError::Malformed("{SSHA}"));
            }
            let (digest, salt) = bytes.split_at(20);
            let mut fixed = [0u8; 20];
            fixed.copy_from_slice(digest);
            return Ok(Self::SaltedSha1 {
                digest: fixed,
                salt: salt.into(),
            });
        }
        if let Some(rest) = ["$2a$", "$2b$", "$2y$", "$2x$"]
            .iter()
            .find_map(|p| text.strip_prefix(p))
        {
            let well_formed = rest.len() == 56
                && rest.as_bytes()[2] == b'$'
                && rest[..2]
                    .parse::<u32>()
                    .is_ok_and(|c| (4..=31).contains(&c))
                && rest.as_bytes()[3..].iter().all(|b| crypt_char(*b));
            return if well_formed {
                Ok(Self::Bcrypt(text.into()))
            } else {
                Err(HashError::Malformed("bcrypt"))
            };
        }
        for (magic, apr1) in [("$apr1$", true), ("$1$", false)] {
            if let Some(rest) = text.strip_prefix(magic) {
                let (salt, hash) = rest
                    .split_once('$')
                    .ok_or(HashError::Malformed("MD5-crypt"))?;
                let well_formed = salt.len() <= 8
                    && !salt.is_empty()
                    && hash.len() == 22
                    && hash.bytes().all(crypt_char);
                return if well_formed {
                    Ok(Self::Md5Crypt {
                        apr1,
                        salt: salt.into(),
                        hash: hash.into(),
                    })
                } else {
                    Err(HashError::Malformed("MD5-crypt"))
                };
            }
        }
        if let Some((rest, length)) = text
            .strip_prefix("$5$")
            .map(|r| (r, 43))
            .or_else(|| text.strip_prefix("$6$").map(|r| (r, 86)))
        {
            return if sha_crypt_well_formed(rest, length) {
                Ok(Self::ShaCrypt(text.into()))
            } else {
                Err(HashError::Malformed("SHA-crypt"))
            };
        }
        if text.len() == 13 && text.bytes().all(crypt_char) {
            return Err(HashError::Des);
        }
        Err(HashError::Unknown)
    }

    /// Whether `password` matches. CPU-heavy for the crypt formats: call off the serving
    /// threads. Comparisons are constant-time.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Self::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Self::Md5Crypt { apr1, salt, hash } => {
                let magic: &[u8] = if *apr1 { b"$apr1$" } else { b"$1$" };
                let computed = md5_crypt::encoded_hash(password, salt.as_bytes(), magic);
                computed.as_bytes().ct_eq(hash.as_bytes()).into()
            }
            Self::ShaCrypt(hash) => sha_crypt::ShaCrypt::default()
                .verify_password(password, &**hash)
                .is_ok(),
            Self::Sha1(digest) => sha1(&[password]).ct_eq(digest).into(),
            Self::SaltedSha1 { digest, salt } => sha1(&[password, salt]).ct_eq(digest).into(),
            Self::Plain(expected) => {
                // The length is not secret enough to hide; the bytes are compared in constant time.
                expected.len() == password.len() && bool::from(expected.ct_eq(password))
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Bcrypt(_) => "bcrypt",
            Self::Md5Crypt { apr1: true, .. } => "apr1",
            Self::Md5Crypt { apr1: false, .. } => "md5-crypt",
            Self::ShaCrypt(_) => "sha-crypt",
            Self::Sha1(_) => "{SHA}",
            Self::SaltedSha1 { .. } => "{SSHA}",
            Self::Plain(_) => "{PLAIN}",
        }
    }
}

fn crypt_char(b: u8) -> bool {
    CRYPT_ALPHABET.contains(&b)
}

/// `[rounds=N$]salt$hash`, with a rounds value the verifier takes and a hash of `length`.
fn sha_crypt_well_formed(rest: &str, length: usize) -> bool {
    let rest = match rest.strip_prefix("rounds=") {
        Some(after) => {
            let Some((rounds, rest)) = after.split_once('$') else {
                return false;
            };
            let valid = rounds
                .parse::<u32>()
                .ok()
                .is_some_and(|r| sha_crypt::Params::new(r).is_ok());
            if !valid {
                return false;
            }
            rest
        }
        None => rest,
    };
    match rest.split_once('$') {
        Some((salt, hash)) => {
            salt.len() <= 16
                && !salt.is_empty()
                && hash.len() == length
                && hash.bytes().all(crypt_char)
        }
        None => false,
    }
}

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// The users of one Secret.
#[derive(Clone, Debug)]
pub struct Users {
    users: HashMap<Box<str>, PasswordHash>,
    /// Checked against the password of an unknown user, so that a wrong user name costs as long
    /// as a wrong password and does not tell which names exist.
    decoy: PasswordHash,
}

/// A line that gives no usable user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineProblem {
    /// 1-based line number (auth-file) or entry number (auth-map).
    pub line: usize,
    pub user: String,
    pub why: HashError,
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

impl Users {
    /// An htpasswd file, as nginx reads one: `user:hash[:comment]` per line, `#` comments and
    /// blank lines skipped; the first line of a user wins. `None` when no line is usable.
    pub fn from_file(text: &str) -> (Option<Self>, Vec<LineProblem>) {
        let lines = text.lines().enumerate().filter_map(|(i, line)| {
            let line = line.trim_end_matches('\r');
            (!line.trim().is_empty() && !line.starts_with('#')).then_some((i + 1, line))
        });
        Self::build(lines.map(|(n, line)| match line.split_once(':') {
            Some((user, rest)) => (n, user, Some(rest.split(':').next().unwrap_or(""))),
            None => (n, line, None),
        }))
    }

    /// auth-map: each entry a user and its hash.
    pub fn from_map<'a>(
        entries: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> (Option<Self>, Vec<LineProblem>) {
        Self::build(entries.enumerate().map(|(i, (user, hash))| {
            // ingress-nginx writes `user:value` lines for nginx, which stops at a `:`.
            (
                i + 1,
                user,
                Some(
                    hash.trim_end_matches(['\r', '\n'])
                        .split(':')
                        .next()
                        .unwrap_or(""),
                ),
            )
        }))
    }

    fn build<'a>(
        entries: impl Iterator<Item = (usize, &'a str, Option<&'a str>)>,
    ) -> (Option<Self>, Vec<LineProblem>) {
        let mut users: HashMap<Box<str>, PasswordHash> = HashMap::new();
        let mut decoy = None;
        let mut problems = Vec::new();
        for (line, user, hash) in entries {
            let parsed = match hash {
                None => Err(HashError::NoSeparator),
                Some(_) if user.is_empty() => Err(HashError::NoUser),
                Some(hash) => PasswordHash::parse(hash),
            };
            match parsed {
                Ok(hash) => {
                    decoy.get_or_insert_with(|| hash.clone());
                    users.entry(user.into()).or_insert(hash);
                }
                Err(why) => problems.push(LineProblem {
                    line,
                    user: if hash.is_some() {
                        user.to_owned()
                    } else {
                        String::new()
                    },
                    why,
                }),
            }
        }
        (decoy.map(|decoy| Self { users, decoy }), problems)
    }

    /// Whether `user` exists and `password` is theirs. CPU-heavy: call off the serving threads.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(hash) => hash.verify(password),
            None => {
                let _ = self.decoy.verify(password);
                false
            }
        }
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(text: &str) -> Users {
        Users::from_file(text).0.expect("usable users")
    }

    #[test]
    fn every_supported_format_verifies_the_right_password_only() {
        let bcrypt = bcrypt::hash_with_salt("s3cret", 4, [7u8; 16])
            .map(|h| h.format_for_version(bcrypt::Version::TwoY))
            .expect("bcrypt hash");
        let file = format!(
            "b:{bcrypt}\n\
             apr:$apr1$abcdefgh$UkZoB0qp2g9KE9.krwnMP0\n\
             md5:$1$saltsalt$9xy1btjgzLYfb7hivXtC//\n\
             s256:$5$saltstring$C3o4O1TC6aRHF4FI.QSZMXtHbaj2gSXr4sUc/3NcUi.\n\
             s512:$6$saltstring$AIsRs/Ee56G/tC8MEHhvReZTfx8u3rXXMl6eYrjCG9ibix19DxoMBLogdTET5Ukw9Sf7eZTITsuk0Ry5qulYz.\n\
             sha:{{SHA}}5en6G6MezRroT3XKqkdPOmY/BfQ=\n\
             plain:{{PLAIN}}hunter2\n"
        );
        let u = users(&file);
        assert_eq!(u.len(), 7);
        assert!(u.verify("b", b"s3cret") && !u.verify("b", b"s3cret!"));
        assert!(u.verify("apr", b"p@ss w0rd") && !u.verify("apr", b"p@ss"));
        assert!(u.verify("md5", b"secret") && !u.verify("md5", b"Secret"));
        assert!(u.verify("s256", b"secret") && !u.verify("s256", b"secre"));
        assert!(u.verify("s512", b"secret") && !u.verify("s512", b""));
        // `printf secret | openssl sha1 -binary | base64`
        assert!(u.verify("sha", b"secret") && !u.verify("sha", b"secrets"));
        assert!(u.verify("plain", b"hunter2") && !u.verify("plain", b"hunter3"));
        assert!(!u.verify("nobody", b"secret"));
    }

    #[test]
    fn salted_sha1_and_rounds() {
        let salt = b"NaCl";
        let mut bytes = sha1(&[b"pw", salt]).to_vec();
        bytes.extend_from_slice(salt);
        let line = format!("u:{{SSHA}}{}", STANDARD.encode(&bytes));
        assert!(users(&line).verify("u", b"pw"));
        assert!(!users(&line).verify("u", b"pw2"));
        // `openssl passwd -5 -salt saltstring` with rounds: the vector of the SHA-crypt spec.
        let rounds =
            "r:$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA";
        assert!(users(rounds).verify("r", b"Hello world!"));
    }

    #[test]
    fn unusable_lines_are_named_by_number_and_user_never_by_hash() {
        let (users, problems) = Users::from_file(
            "# comment\n\nold:abJnggxhB/yWI\nweird:$9$zzz\nnocolon\n:{PLAIN}x\nok:{PLAIN}pw:comment\nok:{PLAIN}other\n",
        );
        let users = users.expect("one usable line");
        assert_eq!(users.len(), 1);
        assert!(
            users.verify("ok", b"pw"),
            "the first line of a user wins, the comment is cut"
        );
        let described: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 4, "{described:?}");
        assert_eq!(problems[0].why, HashError::Des);
        assert_eq!(problems[0].line, 3);
        assert!(described[0].contains("\"old\"") && !described[0].contains("abJ"));
        assert_eq!(problems[1].why, HashError::Unknown);
        assert_eq!(problems[2].why, HashError::NoSeparator);
        assert_eq!(problems[3].why, HashError::NoUser);
        assert!(format!("{users:?}").contains("{PLAIN}") && !format!("{users:?}").contains("pw"));
    }

    #[test]
    fn malformed_hashes_are_refused() {
        for bad in [
            "$2y$99$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
            "$2y$10$short",
            "$apr1$toolongsalt$UkZoB0qp2g9KE9.krwnMP0",
            "$1$salt$short",
            "$6$rounds=1$salt$x",
            "{SHA}not base64!",
            "{SSHA}AAAA",
        ] {
            assert!(PasswordHash::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Users::from_file("a:b\n").0.map(|u| u.len()), None);
    }

    #[test]
    fn auth_map_entries() {
        let (users, problems) =
            Users::from_map([("alice", "{PLAIN}wonder"), ("bob", "des0123456789")].into_iter());
        let users = users.expect("alice");
        assert!(users.verify("alice", b"wonder"));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].user, "bob");
    }
}
