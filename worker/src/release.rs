//! Release step, pure part: Koji's `getNextRelease` rules, and the next release when no hub
//! is configured (from the `<version>-<release>` tags already in the registry).

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    #[error(
        "cannot compute the next release after {release:?} for {name}-{version} (Koji increments only N, N.x and a.b.N); set a `release` label in the Dockerfile"
    )]
    CannotIncrement {
        name: String,
        version: String,
        release: String,
    },
    #[error(
        "release {release:?} is not valid for Koji: it may not be empty or contain '-' or whitespace; fix the `release` label"
    )]
    Invalid { release: String },
}

/// The release after `release`, by Koji's `getNextRelease` rules: `N` → `N+1`, `N.x` →
/// `(N+1).x`, `a.b.N` → `a.b.(N+1)`; anything else has no successor.
pub fn bump(release: &str) -> Option<String> {
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    let plus_one = |part: &str| part.parse::<u64>().ok().map(|n| (n + 1).to_string());
    let parts: Vec<&str> = release.split('.').collect();
    match parts.as_slice() {
        [n] if digits(n) => plus_one(n),
        [n, x] if digits(n) && x.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            Some(format!("{}.{x}", plus_one(n)?))
        }
        [a, b, n] if digits(n) => Some(format!("{a}.{b}.{}", plus_one(n)?)),
        _ => None,
    }
}

/// What `getNextRelease` answers when the latest known release is `latest` (`None`: no
/// build of that name-version yet).
pub fn next_after(name: &str, version: &str, latest: Option<&str>) -> Result<String, ReleaseError> {
    match latest {
        None | Some("") => Ok("1".to_owned()),
        Some(latest) => bump(latest).ok_or_else(|| ReleaseError::CannotIncrement {
            name: name.to_owned(),
            version: version.to_owned(),
            release: latest.to_owned(),
        }),
    }
}

/// The releases of `version` among a repository's tags (`<version>-<release>`).
pub fn releases_in_tags<'a>(version: &str, tags: &'a [String]) -> Vec<&'a str> {
    tags.iter()
        .filter_map(|tag| tag.strip_prefix(version)?.strip_prefix('-'))
        .filter(|release| !release.is_empty() && !release.contains('-'))
        .collect()
}

/// Without a hub, "what Koji has" is what the registry has: the next release is the bump of
/// the highest release tagged for that version.
pub fn next_from_tags(name: &str, version: &str, tags: &[String]) -> Result<String, ReleaseError> {
    let latest = releases_in_tags(version, tags)
        .into_iter()
        .filter(|release| bump(release).is_some())
        .max_by(|a, b| compare(a, b));
    next_after(name, version, latest)
}

/// Orders releases the way rpm's version comparison does for the shapes Koji can increment:
/// dot-separated segments, numeric segments compared as numbers.
pub fn compare(a: &str, b: &str) -> Ordering {
    let mut left = a.split('.');
    let mut right = b.split('.');
    loop {
        match (left.next(), right.next()) {
            (None, None) => return Ordering::Equal,
            (Some(_), None) => return Ordering::Greater,
            (None, Some(_)) => return Ordering::Less,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    (Ok(_), Err(_)) => Ordering::Greater,
                    (Err(_), Ok(_)) => Ordering::Less,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

/// A release Koji and Docker tags accept.
pub fn check(release: &str) -> Result<(), ReleaseError> {
    if release.is_empty() || release.contains('-') || release.chars().any(char::is_whitespace) {
        Err(ReleaseError::Invalid {
            release: release.to_owned(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn koji_increment_rules() {
        let table = [
            ("1", Some("2")),
            ("9", Some("10")),
            ("3.fc41", Some("4.fc41")),
            ("1.2.3", Some("1.2.4")),
            ("a.b.7", Some("a.b.8")),
            ("1.x.y.z", None),
            ("rc1", None),
            ("1.fc-41", None),
            ("", None),
        ];
        for (release, expected) in table {
            assert_eq!(bump(release).as_deref(), expected, "{release}");
        }
        assert_eq!(next_after("n", "1", None).unwrap(), "1");
        assert!(
            next_after("n", "1", Some("rc1"))
                .unwrap_err()
                .to_string()
                .contains("n-1")
        );
    }

    #[test]
    fn next_release_from_registry_tags() {
        let tags = |list: &[&str]| list.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        let table: [(&[&str], &str); 6] = [
            (&[], "1"),
            (&["latest", "1.0", "other-tag"], "1"),
            (&["1.0-1", "1.0-2", "1.0", "latest"], "3"),
            (&["1.0-9", "1.0-10", "1.0-2"], "11"),
            (&["1.0-3.fc41", "1.0-10.fc41"], "11.fc41"),
            (&["1.0-rc1", "1.0-4", "1.01-7", "2.0-9"], "5"),
        ];
        for (list, expected) in table {
            assert_eq!(
                next_from_tags("app", "1.0", &tags(list)).unwrap(),
                expected,
                "{list:?}"
            );
        }
    }

    #[test]
    fn ordering() {
        assert_eq!(compare("10", "9"), Ordering::Greater);
        assert_eq!(compare("2.fc41", "10.fc41"), Ordering::Less);
        assert_eq!(compare("1.2", "1.2"), Ordering::Equal);
        assert_eq!(compare("1.2.1", "1.2"), Ordering::Greater);
    }

    #[test]
    fn valid_releases() {
        assert!(check("3.fc41").is_ok());
        for bad in ["", "1-2", "1 2"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }
}
