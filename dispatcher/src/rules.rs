//! The validation rules of DESIGN.md as pure functions: plain names, commit ids, releases,
//! dist-git URLs, yum repo URLs, branch/repo globs. Each error is one sentence naming the
//! value and what is expected.

use regex::Regex;
use std::sync::LazyLock;

/// Repository, namespace, branch, target and user names: no `/`, no `..`, no leading `.` or
/// `-`, nothing a shell or a path could misread.
static PLAIN_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}$").expect("valid regex"));
static COMMIT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[0-9a-fA-F]{40}$").expect("valid regex"));
/// koji-containerbuild's rule for the release of an isolated build.
static ISOLATED_RELEASE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d+\.\d+(\..+)?$").expect("valid regex"));
/// Koji forbids `-` in a release; nothing else outside these belongs in an NVR either.
static RELEASE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9._+~^]{1,100}$").expect("valid regex"));
static ARCH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-z0-9_]{1,30}$").expect("valid regex"));
static NVR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9._+~^-]{1,300}$").expect("valid regex"));

/// `value` as a plain name, or why not (`what` names the field).
pub fn plain_name(what: &str, value: &str) -> Result<(), String> {
    if PLAIN_NAME.is_match(value) && !value.contains("..") {
        Ok(())
    } else {
        Err(format!(
            "{what} {value:?} is not a plain name (letters, digits, '.', '_', '+', '-'; no '/' or '..')"
        ))
    }
}

/// A full commit id, lower-cased.
pub fn commit_id(what: &str, value: &str) -> Result<String, String> {
    if COMMIT.is_match(value) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(format!(
            "{what} {value:?} is not a commit id (40 hexadecimal characters)"
        ))
    }
}

/// A release forced by the requester; `isolated` builds also need koji-containerbuild's form.
pub fn release(value: &str, isolated: bool) -> Result<(), String> {
    if isolated && !ISOLATED_RELEASE.is_match(value) {
        return Err(format!(
            "opts.release {value:?} does not match ^\\d+\\.\\d+(\\..+)?$ as an isolated build requires (e.g. \"1.2\")"
        ));
    }
    if !RELEASE.is_match(value) {
        return Err(format!(
            "opts.release {value:?} is not a Koji release (letters, digits, '.', '_', '+', '~', '^'; no '-')"
        ));
    }
    Ok(())
}

pub fn arch(value: &str) -> Result<(), String> {
    if ARCH.is_match(value) {
        Ok(())
    } else {
        Err(format!(
            "opts.arch_override {value:?} is not an architecture name (e.g. x86_64)"
        ))
    }
}

/// Only a scratch build may narrow its arches (as koji-containerbuild rules: a build that
/// may be imported must hold every arch of its target).
pub fn arch_override_allowed(arch_override: &[String], scratch: bool) -> Result<(), String> {
    if arch_override.is_empty() || scratch {
        Ok(())
    } else {
        Err("arch_override is only allowed for scratch builds".into())
    }
}

pub fn nvr(what: &str, value: &str) -> Result<(), String> {
    if NVR.is_match(value) && !value.contains("..") {
        Ok(())
    } else {
        Err(format!("{what} {value:?} is not a Koji build NVR"))
    }
}

/// A yum `.repo` URL: http(s) or file, nothing that could smuggle a second argument.
pub fn repo_url(value: &str) -> Result<(), String> {
    let parsed = url::Url::parse(value)
        .map_err(|error| format!("yum repo URL {value:?} is not a URL: {error}"))?;
    if !matches!(parsed.scheme(), "http" | "https" | "file") {
        return Err(format!(
            "yum repo URL {value:?} must be http, https or file"
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("yum repo URL {value:?} contains whitespace"));
    }
    Ok(())
}

/// Checks a dist-git base URL of the configuration and returns it without trailing `/`.
pub fn check_git_base(value: &str) -> Result<String, String> {
    let trimmed = value.trim_end_matches('/');
    let parsed =
        url::Url::parse(trimmed).map_err(|error| format!("{value:?} is not a URL: {error}"))?;
    if !matches!(parsed.scheme(), "https" | "http" | "git" | "ssh" | "file") {
        return Err(format!(
            "{value:?}: the scheme must be https, http, git, ssh or file"
        ));
    }
    if parsed.password().is_some() || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "{value:?} must not carry a password, a query or a fragment"
        ));
    }
    if has_unsafe_characters(trimmed) || has_dot_segment(trimmed) {
        return Err(format!(
            "{value:?} must not contain '..', '%', '\\', '?', '#' or whitespace"
        ));
    }
    Ok(trimmed.to_owned())
}

fn has_unsafe_characters(url: &str) -> bool {
    url.chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '%' | '\\' | '?' | '#'))
}

fn has_dot_segment(url: &str) -> bool {
    url.split('/')
        .any(|segment| segment == ".." || segment == ".")
}

/// A dist-git repository URL split against the allowed bases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoUrl {
    pub namespace: String,
    pub repo: String,
}

/// `<base>/<namespace>/<repo>[.git]` with `<base>` one of `allowed` (compared as text, up to a
/// `/`, so that `https://src.fedoraproject.org.evil.net` or `...@evil.net` never match).
pub fn split_repo_url(url: &str, allowed: &[String]) -> Result<RepoUrl, String> {
    if has_unsafe_characters(url) || has_dot_segment(url) {
        return Err(format!(
            "git URL {url:?} contains '..', '%', '\\', '?', '#' or whitespace"
        ));
    }
    let rest = allowed
        .iter()
        .find_map(|base| url.strip_prefix(base.as_str())?.strip_prefix('/'))
        .ok_or_else(|| {
            format!(
                "git URL {url:?} is not on an allowed dist-git host (allowed: {}): ask for a build from one of them",
                allowed.join(", ")
            )
        })?;
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let [namespace, repo] = parts.as_slice() else {
        return Err(format!(
            "git URL {url:?} is not <dist-git>/<namespace>/<repo>"
        ));
    };
    let repo = repo.strip_suffix(".git").unwrap_or(repo);
    plain_name("namespace", namespace)?;
    plain_name("repo", repo)?;
    Ok(RepoUrl {
        namespace: (*namespace).to_owned(),
        repo: repo.to_owned(),
    })
}

/// A shell-style glob (`*` any run of characters, `?` one character), whole-string match.
/// Hand-written over `regex` (already a dependency) because two wildcards is all routing
/// needs.
#[derive(Debug, Clone)]
pub struct Glob {
    pattern: String,
    regex: Regex,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("an empty pattern matches nothing: remove it".into());
        }
        let mut expression = String::from("^");
        for c in pattern.chars() {
            match c {
                '*' => expression.push_str(".*"),
                '?' => expression.push('.'),
                other => expression.push_str(&regex::escape(&other.to_string())),
            }
        }
        expression.push('$');
        let regex = Regex::new(&expression)
            .map_err(|error| format!("pattern {pattern:?} is not a glob: {error}"))?;
        Ok(Glob {
            pattern: pattern.to_owned(),
            regex,
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names() {
        let table = [
            ("httpd", true),
            ("libsigc++", true),
            ("python3.12", true),
            ("f41", true),
            ("_private", true),
            ("../../etc", false),
            ("a/b", false),
            ("..", false),
            ("a..b", false),
            (".hidden", false),
            ("-rf", false),
            ("", false),
            ("has space", false),
            ("semi;colon", false),
            ("new\nline", false),
        ];
        for (value, ok) in table {
            assert_eq!(plain_name("repo", value).is_ok(), ok, "{value:?}");
        }
        let error = plain_name("commit.repo", "../../etc").unwrap_err();
        assert!(
            error.contains("commit.repo") && error.contains("../../etc"),
            "{error}"
        );
    }

    #[test]
    fn commit_ids() {
        assert_eq!(
            commit_id("rev", "3AA6642B0990D1F6A0E0CE7373C8AD37D2F980CE").unwrap(),
            "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce"
        );
        for bad in [
            "not-a-sha; rm -rf /",
            "3aa6642",
            "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980cez",
            "g".repeat(40).as_str(),
            "",
        ] {
            assert!(commit_id("rev", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn releases() {
        let table = [
            ("1.2", true, true),
            ("1.2.3", true, true),
            ("10.0.rc1", true, true),
            ("one", true, false),
            ("1", true, false),
            ("1.2-3", true, false),
            ("5", false, true),
            ("5.fc41", false, true),
            ("5-1", false, false),
            ("a b", false, false),
        ];
        for (value, isolated, ok) in table {
            assert_eq!(release(value, isolated).is_ok(), ok, "{value:?} {isolated}");
        }
    }

    #[test]
    fn repo_urls_split_against_allowed_bases() {
        let allowed = vec![
            "https://src.fedoraproject.org".to_owned(),
            "file:///var/lib/osbs/dist-git".to_owned(),
        ];
        let ok = |namespace: &str, repo: &str| {
            Ok(RepoUrl {
                namespace: namespace.into(),
                repo: repo.into(),
            })
        };
        assert_eq!(
            split_repo_url(
                "https://src.fedoraproject.org/container/httpd.git",
                &allowed
            ),
            ok("container", "httpd")
        );
        assert_eq!(
            split_repo_url("https://src.fedoraproject.org/container/httpd", &allowed),
            ok("container", "httpd")
        );
        assert_eq!(
            split_repo_url("file:///var/lib/osbs/dist-git/docker/cockpit.git", &allowed),
            ok("docker", "cockpit")
        );
        let refused = [
            ("https://evil.example.net/container/httpd.git", "allowed"),
            (
                "https://src.fedoraproject.org.evil.net/container/httpd.git",
                "allowed",
            ),
            (
                "https://src.fedoraproject.org@evil.net/container/httpd.git",
                "allowed",
            ),
            ("https://src.fedoraproject.org/../etc/passwd", ".."),
            ("https://src.fedoraproject.org/container/%2e%2e", ".."),
            ("https://src.fedoraproject.org/httpd.git", "<namespace>"),
            ("https://src.fedoraproject.org/a/b/c.git", "<namespace>"),
            ("https://src.fedoraproject.org/container/-x.git", "plain"),
            (
                "http://src.fedoraproject.org/container/httpd.git",
                "allowed",
            ),
        ];
        for (url, expected) in refused {
            let error = split_repo_url(url, &allowed).unwrap_err();
            assert!(error.contains(expected), "{url}: {error}");
        }
    }

    #[test]
    fn git_bases() {
        assert_eq!(
            check_git_base("https://src.fedoraproject.org/").unwrap(),
            "https://src.fedoraproject.org"
        );
        assert!(check_git_base("file:///srv/git").is_ok());
        for bad in [
            "src.fedoraproject.org",
            "ftp://x",
            "https://u:p@x",
            "https://x/a?b",
            "https://x/../y",
        ] {
            assert!(check_git_base(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn globs() {
        let table = [
            ("f*", "f41", true),
            ("f*", "epel9", false),
            ("epel?", "epel9", true),
            ("epel?", "epel10", false),
            ("main", "main", true),
            ("main", "mainline", false),
            ("a.b", "axb", false),
            ("*", "anything", true),
        ];
        for (pattern, value, expected) in table {
            assert_eq!(
                Glob::new(pattern).unwrap().matches(value),
                expected,
                "{pattern} {value}"
            );
        }
        assert!(Glob::new("").is_err());
    }

    #[test]
    fn other_option_values() {
        assert!(arch("x86_64").is_ok());
        assert!(arch("x86 64").is_err());
        let overrides = ["aarch64".to_owned()];
        let table: [(&[String], bool, bool); 4] = [
            (&[], false, true),
            (&[], true, true),
            (&overrides, true, true),
            (&overrides, false, false),
        ];
        for (arches, scratch, allowed) in table {
            let outcome = arch_override_allowed(arches, scratch);
            assert_eq!(outcome.is_ok(), allowed, "{arches:?} scratch={scratch}");
        }
        assert!(nvr("opts.koji_parent_build", "fedora-41-1.2").is_ok());
        assert!(nvr("opts.koji_parent_build", "a;b").is_err());
        assert!(repo_url("https://repos.example.com/f41.repo").is_ok());
        assert!(repo_url("ftp://x/y.repo").is_err());
        assert!(repo_url("not a url").is_err());
    }
}
