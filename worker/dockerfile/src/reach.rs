//! What a Dockerfile makes the builder fetch besides its build context: images named by a
//! builder flag (`COPY --from=<image>`, `RUN --mount=…,from=<image>`) and remote `ADD`
//! sources — in the Dockerfile itself and in a parent image's ONBUILD triggers, which the
//! builder runs right after that parent's FROM.
//!
//! A flag names a build stage, not an image, when its value is the name of an earlier stage
//! (case-insensitive) or a stage number; anything else is an image the builder would pull.
//! An `ADD` source is remote when it reads as a URL (`scheme://…`) or a git address
//! (`git@…`) once the builder has substituted its variables.

use crate::dockerfile::{Dockerfile, Stage};
use crate::error::ParseError;
use crate::shell::{self, Lookup};
use crate::syntax::{self, Instruction, Keyword};
use std::collections::BTreeMap;
use std::ops::Range;

/// The flag through which an instruction names an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFlag {
    /// `COPY --from=<image>`.
    CopyFrom,
    /// `RUN --mount=…,from=<image>`.
    MountFrom,
}

impl ImageFlag {
    /// As a packager writes it: `COPY --from` or `RUN --mount from`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFlag::CopyFrom => "COPY --from",
            ImageFlag::MountFrom => "RUN --mount from",
        }
    }
}

impl std::fmt::Display for ImageFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An image a builder flag names (not a build stage): the builder would pull it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagImage {
    pub flag: ImageFlag,
    /// Index of the stage the instruction runs in.
    pub stage: usize,
    /// 1-based line of the instruction (for a trigger: its position among the triggers).
    pub line: usize,
    /// The image as written in the flag, quotes removed: the key of
    /// [`crate::RewritePlan::pins`].
    pub written: String,
    /// After substitution of the ARGs declared before the first FROM (a trigger's value is
    /// taken as written).
    pub resolved: String,
    /// The instruction's logical line.
    pub instruction: String,
    /// The flag word in the source, quotes included (empty for a trigger).
    pub(crate) span: Range<usize>,
    /// The flag word, quotes removed (`--from=…`, `--mount=…`).
    pub(crate) word: String,
}

/// An `ADD` source the builder would download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSource {
    /// Index of the stage the instruction runs in.
    pub stage: usize,
    /// 1-based line of the instruction (for a trigger: its position among the triggers).
    pub line: usize,
    /// The source word as written.
    pub written: String,
    /// After substitution, as the builder would fetch it.
    pub resolved: String,
    /// The instruction's logical line.
    pub instruction: String,
}

/// Everything a set of instructions would make the builder fetch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    pub images: Vec<FlagImage>,
    pub sources: Vec<RemoteSource>,
}

impl Dockerfile {
    /// The images that `COPY --from` and `RUN --mount=…,from=` name (build stages left
    /// out), in order. ONBUILD lines are not among them: they run in other builds.
    pub fn flag_images(&self) -> Vec<FlagImage> {
        let meta = self.meta_env();
        let escape = self.escape();
        let expand = |value: &str| {
            shell::process_word(value, escape, &meta)
                .map(|expanded| expanded.value)
                .unwrap_or_else(|_| value.to_owned())
        };
        self.instructions()
            .iter()
            .filter_map(|instruction| instruction.stage.map(|stage| (instruction, stage)))
            .flat_map(|(instruction, stage)| {
                flag_images_of(instruction, stage, &self.stages()[..stage], &expand)
            })
            .collect()
    }

    /// The `ADD` sources that are URLs once the builder has substituted its variables.
    /// `parent_envs` holds the config `Env` (`KEY=value`) of each parent image, keyed by the
    /// FROM reference as written; a stage whose parent is missing there sees no
    /// environment from it.
    pub fn remote_sources(&self, parent_envs: &BTreeMap<String, Vec<String>>) -> Vec<RemoteSource> {
        let escape = self.escape();
        let mut sources = Vec::new();
        for stage in 0..self.stages().len() {
            let root = &self.stages()[self.root_stage(stage)];
            let env = env_map(parent_envs.get(&root.image).map_or(&[][..], Vec::as_slice));
            // `parse` has evaluated every stage, so the walk cannot fail here.
            let _ = self.walk(stage, &env, &mut |instruction, state| {
                if instruction.keyword == Keyword::Add {
                    sources.extend(remote_sources_of(instruction, stage, escape, state));
                }
            });
        }
        sources
    }

    /// What the ONBUILD `triggers` of the parent image of `stage` would fetch. The builder
    /// runs them right after that stage's FROM, with the parent's environment
    /// (`parent_env`, `KEY=value`), before the stage has run anything of its own.
    pub fn trigger_reach(
        &self,
        stage: usize,
        triggers: &[String],
        parent_env: &[String],
    ) -> Result<Reach, ParseError> {
        let lines = syntax::read(&triggers.join("\n"))?;
        let env = env_map(parent_env);
        let as_written = |value: &str| value.to_owned();
        let mut reach = Reach::default();
        for instruction in &lines.instructions {
            let mut images =
                flag_images_of(instruction, stage, &self.stages()[..stage], &as_written);
            for image in &mut images {
                image.span = 0..0;
            }
            reach.images.extend(images);
            if instruction.keyword == Keyword::Add {
                reach
                    .sources
                    .extend(remote_sources_of(instruction, stage, lines.escape, &env));
            }
        }
        Ok(reach)
    }

    /// The ARGs before the first FROM with their defaults, as the builder holds them for
    /// FROM (a later declaration without a default unsets the name).
    fn meta_env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for (name, value) in self.meta_args() {
            match value {
                Some(value) => env.insert(name.clone(), value.clone()),
                None => env.remove(name),
            };
        }
        env
    }
}

/// The images `instruction`'s flags name, `before` being the stages built before it.
fn flag_images_of(
    instruction: &Instruction,
    stage: usize,
    before: &[Stage],
    expand: &dyn Fn(&str) -> String,
) -> Vec<FlagImage> {
    let mut images = Vec::new();
    for (word, span) in instruction.flags.iter().zip(&instruction.flag_spans) {
        let named: Vec<(ImageFlag, String)> = match instruction.keyword {
            Keyword::Copy => word
                .strip_prefix("--from=")
                .map(|value| (ImageFlag::CopyFrom, value.to_owned()))
                .into_iter()
                .collect(),
            Keyword::Run => word
                .strip_prefix("--mount=")
                .map(mount_fields)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|field| {
                    let (key, value) = field.split_once('=')?;
                    key.trim()
                        .eq_ignore_ascii_case("from")
                        .then(|| (ImageFlag::MountFrom, value.to_owned()))
                })
                .collect(),
            _ => Vec::new(),
        };
        for (flag, value) in named {
            let resolved = expand(&value);
            if names_stage(&resolved, before) {
                continue;
            }
            images.push(FlagImage {
                flag,
                stage,
                line: instruction.line,
                written: value,
                resolved,
                instruction: instruction.text.clone(),
                span: instruction.source_range(span.clone()),
                word: word.clone(),
            });
        }
    }
    images
}

/// A flag value that the builder reads as a build stage: the name of an earlier stage
/// (stage names are lower-cased), a stage number, or nothing at all (an error, no pull).
fn names_stage(value: &str, before: &[Stage]) -> bool {
    let lower = value.to_lowercase();
    value.is_empty()
        || value.bytes().all(|b| b.is_ascii_digit())
        || before
            .iter()
            .any(|stage| stage.alias.as_deref() == Some(lower.as_str()))
}

/// The comma-separated fields of a `--mount` value, CSV quotes removed (BuildKit reads it
/// with Go's encoding/csv). An unbalanced quote runs to the end rather than failing: the
/// check must see every `from=` the builder might.
pub(crate) fn mount_fields(spec: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

/// The remote sources of an ADD, its words substituted from `env`.
fn remote_sources_of(
    instruction: &Instruction,
    stage: usize,
    escape: char,
    env: &dyn Lookup,
) -> Vec<RemoteSource> {
    let words: Vec<String> = match &instruction.exec_form {
        Some(words) => words.clone(),
        None => syntax::split_separators(&instruction.args)
            .into_iter()
            .map(|(_, word)| word.to_owned())
            .collect(),
    };
    let Some((_destination, sources)) = words.split_last() else {
        return Vec::new();
    };
    let options = shell::Options {
        unset_required_is_empty: true,
        ..shell::Options::default()
    };
    sources
        .iter()
        .filter_map(|word| {
            let resolved = shell::process_word_with(word, escape, env, options)
                .map(|expanded| expanded.value)
                .unwrap_or_else(|_| word.clone());
            is_remote_source(&resolved).then(|| RemoteSource {
                stage,
                line: instruction.line,
                written: word.clone(),
                resolved,
                instruction: instruction.text.clone(),
            })
        })
        .collect()
}

/// `KEY=value` strings as a lookup table (a string without `=` sets an empty value).
fn env_map(pairs: &[String]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (pair.clone(), String::new()),
        })
        .collect()
}

/// Whether the builder would download `source` rather than read it from the context: a URL
/// of any scheme (the classic builder fetches http and https, BuildKit git too) or a git
/// address. Case does not matter: refusing `HTTP://…` costs nothing.
pub fn is_remote_source(source: &str) -> bool {
    let lower = source.to_ascii_lowercase();
    if lower.starts_with("git@") {
        return true;
    }
    let Some((scheme, _)) = lower.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
}
