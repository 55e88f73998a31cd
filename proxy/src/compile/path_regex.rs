//! The regex engines behind regex paths. nginx's regexes are PCRE; most patterns fit the
//! linear-time `regex` crate, which is used whenever it accepts the pattern. Patterns that need
//! PCRE features it lacks (look-around, backreferences, atomic groups) go to a backtracking
//! engine (`fancy-regex`) with a backtrack limit and a cap on the path length it is run on, so
//! that no pattern can make a request slow: a match that would need more work ends with
//! [`Exhausted`], which the hot path answers like nginx answers a failed PCRE match (500),
//! never by trying a route that the pattern might not have wanted to give the request.

/// Bounded: a pattern is compiled once, but a huge one must not take the compile down.
const MAX_PATTERN_SIZE: usize = 256 * 1024;
/// How many times the backtracking engine may backtrack for one path. Each backtrack costs at
/// most one pass of a linear-time sub-match over the (capped) path, so this and
/// [`MAX_BACKTRACKING_PATH`] bound the work per route.
pub const BACKTRACK_LIMIT: usize = 10_000;
/// Longer paths are not run through the backtracking engine at all.
pub const MAX_BACKTRACKING_PATH: usize = 2048;

/// The backtracking engine gave up on a path: too many backtracks, or a path too long for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exhausted;

/// A compiled regex path: linear-time where the pattern allows, bounded backtracking otherwise.
#[derive(Clone, Debug)]
pub enum PathRegex {
    Linear(regex::Regex),
    Backtracking(fancy_regex::Regex),
}

/// The captures of one match, whichever engine made it.
pub enum Captures<'t> {
    Linear(regex::Captures<'t>),
    Backtracking(fancy_regex::Captures<'t>),
}

impl Captures<'_> {
    /// Capture group `i`'s text; `None` when the group does not exist or took no part.
    pub fn get(&self, i: usize) -> Option<&str> {
        match self {
            Captures::Linear(c) => c.get(i).map(|m| m.as_str()),
            Captures::Backtracking(c) => c.get(i).map(|m| m.as_str()),
        }
    }
}

impl PathRegex {
    /// Compiles `pattern` case-insensitively (nginx's `~*`). The error names both engines'
    /// complaints when neither takes it.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let linear = regex::RegexBuilder::new(pattern)
            .case_insensitive(true)
            .size_limit(MAX_PATTERN_SIZE)
            .build();
        let linear_error = match linear {
            Ok(regex) => return Ok(Self::Linear(regex)),
            Err(err) => err,
        };
        // A pattern too large for the linear engine is refused, not handed to the other one.
        if matches!(linear_error, regex::Error::CompiledTooBig(_)) {
            return Err(linear_error.to_string());
        }
        fancy_regex::RegexBuilder::new(pattern)
            .case_insensitive(true)
            .backtrack_limit(BACKTRACK_LIMIT)
            .delegate_size_limit(MAX_PATTERN_SIZE)
            .build()
            .map(Self::Backtracking)
            .map_err(|err| format!("{err} (and not a regex the linear-time engine takes)"))
    }

    pub fn is_backtracking(&self) -> bool {
        matches!(self, Self::Backtracking(_))
    }

    pub fn is_match(&self, path: &str) -> Result<bool, Exhausted> {
        match self {
            Self::Linear(regex) => Ok(regex.is_match(path)),
            Self::Backtracking(regex) => {
                bounded(path)?;
                regex.is_match(path).map_err(|_| Exhausted)
            }
        }
    }

    pub fn captures<'t>(&self, path: &'t str) -> Result<Option<Captures<'t>>, Exhausted> {
        match self {
            Self::Linear(regex) => Ok(regex.captures(path).map(Captures::Linear)),
            Self::Backtracking(regex) => {
                bounded(path)?;
                regex
                    .captures(path)
                    .map(|c| c.map(Captures::Backtracking))
                    .map_err(|_| Exhausted)
            }
        }
    }
}

fn bounded(path: &str) -> Result<(), Exhausted> {
    if path.len() > MAX_BACKTRACKING_PATH {
        Err(Exhausted)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(pattern: &str) -> PathRegex {
        PathRegex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"))
    }

    #[test]
    fn the_linear_engine_takes_what_it_can() {
        let r = compiled("^/api/(v1|v2)/(.*)");
        assert!(!r.is_backtracking());
        assert_eq!(r.is_match("/API/v2/x"), Ok(true));
        let captures = r.captures("/api/v1/users").ok().flatten();
        assert_eq!(captures.as_ref().and_then(|c| c.get(2)), Some("users"));
    }

    #[test]
    fn look_around_and_backreferences_use_the_backtracking_engine() {
        let r = compiled("^/(?!internal)(\\w+)/(?<=/)x");
        assert!(r.is_backtracking());
        assert_eq!(r.is_match("/public/x"), Ok(true));
        assert_eq!(r.is_match("/internal/x"), Ok(false));
        let r = compiled("^/(\\w+)/\\1$");
        assert_eq!(r.is_match("/ab/AB"), Ok(true), "case-insensitive, as ~*");
        assert_eq!(r.is_match("/ab/cd"), Ok(false));
        let captures = r.captures("/ab/ab").ok().flatten();
        assert_eq!(captures.as_ref().and_then(|c| c.get(1)), Some("ab"));
    }

    #[test]
    fn a_pattern_neither_engine_takes_is_an_error() {
        assert!(PathRegex::new("^/(unclosed").is_err());
        assert!(PathRegex::new("^/a{99999}{99999}").is_err());
    }

    #[test]
    fn catastrophic_backtracking_ends_in_exhausted_not_in_a_slow_request() {
        // Nested quantifiers under a look-ahead: the backtracking engine runs them itself, and
        // a path of `a`s ending in `!` makes it try every way of splitting the `a`s.
        let r = compiled("^/((?=a)a+)+$");
        assert!(r.is_backtracking());
        assert_eq!(r.is_match("/aaaa"), Ok(true));
        let hostile = format!("/{}!", "a".repeat(64));
        assert_eq!(r.is_match(&hostile), Err(Exhausted));
        assert!(r.captures(&hostile).is_err());
        // Too long for the backtracking engine at all, even where it would match.
        let long = format!("/{}", "a".repeat(MAX_BACKTRACKING_PATH));
        assert_eq!(r.is_match(&long), Err(Exhausted));
        // The linear engine has no such limit: the same shape without look-around is linear.
        let linear = compiled("^/(a+)+$");
        assert_eq!(linear.is_match(&hostile), Ok(false));
        assert_eq!(linear.is_match(&long), Ok(true));
    }
}
