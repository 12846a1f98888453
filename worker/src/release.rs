//! Release step, pure part: Koji's `getNextRelease` rules as atomic-reactor patches them, and
//! the next release when no hub is configured (from the releases the registry and the
//! name-version's record in Redis know).

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

/// atomic-reactor's patch of a next release (`get_patched_release`): a numeric second
/// dot-part is dropped (`19.1` → `19`, `3.2.fc41` → `3.fc41`), anything else is kept.
/// Without it, `getNextRelease` after an isolated build `18.1` (the hub bumps the newest build
/// of the name-version) answers `19.1`, and every later normal build would keep the isolated
/// build's suffix.
pub fn patch(release: &str) -> String {
    let mut parts = release.splitn(3, '.');
    let first = parts.next().unwrap_or_default();
    let second = parts.next();
    let rest = parts.next();
    let numeric = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    [Some(first), second.filter(|part| !numeric(part)), rest]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(".")
}

/// The release after `release`, as OSBS derives every next release: Koji's bump, then
/// atomic-reactor's patch.
pub fn next(release: &str) -> Option<String> {
    bump(release).map(|bumped| patch(&bumped))
}

/// The next release when the latest known release is `latest` (`None`: no build of that
/// name-version yet): what a hub's `getNextRelease` would answer, patched.
pub fn next_after(name: &str, version: &str, latest: Option<&str>) -> Result<String, ReleaseError> {
    match latest {
        None | Some("") => Ok("1".to_owned()),
        Some(latest) => next(latest).ok_or_else(|| ReleaseError::CannotIncrement {
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

/// Without a hub, "what Koji has" is what the registry's tags of the repository and the
/// name-version's releases recorded in Redis (`recorded`, whatever repository they were
/// pushed to) say: the next release is the one after the highest of them.
pub fn next_without_hub(
    name: &str,
    version: &str,
    tags: &[String],
    recorded: &[String],
) -> Result<String, ReleaseError> {
    let latest = releases_in_tags(version, tags)
        .into_iter()
        .chain(recorded.iter().map(String::as_str))
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

/// Without a hub: whether `release` is among the releases recorded as pushed for its
/// name-version (a release set by hand must not be built twice, as Koji would refuse it).
pub fn already_pushed(release: &str, recorded: &[String]) -> bool {
    recorded.iter().any(|pushed| pushed == release)
}

/// The Koji build target to look up before a release is reserved, if any: the build will be
/// imported and tagged through it (a hub is configured, the build is not scratch, and no
/// `dest_tag` set in the configuration stands in for the target's).
pub fn target_to_check<'a>(
    target_name: &'a str,
    dest_tag: &str,
    has_hub: bool,
    scratch: bool,
) -> Option<&'a str> {
    (has_hub && !scratch && !target_name.is_empty() && dest_tag.is_empty()).then_some(target_name)
}

/// Why a build whose target the hub lacks is refused (before anything is reserved or built).
pub fn missing_target(target_name: &str, branch: &str, namespace: &str) -> String {
    format!(
        "Koji has no build target {target_name} (the target of branch {branch:?} in namespace {namespace:?}): nothing was reserved or built; create the target in Koji, or map the branch to an existing target ([dispatcher] branch_targets / target_template)"
    )
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
            ("18.1", Some("19.1")),
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
    fn next_releases_are_patched_as_atomic_reactor_does() {
        let table = [
            // The hub's answer after an isolated build 18.1.
            ("19.1", "19"),
            ("19", "19"),
            ("4.fc41", "4.fc41"),
            ("3.2.fc41", "3.fc41"),
            ("1.2.4", "1.4"),
            ("a.b.8", "a.b.8"),
            ("7.0", "7"),
            ("", ""),
        ];
        for (answer, expected) in table {
            assert_eq!(patch(answer), expected, "{answer:?}");
        }
        let next_table = [
            ("18.1", Some("19")),
            ("18", Some("19")),
            ("3.fc41", Some("4.fc41")),
            ("rc1", None),
        ];
        for (release, expected) in next_table {
            assert_eq!(next(release).as_deref(), expected, "{release}");
        }
        assert_eq!(next_after("n", "1.0", Some("18.1")).unwrap(), "19");
    }

    #[test]
    fn next_release_from_registry_tags() {
        let tags = |list: &[&str]| list.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        let table: [(&[&str], &str); 7] = [
            (&[], "1"),
            (&["latest", "1.0", "other-tag"], "1"),
            (&["1.0-1", "1.0-2", "1.0", "latest"], "3"),
            (&["1.0-9", "1.0-10", "1.0-2"], "11"),
            (&["1.0-3.fc41", "1.0-10.fc41"], "11.fc41"),
            (&["1.0-rc1", "1.0-4", "1.01-7", "2.0-9"], "5"),
            (&["1.0-18", "1.0-18.1"], "19"),
        ];
        for (list, expected) in table {
            assert_eq!(
                next_without_hub("app", "1.0", &tags(list), &[]).unwrap(),
                expected,
                "{list:?}"
            );
        }
    }

    #[test]
    fn without_a_hub_releases_recorded_for_the_name_version_count_too() {
        let strings = |list: &[&str]| list.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        let table: [(&[&str], &[&str], &str); 5] = [
            (&[], &[], "1"),
            // Another repository pushed release 1 of the same component-version.
            (&[], &["1"], "2"),
            (&["1.0-3"], &["1", "2"], "4"),
            (&["1.0-1"], &["5", "rc1"], "6"),
            (&[], &["9", "10"], "11"),
        ];
        for (tags, recorded, expected) in table {
            assert_eq!(
                next_without_hub("app", "1.0", &strings(tags), &strings(recorded)).unwrap(),
                expected,
                "{tags:?} {recorded:?}"
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
    fn the_target_is_checked_when_the_build_will_be_tagged_through_it() {
        let table = [
            // (target, dest_tag, hub, scratch) → checked
            (
                ("f41-container-candidate", "", true, false),
                Some("f41-container-candidate"),
            ),
            (("f41-container-candidate", "", true, true), None),
            (("f41-container-candidate", "", false, false), None),
            (
                ("f41-container-candidate", "f41-updates", true, false),
                None,
            ),
            (("", "", true, false), None),
        ];
        for ((name, dest, hub, scratch), expected) in table {
            assert_eq!(
                target_to_check(name, dest, hub, scratch),
                expected,
                "{name} {dest} {hub} {scratch}"
            );
        }
        assert!(
            missing_target("f99-container-candidate", "f99", "container")
                .starts_with("Koji has no build target f99-container-candidate")
        );
    }

    #[test]
    fn a_release_set_by_hand_is_refused_once_pushed() {
        let recorded = ["1".to_owned(), "18.1".to_owned()];
        let table = [("1", true), ("18.1", true), ("18", false), ("2", false)];
        for (release, expected) in table {
            assert_eq!(already_pushed(release, &recorded), expected, "{release}");
        }
        assert!(!already_pushed("1", &[]));
    }

    #[test]
    fn valid_releases() {
        assert!(check("3.fc41").is_ok());
        for bad in ["", "1-2", "1 2"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }
}
