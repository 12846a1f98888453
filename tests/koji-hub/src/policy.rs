//! Koji's hub policies (`koji.policy.SimpleRuleSet` and `check_policy`), for the one policy a
//! content generator meets: `tag`, which `tagBuild`, `tagBuildBypass` and the tagging task
//! check. Pure: the caller hands in what the rules test ([`PolicyData`]).
//!
//! A hub with no `tag` policy configured allows everything: koji ships no default `tag` policy
//! and its `MissingPolicyOk` defaults to true.

use crate::fault::Fault;
use std::collections::BTreeSet;

/// A parsed rule set: `test [args] [&& test [args]...] :: action [reason]` (or `!!` for the
/// negated form), nested with `:: {` ... `}`. The first rule that matches decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    tests: Vec<Test>,
    negate: bool,
    action: Action,
}

#[derive(Debug, Clone, PartialEq)]
enum Action {
    Result(String),
    Nested(Vec<Rule>),
}

/// The policy tests of a stock hub that make sense for tagging.
#[derive(Debug, Clone, PartialEq)]
enum Test {
    Always(bool),
    HasPerm(Vec<String>),
    Tag(Vec<String>),
    FromTag(Vec<String>),
    Operation(Vec<String>),
    Package(Vec<String>),
    IsBuildOwner,
}

/// What a `tag` policy rule can look at.
#[derive(Debug, Clone, Copy)]
pub struct PolicyData<'a> {
    /// The destination tag's name (`None` for an untag).
    pub tag: Option<&'a str>,
    pub fromtag: Option<&'a str>,
    /// `tag`, `untag` or `move`.
    pub operation: &'a str,
    /// The build's package name.
    pub package: &'a str,
    /// The permissions of the user the policy judges (`None`: nobody is logged in).
    pub user_perms: Option<&'a BTreeSet<String>>,
    pub user_owns_build: bool,
}

/// A policy text the double cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("bad policy line: {0}")]
    BadLine(String),
    #[error(
        "missing test handler: {0} (this hub double knows true, all, false, none, has_perm, tag, fromtag, operation, package, is_build_owner)"
    )]
    UnknownTest(String),
    #[error("nesting error in rule set")]
    Nesting,
}

impl Policy {
    /// Parses a rule set as koji reads one from `hub.conf`'s `[policy]` section.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let mut stack: Vec<(Vec<Test>, bool, Vec<Rule>)> = Vec::new();
        let mut current: Vec<Rule> = Vec::new();
        for raw in text.lines() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if line == "}" {
                let (tests, negate, mut parent) = stack.pop().ok_or(PolicyError::Nesting)?;
                parent.push(Rule {
                    tests,
                    negate,
                    action: Action::Nested(std::mem::take(&mut current)),
                });
                current = parent;
                continue;
            }
            let (position, negate) = match line.rfind("::") {
                Some(position) => (position, false),
                None => (
                    line.rfind("!!")
                        .ok_or_else(|| PolicyError::BadLine(line.to_owned()))?,
                    true,
                ),
            };
            let tests = line[..position]
                .split("&&")
                .map(parse_test)
                .collect::<Result<Vec<_>, _>>()?;
            let action = line[position + 2..].trim();
            if action == "{" {
                stack.push((tests, negate, std::mem::take(&mut current)));
            } else {
                current.push(Rule {
                    tests,
                    negate,
                    action: Action::Result(action.to_owned()),
                });
            }
        }
        if !stack.is_empty() {
            return Err(PolicyError::Nesting);
        }
        Ok(Policy { rules: current })
    }

    /// The action of the first matching rule, or `None` when no rule covers `data`.
    pub fn apply(&self, data: &PolicyData) -> Option<String> {
        apply_rules(&self.rules, data)
    }
}

fn parse_test(text: &str) -> Result<Test, PolicyError> {
    let mut words = text.split_whitespace();
    let name = words.next().unwrap_or("");
    let args: Vec<String> = words.map(str::to_owned).collect();
    Ok(match name {
        "true" | "all" => Test::Always(true),
        "false" | "none" => Test::Always(false),
        "has_perm" => Test::HasPerm(args),
        "tag" => Test::Tag(args),
        "fromtag" => Test::FromTag(args),
        "operation" => Test::Operation(args),
        "package" => Test::Package(args),
        "is_build_owner" => Test::IsBuildOwner,
        other => return Err(PolicyError::UnknownTest(other.to_owned())),
    })
}

fn apply_rules(rules: &[Rule], data: &PolicyData) -> Option<String> {
    for rule in rules {
        let matched = rule.tests.iter().all(|test| run_test(test, data)) != rule.negate;
        if !matched {
            continue;
        }
        match &rule.action {
            Action::Result(action) => return Some(action.clone()),
            // A nested block where nothing matched falls through to the next rule.
            Action::Nested(inner) => {
                if let Some(action) = apply_rules(inner, data) {
                    return Some(action);
                }
            }
        }
    }
    None
}

fn run_test(test: &Test, data: &PolicyData) -> bool {
    let any = |value: Option<&str>, patterns: &[String]| {
        value.is_some_and(|value| patterns.iter().any(|pattern| fnmatch(value, pattern)))
    };
    match test {
        Test::Always(value) => *value,
        Test::HasPerm(patterns) => data.user_perms.is_some_and(|perms| {
            perms
                .iter()
                .any(|perm| patterns.iter().any(|pattern| fnmatch(perm, pattern)))
        }),
        Test::Tag(patterns) => any(data.tag, patterns),
        Test::FromTag(patterns) => any(data.fromtag, patterns),
        Test::Operation(patterns) => any(Some(data.operation), patterns),
        Test::Package(patterns) => any(Some(data.package), patterns),
        Test::IsBuildOwner => data.user_owns_build,
    }
}

/// `assert_policy(name, data, force=force)`: allowed, or the hub's `ActionNotAllowed`.
/// `None` is a policy the hub was not given: allowed (`MissingPolicyOk`). An admin passing
/// `force` overrides a denial.
pub fn assert_policy(
    name: &str,
    policy: Option<&Policy>,
    data: &PolicyData,
    force: bool,
) -> Result<(), Fault> {
    let Some(policy) = policy else {
        return Ok(());
    };
    let (result, mut reason) = match policy.apply(data) {
        None => ("deny".to_owned(), "not covered by policy".to_owned()),
        Some(action) => {
            let mut parts = action.splitn(2, char::is_whitespace);
            let result = parts.next().unwrap_or("").to_lowercase();
            (result, parts.next().unwrap_or("").trim_start().to_owned())
        }
    };
    if result == "allow" {
        return Ok(());
    }
    if result != "deny" {
        reason = "error in policy".into();
    }
    let admin = data.user_perms.is_some_and(|perms| perms.contains("admin"));
    if force && admin {
        return Ok(());
    }
    let mut text = format!("policy violation ({name})");
    if !reason.is_empty() {
        text.push_str(": ");
        text.push_str(&reason);
    }
    Err(Fault::not_allowed(text))
}

/// Python's `fnmatch.fnmatch` on POSIX: `*`, `?`, `[seq]` and `[!seq]`.
pub fn fnmatch(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    matches_from(&text, &pattern)
}

fn matches_from(text: &[char], pattern: &[char]) -> bool {
    match pattern.first() {
        None => text.is_empty(),
        Some('*') => (0..=text.len()).any(|skip| matches_from(&text[skip..], &pattern[1..])),
        Some('?') => !text.is_empty() && matches_from(&text[1..], &pattern[1..]),
        Some('[') => match (text.first(), bracket(&pattern[1..])) {
            (Some(ch), Some((set, negated, rest))) => {
                set.contains(ch) != negated && matches_from(&text[1..], rest)
            }
            // An unclosed `[` is a literal, as in Python.
            (Some('['), None) => matches_from(&text[1..], &pattern[1..]),
            _ => false,
        },
        Some(literal) => text.first() == Some(literal) && matches_from(&text[1..], &pattern[1..]),
    }
}

/// The characters of a `[...]` class (after the `[`), whether it is negated, and the
/// pattern after its `]`.
fn bracket(pattern: &[char]) -> Option<(Vec<char>, bool, &[char])> {
    let (negated, body) = match pattern.first() {
        Some('!') => (true, &pattern[1..]),
        _ => (false, pattern),
    };
    // A `]` right after `[` or `[!` is a member, not the end.
    let end = body
        .iter()
        .skip(1)
        .position(|ch| *ch == ']')
        .map(|position| position + 1)?;
    let mut set = Vec::new();
    let mut index = 0;
    while index < end {
        if index + 2 < end && body[index + 1] == '-' {
            set.extend(body[index]..=body[index + 2]);
            index += 3;
        } else {
            set.push(body[index]);
            index += 1;
        }
    }
    Some((set, negated, &body[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "
        # as in the real hub's check (docs/OPERATIONS.md)
        package frozen :: deny
        tag *-candidate && has_perm tag :: allow
        tag *-candidate :: deny only releng tags candidates
        tag other-* :: allow
        tag deny-* :: deny
        operation move :: {
            fromtag trash :: allow
        }
        is_build_owner !! deny not yours
        tag mine-* :: Allow
        tag odd-* :: maybe later
    ";

    /// Tag, package, the user's permissions, force, and the answer.
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a BTreeSet<String>,
        bool,
        Result<(), &'a str>,
    );

    fn data<'a>(tag: &'a str, package: &'a str, perms: &'a BTreeSet<String>) -> PolicyData<'a> {
        PolicyData {
            tag: Some(tag),
            fromtag: None,
            operation: "tag",
            package,
            user_perms: Some(perms),
            user_owns_build: true,
        }
    }

    #[test]
    fn tag_policy_answers_as_the_hub() {
        let policy = Policy::parse(RULES).unwrap();
        let none = BTreeSet::new();
        let tagger: BTreeSet<String> = ["tag".to_owned()].into();
        let admin: BTreeSet<String> = ["admin".to_owned()].into();
        let cases: &[Case] = &[
            (
                "f41-candidate",
                "httpd",
                &none,
                false,
                Err("policy violation (tag): only releng tags candidates"),
            ),
            ("f41-candidate", "httpd", &tagger, false, Ok(())),
            (
                "other-1",
                "frozen",
                &tagger,
                false,
                Err("policy violation (tag)"),
            ),
            (
                "other-1",
                "frozen",
                &tagger,
                true,
                Err("policy violation (tag)"),
            ),
            (
                "other-1",
                "frozen",
                &admin,
                false,
                Err("policy violation (tag)"),
            ),
            ("other-1", "frozen", &admin, true, Ok(())),
            ("other-1", "httpd", &none, false, Ok(())),
            (
                "deny-1",
                "httpd",
                &none,
                false,
                Err("policy violation (tag)"),
            ),
            (
                "plain",
                "httpd",
                &none,
                false,
                Err("policy violation (tag): not covered by policy"),
            ),
            ("mine-1", "httpd", &none, false, Ok(())),
            (
                "odd-1",
                "httpd",
                &none,
                false,
                Err("policy violation (tag): error in policy"),
            ),
        ];
        for (tag, package, perms, force, expected) in cases {
            let got = assert_policy("tag", Some(&policy), &data(tag, package, perms), *force);
            assert_eq!(
                got.map_err(|fault| (fault.code, fault.text)),
                expected.map_err(|text| (crate::fault::code::ACTION_NOT_ALLOWED, text.to_owned())),
                "{tag} {package} {perms:?} force={force}"
            );
        }
        let mut not_owner = data("plain", "httpd", &none);
        not_owner.user_owns_build = false;
        assert_eq!(
            assert_policy("tag", Some(&policy), &not_owner, false)
                .unwrap_err()
                .text,
            "policy violation (tag): not yours"
        );
        let mut moved = data("plain", "httpd", &none);
        moved.operation = "move";
        moved.fromtag = Some("trash");
        assert!(assert_policy("tag", Some(&policy), &moved, false).is_ok());
        assert!(assert_policy("tag", None, &data("x", "y", &none), false).is_ok());
    }

    #[test]
    fn bad_policies_are_refused() {
        assert_eq!(
            Policy::parse("all allow"),
            Err(PolicyError::BadLine("all allow".into()))
        );
        assert_eq!(
            Policy::parse("is_draft :: deny"),
            Err(PolicyError::UnknownTest("is_draft".into()))
        );
        assert_eq!(Policy::parse("all :: {"), Err(PolicyError::Nesting));
        assert_eq!(Policy::parse("}"), Err(PolicyError::Nesting));
    }

    #[test]
    fn fnmatch_is_pythons() {
        let cases = [
            ("f41-candidate", "*-candidate", true),
            ("f41-candidate", "*-build", false),
            ("abc", "a?c", true),
            ("abc", "a[a-c]c", true),
            ("abc", "a[!b]c", false),
            ("a]c", "a[]]c", true),
            ("a[c", "a[c", true),
            ("", "*", true),
            ("x", "", false),
        ];
        for (text, pattern, expected) in cases {
            assert_eq!(fnmatch(text, pattern), expected, "{text} ~ {pattern}");
        }
    }
}
