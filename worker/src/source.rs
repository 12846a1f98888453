//! Source step, pure part: which clone URLs and yum repo URLs are allowed, the dist-git
//! `sources` file (both forms) and which names it may use, lookaside URLs (both layouts) and
//! hash checking.

use md5::Md5;
use sha2::{Digest, Sha256, Sha512};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error(
        "git URL {url:?} is not an allowed dist-git URL (allowed: {allowed}); build from the configured dist-git"
    )]
    GitUrlNotAllowed { url: String, allowed: String },
    #[error("commit {0:?} is not a 40-hex commit id: give the full commit hash")]
    BadCommit(String),
    #[error(
        "yum repo URL {url:?} is not allowed (only http(s) URLs{allowed}); remove it from --repo-url or the target"
    )]
    RepoUrlNotAllowed { url: String, allowed: String },
    #[error(
        "sources file line {line}: {reason}: {text:?}; fix the sources file with `fedpkg new-sources`"
    )]
    BadSourcesLine {
        line: usize,
        reason: String,
        text: String,
    },
    #[error(
        "sources file names {name:?}: a file name may not contain '/', be '.' or '..', or be absolute; fix the sources file"
    )]
    UnsafeName { name: String },
    #[error(
        "sources file names {name:?}, which the commit itself holds; a lookaside file may not replace a file of the repository: rename the upload or remove {name} from the repository"
    )]
    TrackedName { name: String },
    #[error(
        "sources file names {name:?}, a file the worker reads from the commit itself; a lookaside file may not stand in for it: rename the upload"
    )]
    ReservedName { name: String },
    #[error("sources file names {name:?} twice; keep one line per file")]
    DuplicateName { name: String },
    #[error(
        "checksum mismatch for {name}: the sources file says {hashtype} {expected}, the lookaside served {actual}; upload the right file with `fedpkg new-sources`"
    )]
    ChecksumMismatch {
        name: String,
        hashtype: String,
        expected: String,
        actual: String,
    },
    #[error(
        "lookaside URL template {template:?} is invalid: {reason}; fix `[worker] lookaside_url`"
    )]
    BadTemplate { template: String, reason: String },
}

/// Refuses a clone URL unless it starts with one of `allowed` and stays under it.
pub fn check_git_url(url: &str, allowed: &[String]) -> Result<(), SourceError> {
    let refused = || SourceError::GitUrlNotAllowed {
        url: url.to_owned(),
        allowed: allowed.join(", "),
    };
    let under_base = allowed.iter().any(|base| {
        !base.is_empty()
            && url.starts_with(base.as_str())
            && (base.ends_with('/') || url[base.len()..].starts_with('/'))
    });
    let escapes = url
        .split(['/', '\\'])
        .any(|segment| segment == ".." || segment.eq_ignore_ascii_case("%2e%2e"))
        || url.chars().any(|c| c.is_control() || c.is_whitespace())
        || url.starts_with('-');
    if under_base && !escapes {
        Ok(())
    } else {
        Err(refused())
    }
}

/// A commit id the git CLI can only read as a commit (never as an option).
pub fn check_commit(commit: &str) -> Result<(), SourceError> {
    if commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(SourceError::BadCommit(commit.to_owned()))
    }
}

/// Yum repo URLs: http(s) only (a `file://` URL would read the worker's own disk), and under
/// one of `allowed` when that list is not empty.
pub fn check_repo_url(url: &str, allowed: &[String]) -> Result<(), SourceError> {
    let refused = || SourceError::RepoUrlNotAllowed {
        url: url.to_owned(),
        allowed: if allowed.is_empty() {
            String::new()
        } else {
            format!(" under {}", allowed.join(", "))
        },
    };
    let parsed = url::Url::parse(url).map_err(|_| refused())?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(refused());
    }
    if !allowed.is_empty() && !allowed.iter().any(|base| url.starts_with(base.as_str())) {
        return Err(refused());
    }
    Ok(())
}

/// Hash algorithms a `sources` file may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashType {
    Md5,
    Sha256,
    Sha512,
}

impl HashType {
    /// The lowercase name used in lookaside URLs (`sha512`).
    pub fn name(self) -> &'static str {
        match self {
            HashType::Md5 => "md5",
            HashType::Sha256 => "sha256",
            HashType::Sha512 => "sha512",
        }
    }

    fn parse(name: &str) -> Option<HashType> {
        match name.to_ascii_lowercase().as_str() {
            "md5" => Some(HashType::Md5),
            "sha256" => Some(HashType::Sha256),
            "sha512" => Some(HashType::Sha512),
            _ => None,
        }
    }

    fn hex_len(self) -> usize {
        match self {
            HashType::Md5 => 32,
            HashType::Sha256 => 64,
            HashType::Sha512 => 128,
        }
    }
}

/// One artifact of the `sources` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    pub name: String,
    pub hashtype: HashType,
    /// Lowercase hex.
    pub hash: String,
}

/// Parses a dist-git `sources` file: `SHA512 (name) = hex` lines (any of MD5, SHA256,
/// SHA512) and the old `md5hex  name` form. Blank lines are skipped.
pub fn parse_sources(text: &str) -> Result<Vec<SourceEntry>, SourceError> {
    let mut entries = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let bad = |reason: &str| SourceError::BadSourcesLine {
            line: index + 1,
            reason: reason.to_owned(),
            text: raw.to_owned(),
        };
        let entry = if let Some((kind, rest)) = line.split_once(" (") {
            // BSD style: `SHA512 (name) = hash`; the name may itself hold ") = ".
            let hashtype = HashType::parse(kind).ok_or_else(|| bad("unknown hash type"))?;
            let (name, hash) = rest
                .rsplit_once(") = ")
                .ok_or_else(|| bad("expected `TYPE (name) = hash`"))?;
            SourceEntry {
                name: name.to_owned(),
                hashtype,
                hash: hash.trim().to_ascii_lowercase(),
            }
        } else {
            let mut parts = line.splitn(2, char::is_whitespace);
            let hash = parts.next().unwrap_or_default();
            let name = parts.next().map(str::trim).unwrap_or_default();
            if name.is_empty() {
                return Err(bad("expected `md5  name`"));
            }
            SourceEntry {
                name: name.to_owned(),
                hashtype: HashType::Md5,
                hash: hash.to_ascii_lowercase(),
            }
        };
        if entry.hash.len() != entry.hashtype.hex_len()
            || !entry.hash.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(bad(&format!("not a {} hex digest", entry.hashtype.name())));
        }
        check_file_name(&entry.name)?;
        if entries
            .iter()
            .any(|seen: &SourceEntry| seen.name == entry.name)
        {
            return Err(SourceError::DuplicateName { name: entry.name });
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// A file name that can only land in the top of the build context.
pub fn check_file_name(name: &str) -> Result<(), SourceError> {
    let unsafe_name = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\\')
        || name.contains('\0')
        || name.starts_with('~');
    if unsafe_name {
        Err(SourceError::UnsafeName {
            name: name.to_owned(),
        })
    } else {
        Ok(())
    }
}

/// The files the worker reads from the commit itself, before any download.
pub const READ_FROM_THE_COMMIT: [&str; 3] = ["Dockerfile", ".dockerignore", "sources"];

/// Refuses, before anything is fetched, an entry whose name the commit already holds at the
/// top of its tree (`tracked`) — a download must never replace (or be written through) a
/// file, directory or symlink of the repository — or names a file the worker reads from the
/// commit.
pub fn check_not_tracked(
    entries: &[SourceEntry],
    tracked: &BTreeSet<String>,
) -> Result<(), SourceError> {
    for entry in entries {
        let name = entry.name.clone();
        if tracked.contains(&entry.name) {
            return Err(SourceError::TrackedName { name });
        }
        if READ_FROM_THE_COMMIT.contains(&entry.name.as_str()) {
            return Err(SourceError::ReservedName { name });
        }
    }
    Ok(())
}

/// Where to download `entry` of `namespace/repo` from, by the configured template.
pub fn lookaside_url(
    template: &str,
    namespace: &str,
    repo: &str,
    entry: &SourceEntry,
) -> Result<String, SourceError> {
    let bad = |reason: &str| SourceError::BadTemplate {
        template: template.to_owned(),
        reason: reason.to_owned(),
    };
    if !template.contains("{filename}") || !template.contains("{hash}") {
        return Err(bad("it must hold {filename} and {hash}"));
    }
    let filled = template
        .replace("{namespace}", &path_segment(namespace))
        .replace("{repo}", &path_segment(repo))
        .replace("{filename}", &path_segment(&entry.name))
        .replace("{hashtype}", entry.hashtype.name())
        .replace("{hash}", &entry.hash);
    url::Url::parse(&filled)
        .map(|url| url.to_string())
        .map_err(|error| bad(&error.to_string()))
}

/// `value` percent-encoded as one URL path segment (the `url` crate's own encoding).
fn path_segment(value: &str) -> String {
    let mut url = url::Url::parse("http://segment.invalid/").expect("a fixed URL parses");
    url.path_segments_mut()
        .expect("an http URL has path segments")
        .push(value);
    url.path()[1..].to_owned()
}

/// An incremental hasher for one `sources` entry.
#[derive(Debug, Clone)]
pub enum Hasher {
    Md5(Md5),
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(hashtype: HashType) -> Hasher {
        match hashtype {
            HashType::Md5 => Hasher::Md5(Md5::new()),
            HashType::Sha256 => Hasher::Sha256(Sha256::new()),
            HashType::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(hasher) => hasher.update(bytes),
            Hasher::Sha256(hasher) => hasher.update(bytes),
            Hasher::Sha512(hasher) => hasher.update(bytes),
        }
    }

    /// Lowercase hex digest.
    pub fn finish(self) -> String {
        match self {
            Hasher::Md5(hasher) => hex::encode(hasher.finalize()),
            Hasher::Sha256(hasher) => hex::encode(hasher.finalize()),
            Hasher::Sha512(hasher) => hex::encode(hasher.finalize()),
        }
    }
}

/// Compares a downloaded file's digest with the `sources` file.
pub fn verify(entry: &SourceEntry, actual_hex: &str) -> Result<(), SourceError> {
    if actual_hex.eq_ignore_ascii_case(&entry.hash) {
        Ok(())
    } else {
        Err(SourceError::ChecksumMismatch {
            name: entry.name.clone(),
            hashtype: entry.hashtype.name().to_owned(),
            expected: entry.hash.clone(),
            actual: actual_hex.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

    fn sha512(bytes: &[u8]) -> String {
        let mut hasher = Hasher::new(HashType::Sha512);
        hasher.update(bytes);
        hasher.finish()
    }

    #[test]
    fn git_urls() {
        let allowed = vec![
            "file:///srv/git/".to_owned(),
            "https://src.example.org/container".to_owned(),
        ];
        let table = [
            ("file:///srv/git/httpd.git", true),
            ("file:///srv/git/container/httpd", true),
            ("https://src.example.org/container/httpd.git", true),
            ("https://src.example.org/containerx/httpd.git", false),
            ("file:///srv/git/../etc/passwd", false),
            ("file:///srv/gitx/httpd.git", false),
            ("https://evil.example.com/httpd.git", false),
            ("file:///srv/git/a b", false),
            ("-uhttps://x", false),
            ("", false),
        ];
        for (url, ok) in table {
            assert_eq!(check_git_url(url, &allowed).is_ok(), ok, "{url}");
        }
        let error = check_git_url("https://evil.example.com/x", &allowed).unwrap_err();
        assert!(error.to_string().contains("file:///srv/git/"), "{error}");
    }

    #[test]
    fn commits() {
        assert!(check_commit(&"a".repeat(40)).is_ok());
        for bad in ["abc", "--upload-pack=x", &"g".repeat(40), ""] {
            assert!(check_commit(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn repo_urls() {
        let table = [
            ("http://127.0.0.1:8000/x.repo", &[][..], true),
            ("https://repos.example.org/f41.repo", &[][..], true),
            ("file:///etc/passwd", &[][..], false),
            ("ftp://x/y.repo", &[][..], false),
            ("not a url", &[][..], false),
            (
                "https://repos.example.org/f41.repo",
                &["https://repos.example.org/".to_owned()][..],
                true,
            ),
            (
                "https://other.example.org/f41.repo",
                &["https://repos.example.org/".to_owned()][..],
                false,
            ),
        ];
        for (url, allowed, ok) in table {
            assert_eq!(check_repo_url(url, allowed).is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn sources_both_forms() {
        let hash = sha512(b"payload");
        let text = format!(
            "SHA512 (app-1.0.tar.gz) = {hash}\n\n{MD5}  old-style.tgz\nSHA256 (odd) = name) = {}\n",
            "AB".repeat(32)
        );
        let entries = parse_sources(&text).unwrap();
        assert_eq!(
            entries,
            vec![
                SourceEntry {
                    name: "app-1.0.tar.gz".into(),
                    hashtype: HashType::Sha512,
                    hash
                },
                SourceEntry {
                    name: "old-style.tgz".into(),
                    hashtype: HashType::Md5,
                    hash: MD5.into()
                },
                SourceEntry {
                    name: "odd) = name".into(),
                    hashtype: HashType::Sha256,
                    hash: "ab".repeat(32)
                },
            ]
        );
        assert!(parse_sources("").unwrap().is_empty());
    }

    #[test]
    fn sources_refused() {
        let table = [
            (format!("{MD5}  ../etc/passwd"), "'/'"),
            (format!("{MD5}  /etc/passwd"), "'/'"),
            (format!("{MD5}  .."), "'..'"),
            (format!("SHA512 (a/b) = {}", "0".repeat(128)), "'/'"),
            ("SHA512 (a) = 1234".to_owned(), "not a sha512"),
            (format!("WHIRLPOOL (a) = {MD5}"), "unknown hash type"),
            (MD5.to_owned(), "expected"),
            (
                format!("{MD5}  a\n{MD5}  b\n{MD5}  a\n"),
                "names \"a\" twice",
            ),
        ];
        for (text, needle) in table {
            let error = parse_sources(&text).unwrap_err().to_string();
            assert!(error.contains(needle), "{text}: {error}");
            assert!(!error.contains('\n'));
        }
    }

    #[test]
    fn sources_may_not_name_files_of_the_commit() {
        let entries = parse_sources(&format!("{MD5}  payload.tgz\n{MD5}  Dockerfile\n")).unwrap();
        let tracked: BTreeSet<String> =
            ["Dockerfile", "sources", "files"].map(str::to_owned).into();
        let error = check_not_tracked(&entries, &tracked).unwrap_err();
        assert_eq!(
            error,
            SourceError::TrackedName {
                name: "Dockerfile".into()
            }
        );
        assert!(
            error
                .to_string()
                .starts_with("sources file names \"Dockerfile\", which the commit itself holds"),
            "{error}"
        );
        assert!(check_not_tracked(&entries[..1], &tracked).is_ok());
        // Not in this commit, but read from the commit all the same.
        assert_eq!(
            check_not_tracked(&entries, &BTreeSet::new()).unwrap_err(),
            SourceError::ReservedName {
                name: "Dockerfile".into()
            }
        );
    }

    #[test]
    fn lookaside_layouts() {
        let entry = SourceEntry {
            name: "my file.tar.gz".into(),
            hashtype: HashType::Sha512,
            hash: "ab".repeat(64),
        };
        let fedora = lookaside_url(
            "https://src.example.org/repo/pkgs/{namespace}/{repo}/{filename}/{hashtype}/{hash}/{filename}",
            "container",
            "httpd",
            &entry,
        )
        .unwrap();
        assert_eq!(
            fedora,
            format!(
                "https://src.example.org/repo/pkgs/container/httpd/my%20file.tar.gz/sha512/{}/my%20file.tar.gz",
                entry.hash
            )
        );
        let legacy = lookaside_url(
            "http://127.0.0.1:81/pkgs/{repo}/{filename}/{hash}/{filename}",
            "container",
            "httpd",
            &entry,
        )
        .unwrap();
        assert_eq!(
            legacy,
            format!(
                "http://127.0.0.1:81/pkgs/httpd/my%20file.tar.gz/{}/my%20file.tar.gz",
                entry.hash
            )
        );
        assert!(lookaside_url("http://x/{repo}", "", "r", &entry).is_err());
    }

    #[test]
    fn checksums() {
        let entry = SourceEntry {
            name: "a".into(),
            hashtype: HashType::Sha512,
            hash: sha512(b"good"),
        };
        assert!(verify(&entry, &sha512(b"good")).is_ok());
        let error = verify(&entry, &sha512(b"evil")).unwrap_err().to_string();
        assert!(error.starts_with("checksum mismatch for a"), "{error}");
        let mut md5 = Hasher::new(HashType::Md5);
        md5.update(b"");
        assert_eq!(md5.finish(), MD5);
    }
}
