//! The OSBS rewrite of a parsed Dockerfile: parent images (and the images `COPY --from` and
//! `RUN --mount from=` name) pinned by digest, yum repo files copied in and removed per stage,
//! the Dockerfile itself and the injected labels added to the final stage. Every byte not
//! named here stays as it was.
//!
//! Where the additions go:
//! - right after each FROM whose stage is built on a real image (directly or through earlier
//!   stages, so not on `scratch`): `COPY <repo files> /etc/yum.repos.d/` — before any USER of
//!   the stage; COPY writes files as root whatever the user is;
//! - right after the last instruction of each such stage (before the blank lines and comments
//!   that lead to the next FROM): `RUN rm -f /etc/yum.repos.d/<repo files>`, wrapped in
//!   `USER root` … `USER <previous>` when the stage runs as another user at that point;
//! - at the end of the final stage, after that removal: `COPY <buildinfo> /root/buildinfo/<buildinfo>`,
//!   then the one `LABEL` instruction, last so that its values win over any earlier LABEL.
//!   None of these instructions resets CMD or ENTRYPOINT, so those stay in effect.
//!   The worker sends the engine the rewrite without these two ([`rewrite_for_squash`]) and
//!   has the squash write their effect (the file, the labels); the whole rewrite is what is
//!   stored in the image. The final stage's own LABELs are left out of the engine's text too
//!   when their values are certain ([`Dockerfile::final_stage_label_steps`]), the squash
//!   writing them in order before the injected ones.
//!
//! Inserted lines use the line ending of the line they follow (the file's when that line has
//! none) and never a line continuation, so they read the same under either escape character.

use crate::dockerfile::{Dockerfile, LabelStep, UserSetting};
use crate::error::RewriteError;
use crate::labels::{label_value_as_stored, quote_label_value_with_escape};
use crate::reach::{FlagImage, ImageFlag};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What to change in the Dockerfile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewritePlan {
    /// Parent reference as written in the FROM (e.g. `127.0.0.1:5000/busybox:1` or `${BASE}`)
    /// or in a flag (`COPY --from=…`, `RUN --mount=…,from=…`) → pinned reference
    /// (`127.0.0.1:5000/busybox@sha256:…`). Every [`Dockerfile::parent_images`] and
    /// [`Dockerfile::flag_images`] entry must have a pin; a pin equal to the reference as
    /// written leaves that FROM or flag unchanged.
    pub pins: BTreeMap<String, String>,
    /// Appended as one `LABEL` instruction at the end of the final stage.
    pub labels: Vec<(String, String)>,
    /// File names in the build context root, copied into `/etc/yum.repos.d/` at the start of
    /// each stage built on a real image and removed at its end.
    pub repo_files: Vec<String>,
    /// `Dockerfile-<name>-<version>-<release>` (see [`buildinfo_name`]), copied to
    /// `/root/buildinfo/` in the final stage.
    pub buildinfo_dockerfile: Option<String>,
}

/// Where repo files go in the image.
const REPO_DIR: &str = "/etc/yum.repos.d/";
/// Where the Dockerfile goes in the image.
const BUILDINFO_DIR: &str = "/root/buildinfo/";

/// Rewrites `dockerfile` by `plan`, assuming every parent image runs as root (as an image
/// without a `User` in its config does). See [`rewrite_with_parent_users`] otherwise.
pub fn rewrite(dockerfile: &Dockerfile, plan: &RewritePlan) -> Result<String, RewriteError> {
    rewrite_with_parent_users(dockerfile, plan, &BTreeMap::new())
}

/// [`rewrite`], knowing the `User` of each parent image's config, keyed like
/// [`RewritePlan::pins`] by the reference as written: a stage that inherits a non-root user
/// from its parent image gets its repo removal wrapped in `USER root` … `USER <that user>`.
pub fn rewrite_with_parent_users(
    dockerfile: &Dockerfile,
    plan: &RewritePlan,
    parent_users: &BTreeMap<String, String>,
) -> Result<String, RewriteError> {
    check_plan(dockerfile, plan)?;
    rewrite_text(dockerfile, plan, parent_users, true, &[])
}

/// A rewrite whose buildinfo COPY and injected LABEL (and, when they can be, the final
/// stage's own LABELs) are left to the squash (issue 13: each would be a classic-builder
/// step, a container created and committed, while the squash writes a new layer and a new
/// config anyway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// Sent to the engine: the rewrite without the buildinfo COPY, the injected LABEL and
    /// the final stage's LABELs of [`Rewritten::own_label_instructions`].
    pub for_engine: String,
    /// The whole rewrite, as [`rewrite_with_parent_users`] returns it: the Dockerfile stored
    /// in the image (`/root/buildinfo/<name>`) and kept for Koji, the same bytes as when the
    /// builder ran those two instructions.
    pub stored: String,
    /// The labels the squash sets, in order (a later one of the same name wins): those of
    /// the final stage's own LABELs left out of `for_engine`, as the builder would store
    /// them, then the injected labels as the builder reads the LABEL back (values through
    /// [`label_value_as_stored`]).
    pub labels: Vec<(String, String)>,
    /// The final stage's own LABELs left out of `for_engine` (`LABEL <arguments>`, for the
    /// image's history), in order; empty when the builder runs them.
    pub own_label_instructions: Vec<String>,
    /// The LABEL instruction as written in `stored` (for the image's history).
    pub label_instruction: Option<String>,
    /// The buildinfo COPY as written in `stored` (for the image's history).
    pub buildinfo_instruction: Option<String>,
}

/// [`rewrite_with_parent_users`] split between the builder and the squash: see [`Rewritten`].
/// `final_env`: the environment (`KEY=value`) of the image the final stage is built on, for
/// its LABELs' values.
pub fn rewrite_for_squash(
    dockerfile: &Dockerfile,
    plan: &RewritePlan,
    parent_users: &BTreeMap<String, String>,
    final_env: &[String],
) -> Result<Rewritten, RewriteError> {
    check_plan(dockerfile, plan)?;
    let escape = dockerfile.escape();
    let own = dockerfile.final_stage_label_steps(final_env);
    Ok(Rewritten {
        for_engine: rewrite_text(dockerfile, plan, parent_users, false, &own)?,
        stored: rewrite_text(dockerfile, plan, parent_users, true, &[])?,
        labels: own
            .iter()
            .flat_map(|step| step.labels.iter().cloned())
            .chain(
                plan.labels
                    .iter()
                    .map(|(name, value)| (name.clone(), label_value_as_stored(value))),
            )
            .collect(),
        own_label_instructions: own.into_iter().map(|step| step.created_by).collect(),
        label_instruction: label_instruction(plan, escape),
        buildinfo_instruction: buildinfo_instruction(plan),
    })
}

/// `COPY <buildinfo> /root/buildinfo/<buildinfo>`, when planned.
fn buildinfo_instruction(plan: &RewritePlan) -> Option<String> {
    let name = plan.buildinfo_dockerfile.as_ref()?;
    Some(format!("COPY {name} {BUILDINFO_DIR}{name}"))
}

/// The one `LABEL` of the injected labels, when there are any.
fn label_instruction(plan: &RewritePlan, escape: char) -> Option<String> {
    if plan.labels.is_empty() {
        return None;
    }
    let pairs: Vec<String> = plan
        .labels
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                label_name(name, escape),
                quote_label_value_with_escape(value, escape)
            )
        })
        .collect();
    Some(format!("LABEL {}", pairs.join(" ")))
}

/// The rewrite, checked plan assumed; the buildinfo COPY and the LABEL only
/// `with_final_additions`; the instructions of `left_out` removed (their whole span: the
/// keyword to the end of its last line).
fn rewrite_text(
    dockerfile: &Dockerfile,
    plan: &RewritePlan,
    parent_users: &BTreeMap<String, String>,
    with_final_additions: bool,
    left_out: &[LabelStep],
) -> Result<String, RewriteError> {
    let source = dockerfile.source();
    let escape = dockerfile.escape();
    let instructions = dockerfile.instructions();
    let stages = dockerfile.stages();
    // Image tokens to replace: (position, length, pin).
    let mut replacements: Vec<(usize, usize, String)> = Vec::new();
    // Lines to insert at a position, in the order planned.
    let mut insertions: BTreeMap<usize, Vec<String>> = BTreeMap::new();

    for stage in stages {
        if stage.base_stage.is_none() && !stage.is_scratch {
            let pin = &plan.pins[&stage.image];
            if *pin != stage.image {
                replacements.push((stage.image_span.start, stage.image_span.len(), pin.clone()));
            }
        }
        let root = &stages[dockerfile.root_stage(stage.index)];
        let with_repos = !plan.repo_files.is_empty() && !root.is_scratch;
        let is_final = stage.index + 1 == stages.len();
        let from = &instructions[stage.instructions.start];
        let last = &instructions[stage.instructions.end - 1];

        if with_repos {
            let copy = format!("COPY {} {REPO_DIR}", plan.repo_files.join(" "));
            insertions.entry(from.span.end).or_default().push(copy);
        }
        let mut closing = Vec::new();
        if with_repos {
            let remove = format!(
                "RUN rm -f {}",
                plan.repo_files
                    .iter()
                    .map(|name| format!("{REPO_DIR}{name}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let user = match dockerfile.user_at_end(stage.index) {
                Some(user) => Some(user),
                None => parent_users.get(&root.image).map(|value| UserSetting {
                    value: value.clone(),
                    written: quote_word(value, escape),
                    uncertain: false,
                }),
            };
            match user.filter(|user| user.uncertain || !is_root(&user.value)) {
                Some(user) => {
                    closing.push("USER root".to_owned());
                    closing.push(remove);
                    closing.push(format!("USER {}", restore_user(&user, escape)));
                }
                None => closing.push(remove),
            }
        }
        if is_final && with_final_additions {
            closing.extend(buildinfo_instruction(plan));
            closing.extend(label_instruction(plan, escape));
        }
        if !closing.is_empty() {
            insertions.entry(last.span.end).or_default().extend(closing);
        }
    }

    for step in left_out {
        let span = &instructions[step.instruction].span;
        replacements.push((span.start, span.len(), String::new()));
    }

    for image in dockerfile.flag_images() {
        let pin = &plan.pins[&image.written];
        if *pin != image.written {
            let start = image.span.start;
            replacements.push((start, image.span.len(), pinned_flag(&image, pin, escape)?));
        }
    }

    // (position, insertions before replacements, bytes to remove, text)
    let mut edits: Vec<(usize, u8, usize, String)> = insertions
        .into_iter()
        .map(|(at, lines)| (at, 0, 0, lines_after(source, at, dockerfile, &lines)))
        .chain(
            replacements
                .into_iter()
                .map(|(at, len, pin)| (at, 1, len, pin)),
        )
        .collect();
    edits.sort_by_key(|&(at, kind, _, _)| (at, kind));
    let mut out = String::with_capacity(source.len() + 512);
    let mut copied = 0;
    for (at, _, remove, text) in edits {
        out.push_str(&source[copied..at]);
        out.push_str(&text);
        copied = at + remove;
    }
    out.push_str(&source[copied..]);
    Ok(out)
}

fn check_plan(dockerfile: &Dockerfile, plan: &RewritePlan) -> Result<(), RewriteError> {
    let from_lines = dockerfile
        .parent_images()
        .into_iter()
        .map(|parent| (parent.written, parent.line));
    let flag_lines = dockerfile
        .flag_images()
        .into_iter()
        .map(|image| (image.written, image.line));
    for (written, line) in from_lines.chain(flag_lines) {
        let Some(pin) = plan.pins.get(&written) else {
            return Err(RewriteError::MissingPin {
                reference: written,
                line,
            });
        };
        // A pin equal to the reference as written leaves the FROM as it is.
        let plain = *pin == written
            || !pin.is_empty()
                && pin
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._:/@-".contains(c));
        if !plain {
            return Err(RewriteError::BadPin {
                reference: written,
                pin: pin.clone(),
            });
        }
    }
    for name in &plan.repo_files {
        if !plain_file_name(name, "._+-") {
            return Err(RewriteError::BadRepoFileName { name: name.clone() });
        }
    }
    if let Some(name) = &plan.buildinfo_dockerfile
        && !plain_file_name(name, "._+~-")
    {
        return Err(RewriteError::BadBuildinfoName { name: name.clone() });
    }
    for (name, _) in &plan.labels {
        if name.is_empty() || name.contains(['=', '\n', '\r']) {
            return Err(RewriteError::BadLabelName { name: name.clone() });
        }
    }
    Ok(())
}

/// The flag word of `image` naming `pin` instead. A `--mount` is written back field by
/// field, which only works when no field needs quoting.
fn pinned_flag(image: &FlagImage, pin: &str, escape: char) -> Result<String, RewriteError> {
    match image.flag {
        ImageFlag::CopyFrom => Ok(format!("--from={pin}")),
        ImageFlag::MountFrom => {
            let spec = image.word.strip_prefix("--mount=").unwrap_or_default();
            let fields: Vec<String> = crate::reach::mount_fields(spec)
                .into_iter()
                .map(|field| match field.split_once('=') {
                    Some((key, _)) if key.trim().eq_ignore_ascii_case("from") => {
                        format!("{key}={pin}")
                    }
                    _ => field,
                })
                .collect();
            let needs_quotes = fields.iter().any(|field| {
                field
                    .chars()
                    .any(|c| c.is_whitespace() || c == escape || ",\"'".contains(c))
            });
            if needs_quotes {
                return Err(RewriteError::UnpinnableMount { line: image.line });
            }
            Ok(format!("--mount={}", fields.join(",")))
        }
    }
}

/// A name that needs no quoting anywhere in a Dockerfile and cannot be read as a flag.
fn plain_file_name(name: &str, allowed: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || allowed.contains(c))
}

/// `lines`, each ended with the line ending of the line before `at` (starting a new line
/// first when that line has none, at the end of the file).
fn lines_after(source: &str, at: usize, dockerfile: &Dockerfile, lines: &[String]) -> String {
    let before = &source[..at];
    let (ending, lead) = if before.ends_with("\r\n") {
        ("\r\n", "")
    } else if before.ends_with('\n') {
        ("\n", "")
    } else {
        (dockerfile.line_ending(), dockerfile.line_ending())
    };
    let mut text = lead.to_owned();
    for line in lines {
        text.push_str(line);
        text.push_str(ending);
    }
    text
}

fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or_default();
    matches!(name, "" | "root" | "0")
}

/// The argument of the `USER` that restores `user`: its value, or — when the value depends on
/// variables the Dockerfile does not set — the arguments as written.
fn restore_user(user: &UserSetting, escape: char) -> String {
    if user.uncertain {
        user.written.clone()
    } else {
        quote_word(&user.value, escape)
    }
}

/// `value` bare when it is plain, else double-quoted.
fn quote_word(value: &str, escape: char) -> String {
    // A word starting with `--` at the head of an instruction is read as a builder flag
    // (`LABEL --x=1` fails with a missing argument), so a leading `-` is quoted too.
    let plain = !value.is_empty()
        && !value.starts_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:/-".contains(c));
    if plain {
        value.to_owned()
    } else {
        quote_label_value_with_escape(value, escape)
    }
}

fn label_name(name: &str, escape: char) -> String {
    quote_word(name, escape)
}

/// The name of a fetched yum repo file: `<base>-<first 5 hex of sha256(url)>.repo`, where
/// `<base>` is the URL's last path segment without `.repo`, reduced to letters, digits, `.`,
/// `_`, `+` and `-` (anything else becomes `_`), `repo` when nothing is left.
pub fn yum_repo_file_name(url: &str) -> String {
    let digest = hex::encode(Sha256::digest(url.as_bytes()));
    let without_query = url.split(['?', '#']).next().unwrap_or_default();
    let path = match without_query.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, path)| path),
        None => without_query,
    };
    let segment = path.rsplit('/').next().unwrap_or_default();
    let segment = percent_decode(segment);
    let segment = segment.strip_suffix(".repo").unwrap_or(&segment);
    let base: String = segment
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = base.trim_start_matches(['.', '-']);
    let base: String = base.chars().take(100).collect();
    let base = if base.is_empty() {
        "repo"
    } else {
        base.as_str()
    };
    format!("{base}-{}.repo", &digest[..5])
}

/// `%XX` decoding of a URL path segment (invalid sequences stay as written).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = segment.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `Dockerfile-<name>-<version>-<release>`, a `/` in the name becoming `-`.
pub fn buildinfo_name(name: &str, version: &str, release: &str) -> String {
    format!("Dockerfile-{}-{version}-{release}", name.replace('/', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yum_repo_file_names() {
        let sha5 = |url: &str| hex::encode(Sha256::digest(url.as_bytes()))[..5].to_owned();
        let cases: &[(&str, &str)] = &[
            ("http://127.0.0.1:8000/repos/fedora.repo", "fedora"),
            (
                "https://h/x/updates-testing.repo?ref=main#top",
                "updates-testing",
            ),
            ("http://h/dir/", "repo"),
            ("http://h", "repo"),
            ("http://h/a%20b.repo", "a_b"),
            ("http://h/../..", ".."),
            ("http://h/$(rm -rf).repo", "__rm_-rf_"),
            ("http://h/plain", "plain"),
            ("http://h/.hidden.repo", "hidden"),
        ];
        for (url, base) in cases {
            let base = if *base == ".." { "repo" } else { base };
            assert_eq!(
                yum_repo_file_name(url),
                format!("{base}-{}.repo", sha5(url)),
                "{url}"
            );
        }
        // The hash is of the URL as given: two repos with one file name do not collide.
        assert_ne!(
            yum_repo_file_name("http://a/fedora.repo"),
            yum_repo_file_name("http://b/fedora.repo")
        );
        // `printf %s http://127.0.0.1:8000/repos/fedora.repo | sha256sum` starts with 932d9.
        assert_eq!(
            yum_repo_file_name("http://127.0.0.1:8000/repos/fedora.repo"),
            "fedora-932d9.repo"
        );
    }

    #[test]
    fn buildinfo_names() {
        assert_eq!(
            buildinfo_name("fedora/httpd", "2.4", "3"),
            "Dockerfile-fedora-httpd-2.4-3"
        );
        assert_eq!(
            buildinfo_name("busybox", "1", "1.fc41"),
            "Dockerfile-busybox-1-1.fc41"
        );
    }

    #[test]
    fn root_users() {
        for (user, root) in [
            ("", true),
            ("root", true),
            ("0", true),
            ("root:wheel", true),
            ("0:0", true),
            ("1001", false),
            ("app:root", false),
            ("rootless", false),
        ] {
            assert_eq!(is_root(user), root, "{user:?}");
        }
    }
}
