//! The parsed Dockerfile: build stages, parent images, and what the builder would compute for
//! each stage (ENV, ARG, LABEL and USER, with `$VAR` substituted as Docker does), given the
//! build arguments the build passes (OSBS passes the platform ARGs a Dockerfile declares).

use crate::error::{ParseError, ParseErrorKind};
use crate::shell::{self, Lookup};
use crate::syntax::{self, Directive, Instruction, Keyword};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// A parsed Dockerfile. Holds the source, so a rewrite can keep every byte it does not change.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    source: String,
    escape: char,
    directives: Vec<Directive>,
    instructions: Vec<Instruction>,
    stages: Vec<Stage>,
    meta_args: Vec<(String, Option<String>)>,
    build_args: BTreeMap<String, String>,
    line_ending: &'static str,
}

/// One build stage (`FROM … [AS name]` and the instructions up to the next FROM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// 0-based position among the stages.
    pub index: usize,
    /// The `AS` name, lower-cased as Docker stores it.
    pub alias: Option<String>,
    /// The image token of the FROM as written (`${BASE}:${TAG:-latest}`).
    pub image: String,
    /// The image token after quote removal and substitution of the ARGs declared before the
    /// first FROM (a build argument of the same name over the default, as the builder does).
    pub resolved: String,
    /// `--platform=…` as written.
    pub platform: Option<String>,
    /// `FROM scratch`.
    pub is_scratch: bool,
    /// The earlier stage this FROM names (Docker matches stage names case-insensitively; a
    /// number is an image name, not a stage index, for FROM).
    pub base_stage: Option<usize>,
    /// 1-based line of the FROM.
    pub line: usize,
    /// Indexes into [`Dockerfile::instructions`]: the FROM and everything up to the next FROM.
    pub instructions: Range<usize>,
    /// Source bytes of the image token, for the rewrite.
    pub(crate) image_span: Range<usize>,
}

/// A FROM that names a real image (not `scratch`, not an earlier stage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentImage {
    /// Index of the stage this FROM starts.
    pub stage: usize,
    /// The reference as written in the FROM (the key of [`crate::RewritePlan::pins`]).
    pub written: String,
    /// The reference after ARG substitution: what the builder would pull.
    pub resolved: String,
    /// `--platform=…` as written.
    pub platform: Option<String>,
    /// 1-based line of the FROM.
    pub line: usize,
}

/// A USER instruction in effect, as the builder evaluates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserSetting {
    /// After substitution.
    pub value: String,
    /// The arguments as written.
    pub written: String,
    /// The value refers to a variable the Dockerfile does not set (maybe from the parent
    /// image's environment), so `value` may be wrong.
    pub uncertain: bool,
}

/// What the builder knows at the end of a stage.
#[derive(Debug, Clone, Default)]
pub(crate) struct StageState {
    env: BTreeMap<String, String>,
    args: BTreeMap<String, Option<String>>,
    pub labels: BTreeMap<String, String>,
    pub user: Option<UserSetting>,
}

impl Lookup for StageState {
    /// ENV wins over ARG, as in the builder.
    fn lookup(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .or_else(|| self.args.get(name).and_then(|value| value.as_deref()))
    }
}

impl Dockerfile {
    /// Parses `text` the way the Docker builder does, keeping every source position, with no
    /// build arguments.
    pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
        Dockerfile::parse_with_build_args(text, &BTreeMap::new())
    }

    /// [`Dockerfile::parse`] for a build passed `build_args` (`--build-arg NAME=value`): an
    /// ARG the Dockerfile declares takes the build argument's value over its default, in
    /// FROM lines (ARGs before the first FROM) and in its stage, as the builder does. A build
    /// argument no ARG declares changes nothing.
    pub fn parse_with_build_args(
        text: &str,
        build_args: &BTreeMap<String, String>,
    ) -> Result<Dockerfile, ParseError> {
        let lines = syntax::read(text)?;
        let escape = lines.escape;
        let mut instructions = lines.instructions;
        let mut stages: Vec<Stage> = Vec::new();
        let mut meta_args: Vec<(String, Option<String>)> = Vec::new();
        let mut meta_env: BTreeMap<String, String> = BTreeMap::new();

        for (index, instruction) in instructions.iter_mut().enumerate() {
            let at = |kind| ParseError {
                line: instruction.line,
                kind,
            };
            match instruction.keyword {
                Keyword::From => {
                    let stage =
                        from_stage(instruction, index, &stages, &meta_env, escape).map_err(at)?;
                    if let Some(last) = stages.last_mut() {
                        last.instructions.end = index;
                    }
                    stages.push(stage);
                }
                Keyword::Arg if stages.is_empty() => {
                    for (name, value) in &instruction.pairs {
                        let name = name.clone();
                        let value = match (build_args.get(&name), value) {
                            (Some(given), _) => Some(given.clone()),
                            (None, Some(raw)) => Some(
                                shell::process_word(raw, escape, &meta_env)
                                    .map_err(|error| at(bad_word(raw, error)))?
                                    .value,
                            ),
                            (None, None) => None,
                        };
                        match &value {
                            Some(value) => meta_env.insert(name.clone(), value.clone()),
                            None => meta_env.remove(&name),
                        };
                        meta_args.push((name, value));
                    }
                }
                keyword if stages.is_empty() => {
                    return Err(at(ParseErrorKind::BeforeFrom {
                        keyword: keyword.to_string(),
                    }));
                }
                _ => {}
            }
            instruction.stage = stages.len().checked_sub(1);
        }
        let Some(last) = stages.last_mut() else {
            return Err(ParseError {
                line: text.lines().count().max(1),
                kind: ParseErrorKind::NoFrom,
            });
        };
        last.instructions.end = instructions.len();

        let dockerfile = Dockerfile {
            source: text.to_owned(),
            escape,
            directives: lines.directives,
            instructions,
            stages,
            meta_args,
            build_args: build_args.clone(),
            line_ending: lines.line_ending,
        };
        // Evaluate every stage once, so that a word Docker would fail on fails here too.
        for stage in 0..dockerfile.stages.len() {
            dockerfile.evaluate(stage, &BTreeMap::new())?;
        }
        Ok(dockerfile)
    }

    /// The text that was parsed.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The escape character in effect (`\` or `` ` ``).
    pub fn escape(&self) -> char {
        self.escape
    }

    /// The `# syntax=` directive, if any.
    pub fn syntax(&self) -> Option<&str> {
        self.directive("syntax")
    }

    /// The parser directives at the top of the file.
    pub fn directives(&self) -> &[Directive] {
        &self.directives
    }

    fn directive(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }

    /// Every instruction in order (ONBUILD triggers stay inside their ONBUILD).
    pub fn instructions(&self) -> &[Instruction] {
        &self.instructions
    }

    /// The build stages in order; the last one is the image.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The ARGs declared before the first FROM, with their defaults after substitution.
    pub fn meta_args(&self) -> &[(String, Option<String>)] {
        &self.meta_args
    }

    /// The build arguments this Dockerfile was parsed with.
    pub fn build_args(&self) -> &BTreeMap<String, String> {
        &self.build_args
    }

    /// The names the Dockerfile declares with `ARG`, before the first FROM or in any stage
    /// (names after substitution, as the builder reads them): the build arguments the
    /// builder consumes. The classic builder warns about a build argument outside these
    /// ("One or more build-args [...] were not consumed"), so a build passes no other.
    pub fn declared_args(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self
            .meta_args
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        for stage in 0..self.stages.len() {
            // `parse` has evaluated every stage, so the walk cannot fail here.
            let _ = self.walk(stage, &BTreeMap::new(), &mut |instruction, state| {
                if instruction.keyword == Keyword::Arg {
                    for (name, _) in &instruction.pairs {
                        let options = shell::Options {
                            unset_required_is_empty: true,
                            ..shell::Options::default()
                        };
                        let name = shell::process_word_with(name, self.escape, state, options)
                            .map_or_else(|_| name.clone(), |expanded| expanded.value);
                        names.insert(name);
                    }
                }
            });
        }
        names
    }

    /// The line ending of the file (that of its first line; `"\n"` for a one-line file).
    pub fn line_ending(&self) -> &'static str {
        self.line_ending
    }

    /// The FROMs that name a real image, in order.
    pub fn parent_images(&self) -> Vec<ParentImage> {
        self.stages
            .iter()
            .filter(|stage| !stage.is_scratch && stage.base_stage.is_none())
            .map(|stage| ParentImage {
                stage: stage.index,
                written: stage.image.clone(),
                resolved: stage.resolved.clone(),
                platform: stage.platform.clone(),
                line: stage.line,
            })
            .collect()
    }

    /// The stage whose FROM names a real image or `scratch` at the root of `stage`'s chain of
    /// `FROM <earlier stage>`.
    pub fn root_stage(&self, stage: usize) -> usize {
        let mut current = stage;
        while let Some(base) = self.stages[current].base_stage {
            current = base;
        }
        current
    }

    /// Labels the final stage sets (its own LABELs and those of the stages it is built
    /// `FROM`), as Docker stores them: quotes removed, escapes applied, `$VAR` substituted
    /// from the stage's ENV and ARG. Variables from the parent image's environment read as
    /// unset here; see [`Dockerfile::final_stage_labels_with_env`].
    pub fn final_stage_labels(&self) -> BTreeMap<String, String> {
        self.final_stage_labels_with_env(&[])
    }

    /// [`Dockerfile::final_stage_labels`] with the parent image's environment (its config
    /// `Env`, `KEY=value` strings) known, for labels such as `name="$FGC/httpd"`.
    pub fn final_stage_labels_with_env(&self, parent_env: &[String]) -> BTreeMap<String, String> {
        self.evaluate(self.stages.len() - 1, &env_map(parent_env))
            .map(|state| state.labels)
            .unwrap_or_default()
    }

    /// The final stage's own `LABEL` instructions, each with the pairs the builder would
    /// store (names and values substituted from what is in scope just before it, the parent
    /// image's environment `parent_env` included), when the squash can write them instead of
    /// the builder (issue 13: a LABEL is a classic-builder step, a container created and
    /// committed, and no later instruction can see a label). Empty when it cannot: see
    /// [`labels_can_be_left_to_the_squash`].
    ///
    /// ARGs read as the builder reads them: the build arguments the Dockerfile was parsed
    /// with ([`Dockerfile::parse_with_build_args`]) over their defaults.
    pub fn final_stage_label_steps(&self, parent_env: &[String]) -> Vec<LabelStep> {
        let stage = self.stages.len() - 1;
        let escape = self.escape;
        let first = self.stages[stage].instructions.start + 1;
        let (mut steps, mut certain, mut others, mut at) = (Vec::new(), true, 0, first);
        let walked = self.walk(stage, &env_map(parent_env), &mut |instruction, state| {
            let index = at;
            at += 1;
            if instruction.keyword != Keyword::Label {
                others += 1;
                return;
            }
            let options = shell::Options {
                unset_required_is_empty: true,
                ..shell::Options::default()
            };
            let mut labels = Vec::with_capacity(instruction.pairs.len());
            for (name, value) in &instruction.pairs {
                let value = value.as_deref().unwrap_or_default();
                let name = shell::process_word_with(name, escape, state, options);
                let value = shell::process_word_with(value, escape, state, options);
                match (name, value) {
                    (Ok(name), Ok(value)) => {
                        certain &= !name.used_unset && !value.used_unset;
                        labels.push((name.value, value.value));
                    }
                    _ => certain = false,
                }
            }
            steps.push(LabelStep {
                instruction: index,
                created_by: format!("LABEL {}", instruction.args),
                labels,
            });
        });
        if walked.is_err() || !labels_can_be_left_to_the_squash(certain, steps.len(), others) {
            return Vec::new();
        }
        steps
    }

    /// The USER in effect at the end of each stage (after substitution); None when no USER
    /// applies, so the parent image's user stays in effect.
    pub fn stage_users(&self) -> Vec<Option<String>> {
        (0..self.stages.len())
            .map(|stage| self.user_at_end(stage).map(|user| user.value))
            .collect()
    }

    pub(crate) fn user_at_end(&self, stage: usize) -> Option<UserSetting> {
        self.evaluate(stage, &BTreeMap::new())
            .ok()
            .and_then(|state| state.user)
    }

    /// Runs the stage's ENV, ARG, LABEL and USER instructions (and those of the stages it is
    /// built FROM) like the builder. `parent_env` is the environment of the image at the root
    /// of the chain. Only a syntax error can fail, and `parse` has already seen every word.
    pub(crate) fn evaluate(
        &self,
        stage: usize,
        parent_env: &BTreeMap<String, String>,
    ) -> Result<StageState, ParseError> {
        self.walk(stage, parent_env, &mut |_, _| {})
    }

    /// [`Dockerfile::evaluate`], showing `visit` each instruction of `stage` (not those of
    /// the stages it is built on) with what the builder knows just before it.
    pub(crate) fn walk(
        &self,
        stage: usize,
        parent_env: &BTreeMap<String, String>,
        visit: &mut dyn FnMut(&Instruction, &StageState),
    ) -> Result<StageState, ParseError> {
        let info = &self.stages[stage];
        let mut state = match info.base_stage {
            Some(base) => {
                let mut state = self.evaluate(base, parent_env)?;
                // ARGs end with their stage; ENV, LABEL and USER are in the image.
                state.args.clear();
                state
            }
            None if info.is_scratch => StageState::default(),
            None => StageState {
                env: parent_env.clone(),
                ..StageState::default()
            },
        };
        let meta: BTreeMap<&str, Option<&str>> = self
            .meta_args
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref()))
            .collect();
        for instruction in &self.instructions[info.instructions.start + 1..info.instructions.end] {
            visit(instruction, &state);
            let at = |kind| ParseError {
                line: instruction.line,
                kind,
            };
            let escape = self.escape;
            let expand = |state: &StageState, word: &str| -> Result<shell::Expanded, ParseError> {
                let options = shell::Options {
                    unset_required_is_empty: true,
                    ..shell::Options::default()
                };
                shell::process_word_with(word, escape, state, options)
                    .map_err(|error| at(bad_word(word, error)))
            };
            match instruction.keyword {
                Keyword::Arg => {
                    for (name, value) in &instruction.pairs {
                        let name = expand(&state, name)?.value;
                        // The builder's order: the build argument, the ARG's default, the
                        // default of the ARG of that name before the first FROM.
                        let value = match (self.build_args.get(&name), value) {
                            (Some(given), _) => Some(given.clone()),
                            (None, Some(raw)) => Some(expand(&state, raw)?.value),
                            (None, None) => meta
                                .get(name.as_str())
                                .copied()
                                .flatten()
                                .map(str::to_owned),
                        };
                        state.args.insert(name, value);
                    }
                }
                Keyword::Env | Keyword::Label => {
                    // All pairs see the environment from before the instruction.
                    let mut expanded = Vec::with_capacity(instruction.pairs.len());
                    for (name, value) in &instruction.pairs {
                        let value = value.as_deref().unwrap_or_default();
                        expanded.push((expand(&state, name)?.value, expand(&state, value)?.value));
                    }
                    let target = if instruction.keyword == Keyword::Env {
                        &mut state.env
                    } else {
                        &mut state.labels
                    };
                    target.extend(expanded);
                }
                Keyword::User => {
                    let expanded = expand(&state, &instruction.args)?;
                    state.user = Some(UserSetting {
                        value: expanded.value,
                        written: instruction.args.clone(),
                        uncertain: expanded.used_unset,
                    });
                }
                _ => {}
            }
        }
        Ok(state)
    }
}

/// One `LABEL` of the final stage, as the builder would store it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelStep {
    /// Its index in [`Dockerfile::instructions`].
    pub instruction: usize,
    /// `LABEL <arguments as written>`, continuations joined (for the image's history).
    pub created_by: String,
    /// (name, value) pairs after substitution, in order: a later one of a name wins.
    pub labels: Vec<(String, String)>,
}

/// Whether the final stage's own LABELs can be written by the squash instead of the builder:
/// only when every name and value is known for certain (`certain`: none refers to a
/// variable nothing sets — a build argument the worker passes, or a parent's environment it
/// did not read — which the builder could see otherwise), there is at least one
/// (`labels`), and the stage keeps another instruction for the engine to run (`others`), so
/// the image built is never the parent image itself.
pub fn labels_can_be_left_to_the_squash(certain: bool, labels: usize, others: usize) -> bool {
    certain && labels > 0 && others > 0
}

/// `KEY=value` strings (an image config's `Env`) as a map; a string without `=` is a name
/// set to empty.
fn env_map(pairs: &[String]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (pair.clone(), String::new()),
        })
        .collect()
}

fn bad_word(text: &str, error: shell::ShellError) -> ParseErrorKind {
    ParseErrorKind::BadWord {
        text: text.to_owned(),
        message: error.message,
    }
}

/// `^[a-z][a-z0-9-_\.]*$`, Docker's rule for stage names.
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn from_stage(
    instruction: &Instruction,
    index: usize,
    stages: &[Stage],
    meta_env: &BTreeMap<String, String>,
    escape: char,
) -> Result<Stage, ParseErrorKind> {
    let mut platform = None;
    for flag in &instruction.flags {
        match flag.strip_prefix("--platform=") {
            Some(value) => platform = Some(value.to_owned()),
            None => {
                return Err(ParseErrorKind::BadFlag {
                    keyword: "FROM".to_owned(),
                    flag: flag.clone(),
                });
            }
        }
    }
    let words = syntax::split_separators(&instruction.args);
    let alias = match words.as_slice() {
        [] => return Err(ParseErrorKind::FromWithoutImage),
        [_] => None,
        [_, (_, as_word), (_, name)] if as_word.eq_ignore_ascii_case("as") => {
            let name = name.to_lowercase();
            if !valid_stage_name(&name) {
                return Err(ParseErrorKind::BadStageName { name });
            }
            if stages
                .iter()
                .any(|stage| stage.alias.as_ref() == Some(&name))
            {
                return Err(ParseErrorKind::DuplicateStageName { name });
            }
            Some(name)
        }
        _ => {
            return Err(ParseErrorKind::FromArguments {
                args: instruction.args.clone(),
            });
        }
    };
    let (image_at, image) = words[0];
    let resolved = shell::process_word(image, escape, meta_env)
        .map_err(|error| bad_word(image, error))?
        .value;
    if resolved.is_empty() {
        return Err(ParseErrorKind::EmptyImage {
            written: image.to_owned(),
        });
    }
    let lower = resolved.to_lowercase();
    let base_stage = stages
        .iter()
        .find(|stage| stage.alias.as_deref() == Some(lower.as_str()))
        .map(|stage| stage.index);
    let start = instruction.args_offset + image_at;
    Ok(Stage {
        index: stages.len(),
        alias,
        image: image.to_owned(),
        is_scratch: base_stage.is_none() && resolved == "scratch",
        resolved,
        platform,
        base_stage,
        line: instruction.line,
        instructions: index..index + 1,
        image_span: instruction.source_range(start..start + image.len()),
    })
}
