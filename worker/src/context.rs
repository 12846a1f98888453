//! The build context's rules, pure: which names of the checkout it leaves out (git's own
//! files, the files the worker adds in their place, and what the commit's `.dockerignore`
//! excludes) and how a file the worker adds (yum repo files, the buildinfo Dockerfile, the
//! rewritten `Dockerfile`) is archived. Writing the tar, through the checkout's directory handles, is
//! the context adapter (`adapters/context.rs`).

use regex::bytes::Regex;
use std::collections::BTreeMap;

/// Whether the context leaves out the checkout's entry `name` (in the top directory when
/// `at_top`): git's own files, and the files the worker adds in its place.
pub fn leaves_out(at_top: bool, name: &[u8], extra: &BTreeMap<String, Vec<u8>>) -> bool {
    at_top && (name == b".git" || extra.contains_key(String::from_utf8_lossy(name).as_ref()))
}

/// A commit's `.dockerignore`, read as the Docker CLI reads it (moby's patternmatcher):
/// the engine's API takes the context as it is sent, so the client leaves out what the file
/// excludes. Written here because no maintained crate has Docker's semantics (gitignore's
/// differ: a bare name there matches at any depth, here only at the top).
///
/// Lines are trimmed; `#` lines and empty ones are skipped; `!` makes an exception; a
/// pattern is cleaned like a path (`./a//b/` → `a/b`, a leading `/` dropped) and matched
/// against the whole slash-separated path from the context's top: `*` and `?` within one
/// name, `**` across any number of names, `[...]` a class, `\` escapes. A path is excluded
/// when the last pattern that matches it, or one of its parent directories, excludes it.
#[derive(Debug, Default)]
pub struct DockerIgnore {
    patterns: Vec<(Regex, bool)>,
}

impl DockerIgnore {
    /// The patterns of `text`; a pattern that makes no valid expression is an error naming
    /// it (the CLI refuses such a file too).
    pub fn parse(text: &[u8]) -> Result<DockerIgnore, String> {
        let text = String::from_utf8_lossy(text);
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(pattern);
            if cleaned.is_empty() {
                continue;
            }
            let regex = Regex::new(&pattern_regex(&cleaned)).map_err(|_| {
                format!(".dockerignore: {line:?} is not a valid pattern; fix or remove the line")
            })?;
            patterns.push((regex, exception));
        }
        Ok(DockerIgnore { patterns })
    }

    /// Whether the file has exceptions (`!` lines): an excluded directory must then still
    /// be walked, since a name below it may be let back in.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|(_, exception)| *exception)
    }

    /// Whether `path` (slash-separated, from the context's top) is left out.
    pub fn excludes(&self, path: &[u8]) -> bool {
        let parents: Vec<&[u8]> = path
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b'/')
            .map(|(at, _)| &path[..at])
            .collect();
        let mut excluded = false;
        for (regex, exception) in &self.patterns {
            // Only a pattern that can change the verdict is worth matching.
            if *exception != excluded {
                continue;
            }
            let matches =
                regex.is_match(path) || parents.iter().any(|parent| regex.is_match(parent));
            if matches {
                excluded = !exception;
            }
        }
        excluded
    }
}

/// `pattern` cleaned as Go's `filepath.Clean` cleans it, without a leading `/`.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !pattern.starts_with('/') {
                    parts.push("..");
                }
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// The anchored expression of a cleaned pattern.
fn pattern_regex(pattern: &str) -> String {
    let mut regex = String::from("^");
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(ch) = chars.next() {
        match ch {
            '[' | ']' => {
                in_class = ch == '[';
                regex.push(ch);
            }
            // A range or a negation inside a class keeps its meaning.
            '-' if in_class => regex.push('-'),
            '*' | '?' if in_class => regex.push_str(&regex::escape(&ch.to_string())),
            '^' if regex.ends_with('[') => regex.push('^'),
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                regex.push_str(if chars.peek().is_none() {
                    ".*"
                } else {
                    "(.*/)?"
                });
            }
            '*' => regex.push_str("[^/]*"),
            '?' => regex.push_str("[^/]"),
            '\\' => match chars.next() {
                Some(next) => regex.push_str(&regex::escape(&next.to_string())),
                None => regex.push_str("\\\\"),
            },
            ch => regex.push_str(&regex::escape(&ch.to_string())),
        }
    }
    regex.push('$');
    regex
}

/// The tar header of a file the worker adds: plain, readable, of `size` bytes, dated 0 so
/// that the same inputs make the same context.
pub fn added_file_header(size: usize) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(size as u64);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_context_leaves_out() {
        let extra: BTreeMap<String, Vec<u8>> = [("Dockerfile".to_owned(), Vec::new())]
            .into_iter()
            .collect();
        let table: [(bool, &[u8], bool); 6] = [
            (true, b".git", true),
            (false, b".git", false),
            (true, b"Dockerfile", true),
            (false, b"Dockerfile", false),
            (true, b"app.py", false),
            (true, b".gitignore", false),
        ];
        for (at_top, name, left_out) in table {
            assert_eq!(
                leaves_out(at_top, name, &extra),
                left_out,
                "{} at top {at_top}",
                String::from_utf8_lossy(name)
            );
        }
    }

    #[test]
    fn dockerignore_as_the_docker_cli_reads_it() {
        // (file, path, excluded)
        let table: [(&str, &str, bool); 25] = [
            ("*.log", "a.log", true),
            ("*.log", "dir/a.log", false),
            ("**/*.log", "dir/sub/a.log", true),
            ("**/*.log", "a.log", true),
            ("secret", "secret", true),
            ("secret", "secret/key", true),
            ("secret", "dir/secret", false),
            ("/secret/", "secret/key", true),
            ("./build//out", "build/out/x.o", true),
            ("build\n!build/keep", "build/keep", false),
            ("build\n!build/keep", "build/drop", true),
            ("*\n!src", "src/main.c", false),
            ("*\n!src", "README", true),
            ("!keep\nkeep", "keep", true),
            ("# comment\n\n  spaced  ", "spaced", true),
            ("# comment", "# comment", false),
            ("file?.txt", "file1.txt", true),
            ("file?.txt", "file/.txt", false),
            ("[ab].c", "b.c", true),
            ("[^ab].c", "a.c", false),
            ("a.c", "abc", false),
            ("docs/**", "docs/a/b", true),
            ("docs/**", "docs", false),
            ("\\*", "*", true),
            ("[*]x", "*x", true),
        ];
        for (file, path, excluded) in table {
            let ignore = DockerIgnore::parse(file.as_bytes()).unwrap();
            assert_eq!(
                ignore.excludes(path.as_bytes()),
                excluded,
                "{file:?} on {path:?}"
            );
        }
        assert!(DockerIgnore::parse(b"a\n!b").unwrap().has_exceptions());
        assert!(!DockerIgnore::parse(b"a").unwrap().has_exceptions());
        assert!(DockerIgnore::parse(b"[z-a]").unwrap_err().contains("[z-a]"));
    }

    #[test]
    fn added_files_are_plain_and_undated() {
        let header = added_file_header(12);
        assert_eq!(header.size().unwrap(), 12);
        assert_eq!(header.mode().unwrap(), 0o644);
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!(header.entry_type(), tar::EntryType::Regular);
    }
}
