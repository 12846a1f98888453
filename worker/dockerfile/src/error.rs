//! The crate's errors: what failed, on which line or input, and what the packager should do.

/// A Dockerfile the builder would refuse (or that OSBS cannot read safely).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile line {line}: {kind}")]
pub struct ParseError {
    /// 1-based line where the offending instruction (or directive) starts.
    pub line: usize,
    pub kind: ParseErrorKind,
}

/// What is wrong, each with how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error(
        "the Dockerfile has no FROM instruction; start the build with `FROM <image>` (or `FROM scratch`)"
    )]
    NoFrom,
    #[error(
        "`{keyword}` comes before the first FROM, where only ARG is allowed; move it below `FROM <image>`"
    )]
    BeforeFrom { keyword: String },
    #[error(
        "unknown instruction `{word}`; check its spelling (instructions are ADD, ARG, CMD, COPY, ENTRYPOINT, ENV, EXPOSE, FROM, HEALTHCHECK, LABEL, MAINTAINER, ONBUILD, RUN, SHELL, STOPSIGNAL, USER, VOLUME, WORKDIR)"
    )]
    UnknownInstruction { word: String },
    #[error("the heredoc `<<{name}` is never closed; end it with a line holding only `{name}`")]
    UnterminatedHeredoc { name: String },
    #[error("invalid escape directive value `{value}`; use `# escape=\\` or `# escape=``")]
    BadEscapeDirective { value: String },
    #[error("the `{name}` parser directive appears twice; keep only the first")]
    DuplicateDirective { name: String },
    #[error("FROM names no image; write `FROM <image>[:tag] [AS <name>]`")]
    FromWithoutImage,
    #[error(
        "FROM takes an image and optionally `AS <name>`, not `{args}`; write `FROM <image> [AS <name>]`"
    )]
    FromArguments { args: String },
    #[error(
        "invalid build stage name `{name}`: it must start with a letter and hold only letters, digits, `-`, `_` and `.`"
    )]
    BadStageName { name: String },
    #[error("the build stage name `{name}` is used twice; give each stage its own name")]
    DuplicateStageName { name: String },
    #[error(
        "FROM `{written}` resolves to an empty image name; give the ARG it uses a default (`ARG NAME=value` before the first FROM)"
    )]
    EmptyImage { written: String },
    #[error(
        "unknown or malformed flag `{flag}` on {keyword}; FROM accepts only `--platform=<os/arch>`"
    )]
    BadFlag { keyword: String, flag: String },
    #[error("{keyword} needs an argument; see the Dockerfile reference for its form")]
    MissingArgument { keyword: String },
    #[error("`{keyword} {args}` has a name but no value; write `{keyword} name=value`")]
    NameWithoutValue { keyword: String, args: String },
    #[error("`{word}` has no `=`; write `{keyword} name=value [name=value ...]`")]
    MissingEquals { keyword: String, word: String },
    #[error("{keyword} has a blank name; write `{keyword} name=value`")]
    BlankName { keyword: String },
    #[error("the JSON (exec) form of {keyword} may hold only strings; quote every element")]
    JsonNotStrings { keyword: String },
    #[error("cannot read `{text}`: {message}; fix its quoting or its `${{...}}` expression")]
    BadWord { text: String, message: String },
    #[error("{trigger} cannot be an ONBUILD trigger; remove it from the ONBUILD line")]
    BadOnbuildTrigger { trigger: String },
    #[error("the line holds no instruction, only line continuations; remove the stray `{escape}`")]
    EmptyInstruction { escape: char },
}

/// A rewrite plan that does not fit the Dockerfile (a bug in the caller, or unsafe input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error(
        "no pinned reference for the parent image `{reference}` (FROM on line {line}); pin every parent image before rewriting"
    )]
    MissingPin { reference: String, line: usize },
    #[error(
        "the pinned reference `{pin}` for `{reference}` is not a plain image reference (registry/name[:tag]@sha256:digest); pin it by digest"
    )]
    BadPin { reference: String, pin: String },
    #[error(
        "cannot pin the image of the `RUN --mount` on line {line}: one of its fields needs quotes; write the mount without quoted fields"
    )]
    UnpinnableMount { line: usize },
    #[error(
        "the yum repo file name `{name}` is not a plain file name (letters, digits, `.`, `_`, `+`, `-`); name it with yum_repo_file_name()"
    )]
    BadRepoFileName { name: String },
    #[error(
        "the buildinfo file name `{name}` is not a plain file name (letters, digits, `.`, `_`, `+`, `~`, `-`); build it with buildinfo_name() from checked labels"
    )]
    BadBuildinfoName { name: String },
    #[error(
        "the label name {name:?} cannot be written in a Dockerfile (it is empty or holds `=` or a line break); rename it"
    )]
    BadLabelName { name: String },
}

/// Required labels missing from the final stage, or holding values Koji or the registry refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MissingLabels {
    #[error(
        "the Dockerfile's final stage lacks the required label(s) {}; add `LABEL name=... version=... com.redhat.component=...` to it",
        .missing.join(", ")
    )]
    Missing { missing: Vec<String> },
    #[error("label `{label}` is {value:?}, which {reason}; change the LABEL in the Dockerfile")]
    Invalid {
        label: String,
        value: String,
        reason: String,
    },
}

/// Every error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerfileError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Rewrite(#[from] RewriteError),
    #[error(transparent)]
    Labels(#[from] MissingLabels),
}
