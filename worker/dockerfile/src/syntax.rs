//! The line-level reader: physical lines → parser directives and instructions with their exact
//! source spans, following BuildKit's `frontend/dockerfile/parser` (parser.go, directives.go,
//! line_parsers.go) rule by rule: comments and blank lines, line continuations with the active
//! escape character (comment and blank lines inside a continuation are skipped), heredocs,
//! JSON (exec) and shell forms, builder flags, ONBUILD triggers.

use crate::error::{ParseError, ParseErrorKind};
use crate::shell;
use std::collections::BTreeMap;
use std::ops::Range;

/// A Dockerfile instruction keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Keyword {
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
}

impl Keyword {
    const ALL: [Keyword; 18] = [
        Keyword::Add,
        Keyword::Arg,
        Keyword::Cmd,
        Keyword::Copy,
        Keyword::Entrypoint,
        Keyword::Env,
        Keyword::Expose,
        Keyword::From,
        Keyword::Healthcheck,
        Keyword::Label,
        Keyword::Maintainer,
        Keyword::Onbuild,
        Keyword::Run,
        Keyword::Shell,
        Keyword::Stopsignal,
        Keyword::User,
        Keyword::Volume,
        Keyword::Workdir,
    ];

    /// The keyword in upper case, as the Dockerfile reference writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Add => "ADD",
            Keyword::Arg => "ARG",
            Keyword::Cmd => "CMD",
            Keyword::Copy => "COPY",
            Keyword::Entrypoint => "ENTRYPOINT",
            Keyword::Env => "ENV",
            Keyword::Expose => "EXPOSE",
            Keyword::From => "FROM",
            Keyword::Healthcheck => "HEALTHCHECK",
            Keyword::Label => "LABEL",
            Keyword::Maintainer => "MAINTAINER",
            Keyword::Onbuild => "ONBUILD",
            Keyword::Run => "RUN",
            Keyword::Shell => "SHELL",
            Keyword::Stopsignal => "STOPSIGNAL",
            Keyword::User => "USER",
            Keyword::Volume => "VOLUME",
            Keyword::Workdir => "WORKDIR",
        }
    }

    /// Case-insensitive, as Docker reads keywords.
    pub fn parse(word: &str) -> Option<Keyword> {
        Keyword::ALL
            .into_iter()
            .find(|keyword| keyword.as_str().eq_ignore_ascii_case(word))
    }

    fn takes_json(self) -> bool {
        matches!(
            self,
            Keyword::Add
                | Keyword::Copy
                | Keyword::Volume
                | Keyword::Cmd
                | Keyword::Entrypoint
                | Keyword::Run
                | Keyword::Shell
        )
    }

    fn takes_heredoc(self) -> bool {
        matches!(self, Keyword::Add | Keyword::Copy | Keyword::Run)
    }
}

impl std::fmt::Display for Keyword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A heredoc attached to RUN, COPY or ADD (`<<EOF`, `<<-EOF`, `<<"EOF"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator, quotes removed.
    pub name: String,
    /// `<<-`: leading tabs are stripped from the body and the terminator.
    pub chomp: bool,
    /// False when the marker was quoted: the body is taken literally.
    pub expand: bool,
    /// The body as written, every line with its line ending, without the terminator line.
    pub content: String,
    /// Byte range of the body in the source.
    pub body: Range<usize>,
}

/// One instruction as the builder sees it, with where it sits in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub keyword: Keyword,
    /// 1-based line of the keyword.
    pub line: usize,
    /// 1-based last line (continuations and heredoc terminators included).
    pub end_line: usize,
    /// Bytes of the source from the keyword to the end of the last line, line ending included
    /// (heredoc bodies included). `&source[span]` is the instruction verbatim.
    pub span: Range<usize>,
    /// The logical line the builder parses: continuations joined, comment and blank lines
    /// inside them dropped, heredoc bodies not included.
    pub text: String,
    /// Builder flags (`--platform=…`, `--from=…`, `--chown=…`), quotes removed.
    pub flags: Vec<String>,
    /// Where each of `flags` is in `text`, quotes included.
    pub(crate) flag_spans: Vec<Range<usize>>,
    /// Everything after the keyword and flags, trimmed (the raw arguments).
    pub args: String,
    /// The arguments of the JSON (exec) form, when it is used.
    pub exec_form: Option<Vec<String>>,
    /// For ONBUILD: the trigger's keyword.
    pub trigger: Option<Keyword>,
    pub heredocs: Vec<Heredoc>,
    /// Stage index; None for an ARG before the first FROM.
    pub stage: Option<usize>,
    /// Where `args` starts in `text`.
    pub(crate) args_offset: usize,
    /// Maps `text` back to the source: (offset in text, offset in source, length).
    pub(crate) segments: Vec<(usize, usize, usize)>,
    /// LABEL and ENV: raw (name, value) pairs; ARG: raw names and defaults.
    pub(crate) pairs: Vec<(String, Option<String>)>,
}

impl Instruction {
    /// The source byte range of `text[range]`. A range crossing a line continuation covers
    /// the continuation too.
    pub(crate) fn source_range(&self, range: Range<usize>) -> Range<usize> {
        let locate = |offset: usize, end: bool| {
            for &(text_at, source_at, len) in &self.segments {
                let inside = if end {
                    offset > text_at && offset <= text_at + len
                } else {
                    offset >= text_at && offset < text_at + len
                };
                if inside {
                    return source_at + (offset - text_at);
                }
            }
            self.span.start
        };
        locate(range.start, false)..locate(range.end, true)
    }
}

/// A parser directive at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-case: `escape`, `syntax` or `check`.
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// The output of the line-level reader.
#[derive(Debug)]
pub(crate) struct Lines {
    pub escape: char,
    pub directives: Vec<Directive>,
    pub instructions: Vec<Instruction>,
    /// The line ending of the first line that has one (`"\n"` when none does).
    pub line_ending: &'static str,
}

#[derive(Debug, Clone, Copy)]
struct PhysicalLine {
    start: usize,
    /// End of the content: trailing `\r` and `\n` excluded.
    content_end: usize,
    /// After the line ending.
    end: usize,
}

fn physical_lines(source: &str) -> Vec<PhysicalLine> {
    let bytes = source.as_bytes();
    let mut lines = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        let end = match memchr_newline(&bytes[start..]) {
            Some(at) => start + at + 1,
            None => bytes.len(),
        };
        let mut content_end = end;
        while content_end > start && matches!(bytes[content_end - 1], b'\r' | b'\n') {
            content_end -= 1;
        }
        lines.push(PhysicalLine {
            start,
            content_end,
            end,
        });
        start = end;
    }
    lines
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

/// Go's `\s` in the directive regexp.
fn is_go_regex_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` from BuildKit's directives.go.
fn directive_match(token: &str) -> Option<(String, String)> {
    let rest = token
        .strip_prefix('#')?
        .trim_start_matches(is_go_regex_space);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, rest) = rest.split_at(name_len);
    let after_equals = rest
        .trim_start_matches(is_go_regex_space)
        .strip_prefix('=')?;
    let value = after_equals.trim_matches(is_go_regex_space);
    let value = if !value.is_empty() {
        value.to_owned()
    } else {
        // `(.+?)` must take one character even when only spaces follow the `=`.
        after_equals.chars().next()?.to_string()
    };
    Some((name.to_ascii_lowercase(), value))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// The line-continuation test of BuildKit: `([^E])E[ \t]*$|^E[ \t]*$` with E the escape
/// character. Returns the line without the continuation, and whether there was one.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape)
        && (before.is_empty() || !before.ends_with(escape))
    {
        return (before, true);
    }
    (line, false)
}

/// `[\t\v\f\r ]`, the separator Docker splits commands and FROM arguments on.
pub(crate) fn is_docker_separator(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Splits on runs of `[\t\v\f\r ]`, returning (offset, word) pairs.
pub(crate) fn split_separators(text: &str) -> Vec<(usize, &str)> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        if is_docker_separator(c) {
            if let Some(s) = start.take() {
                words.push((s, &text[s..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        words.push((s, &text[s..]));
    }
    words
}

/// A builder flag with quotes removed, and where it is in the line (quotes included).
type Flag = (String, Range<usize>);

/// BuildKit's `extractBuilderFlags`: leading `--words`. Returns the flags and the offset
/// where the rest of the line starts.
fn extract_builder_flags(line: &str, escape: char) -> (Vec<Flag>, usize) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let bytes = line.as_bytes();
    let escape = escape as u32;
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word: Vec<u8> = Vec::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0;
    let mut word_start = 0;
    let push = |words: &mut Vec<Flag>, word: &[u8], span: Range<usize>| {
        words.push((String::from_utf8_lossy(word).into_owned(), span));
    };
    while pos <= bytes.len() {
        let at_end = pos == bytes.len();
        let mut ch = if at_end { 0 } else { bytes[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if (ch as char).is_ascii_whitespace() || ch == 0x0b {
                pos += 1;
                continue;
            }
            if ch != b'-' || pos + 1 == bytes.len() || bytes[pos + 1] != b'-' {
                return (words, pos);
            }
            phase = Phase::Word;
            word_start = pos;
        }
        if at_end {
            if word != b"--" && (blank_ok || !word.is_empty()) {
                push(&mut words, &word, word_start..pos);
            }
            break;
        }
        if phase == Phase::Word {
            if (ch as char).is_ascii_whitespace() || ch == 0x0b {
                phase = Phase::Spaces;
                if word == b"--" {
                    return (words, pos);
                }
                if blank_ok || !word.is_empty() {
                    push(&mut words, &word, word_start..pos);
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if u32::from(ch) == escape {
                if pos + 1 == bytes.len() {
                    pos += 1;
                    continue;
                }
                word.push(ch);
                pos += 1;
                ch = bytes[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if u32::from(ch) == escape {
            if pos + 1 == bytes.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = bytes[pos];
        }
        word.push(ch);
        pos += 1;
    }
    (words, bytes.len())
}

/// An instruction line split into its parts (recursively for ONBUILD).
struct Parsed {
    keyword: Keyword,
    flags: Vec<String>,
    /// In the line given to `parse_instruction`.
    flag_spans: Vec<Range<usize>>,
    args: String,
    args_offset: usize,
    exec_form: Option<Vec<String>>,
    trigger: Option<Box<Parsed>>,
    pairs: Vec<(String, Option<String>)>,
}

impl Parsed {
    /// The instruction whose form decides about heredocs (the trigger of an ONBUILD).
    fn innermost(&self) -> &Parsed {
        match &self.trigger {
            Some(trigger) => trigger,
            None => self,
        }
    }
}

/// `newNodeFromLine` + the checks of BuildKit's instructions package that OSBS relies on.
fn parse_instruction(line: &str, escape: char) -> Result<Parsed, ParseErrorKind> {
    let leading = line.len() - line.trim_start().len();
    let trimmed = line.trim();
    let (command, rest_offset) = match trimmed.find(is_docker_separator) {
        Some(at) => {
            let after = &trimmed[at..];
            let skip = after.len() - after.trim_start_matches(is_docker_separator).len();
            (&trimmed[..at], at + skip)
        }
        None => (trimmed, trimmed.len()),
    };
    if command.is_empty() {
        return Err(ParseErrorKind::EmptyInstruction { escape });
    }
    let keyword = Keyword::parse(command).ok_or_else(|| ParseErrorKind::UnknownInstruction {
        word: command.to_owned(),
    })?;
    let rest = &trimmed[rest_offset..];
    let (flags, args_at) = extract_builder_flags(rest, escape);
    let rest_at = leading + rest_offset;
    let (flags, flag_spans) = flags
        .into_iter()
        .map(|(flag, span)| (flag, rest_at + span.start..rest_at + span.end))
        .unzip();
    let after_flags = &rest[args_at..];
    let args = after_flags.trim();
    let args_offset =
        leading + rest_offset + args_at + (after_flags.len() - after_flags.trim_start().len());

    let exec_form = if keyword.takes_json() {
        parse_json_array(args).map_err(|()| ParseErrorKind::JsonNotStrings {
            keyword: keyword.to_string(),
        })?
    } else {
        None
    };

    let trigger = if keyword == Keyword::Onbuild {
        if args.is_empty() {
            return Err(ParseErrorKind::MissingArgument {
                keyword: keyword.to_string(),
            });
        }
        let mut trigger = parse_instruction(args, escape)?;
        if matches!(
            trigger.keyword,
            Keyword::Onbuild | Keyword::From | Keyword::Maintainer
        ) {
            return Err(ParseErrorKind::BadOnbuildTrigger {
                trigger: trigger.keyword.to_string(),
            });
        }
        trigger.args_offset += args_offset;
        for span in &mut trigger.flag_spans {
            *span = span.start + args_offset..span.end + args_offset;
        }
        Some(Box::new(trigger))
    } else {
        None
    };

    let pairs = pairs_of(keyword, args, escape)?;
    Ok(Parsed {
        keyword,
        flags,
        flag_spans,
        args: args.to_owned(),
        args_offset,
        exec_form,
        trigger,
        pairs,
    })
}

/// Docker's `parseJSON`: `Ok(Some)` for a JSON array of strings, `Ok(None)` when the text is
/// not a JSON array (shell form), `Err` for a JSON array holding something else.
fn parse_json_array(args: &str) -> Result<Option<Vec<String>>, ()> {
    if !args.starts_with('[') {
        return Ok(None);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(args) else {
        return Ok(None);
    };
    values
        .into_iter()
        .map(|value| match value {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(()),
        })
        .collect::<Result<Vec<_>, ()>>()
        .map(Some)
}

/// The raw name/value pairs of LABEL, ENV and ARG (none for other instructions), with the
/// argument checks of the instructions OSBS reads.
fn pairs_of(
    keyword: Keyword,
    args: &str,
    escape: char,
) -> Result<Vec<(String, Option<String>)>, ParseErrorKind> {
    match keyword {
        Keyword::Label | Keyword::Env => Ok(name_value_pairs(keyword, args, escape)?
            .into_iter()
            .map(|(name, value)| (name, Some(value)))
            .collect()),
        Keyword::Arg | Keyword::User if args.is_empty() => Err(ParseErrorKind::MissingArgument {
            keyword: keyword.to_string(),
        }),
        Keyword::Arg => Ok(arg_pairs(args, escape)),
        _ => Ok(Vec::new()),
    }
}

/// Docker's `parseNameVal` for LABEL and ENV: raw (still quoted) name and value pairs, in
/// the `name=value ...` form or the old `name value` form.
fn name_value_pairs(
    keyword: Keyword,
    args: &str,
    escape: char,
) -> Result<Vec<(String, String)>, ParseErrorKind> {
    let words = shell::parse_words(args, escape);
    let Some(first) = words.first() else {
        return Err(ParseErrorKind::MissingArgument {
            keyword: keyword.to_string(),
        });
    };
    let pairs = if !first.contains('=') {
        let parts = split_separators(args);
        let Some(&(value_at, _)) = parts.get(1) else {
            return Err(ParseErrorKind::NameWithoutValue {
                keyword: keyword.to_string(),
                args: args.to_owned(),
            });
        };
        vec![(parts[0].1.to_owned(), args[value_at..].to_owned())]
    } else {
        words
            .iter()
            .map(|word| match word.split_once('=') {
                Some((name, value)) => Ok((name.to_owned(), value.to_owned())),
                None => Err(ParseErrorKind::MissingEquals {
                    keyword: keyword.to_string(),
                    word: word.clone(),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    if pairs.iter().any(|(name, _)| name.is_empty()) {
        return Err(ParseErrorKind::BlankName {
            keyword: keyword.to_string(),
        });
    }
    Ok(pairs)
}

/// Docker's ARG arguments: names with an optional raw default.
fn arg_pairs(args: &str, escape: char) -> Vec<(String, Option<String>)> {
    shell::parse_words(args, escape)
        .into_iter()
        .map(|word| match word.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (word, None),
        })
        .collect()
}

/// `^(\d*)<<(-?)([^<]*)$` + BuildKit's `heredocFromMatch`.
fn heredoc_marker(word: &str) -> Result<Option<(String, bool, bool)>, ParseErrorKind> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(rest) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let empty = BTreeMap::new();
    let lex = |raw_quotes| {
        shell::process_words(
            rest,
            '\\',
            &empty,
            shell::Options {
                raw_quotes,
                raw_escapes: false,
                skip_unset: true,
                ..shell::Options::default()
            },
        )
        .map_err(|error| ParseErrorKind::BadWord {
            text: word.to_owned(),
            message: error.message,
        })
    };
    let words = lex(false)?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = lex(true)?;
    let quotes = |s: &str| s.matches(['\'', '"']).count();
    let expand = raw.len() == 1 && quotes(&words[0]) == quotes(&raw[0]);
    Ok(Some((words[0].clone(), chomp, expand)))
}

fn heredoc_markers(line: &str) -> Result<Vec<(String, bool, bool)>, ParseErrorKind> {
    let empty = BTreeMap::new();
    let words = shell::process_words(
        line,
        '\\',
        &empty,
        shell::Options {
            raw_quotes: true,
            raw_escapes: true,
            skip_unset: true,
            ..shell::Options::default()
        },
    )
    // Docker ignores a lexing error here: such a line simply has no heredoc.
    .unwrap_or_default();
    let mut markers = Vec::new();
    for word in words {
        if let Some(marker) = heredoc_marker(&word)? {
            markers.push(marker);
        }
    }
    Ok(markers)
}

/// Reads the whole file into directives and instructions.
pub(crate) fn read(source: &str) -> Result<Lines, ParseError> {
    let lines = physical_lines(source);
    let line_ending = lines
        .iter()
        .find(|line| line.end > line.content_end)
        .map_or("\n", |line| {
            if source[line.content_end..line.end].starts_with("\r\n") {
                "\r\n"
            } else {
                "\n"
            }
        });
    let mut escape = '\\';
    let mut directives: Vec<Directive> = Vec::new();
    let mut directives_done = false;
    let mut instructions = Vec::new();
    let mut next = 0;
    while next < lines.len() {
        let physical = lines[next];
        let line_number = next + 1;
        let mut start = physical.start;
        if next == 0 && source[start..].starts_with('\u{feff}') {
            start += '\u{feff}'.len_utf8();
        }
        next += 1;
        let raw = &source[start.min(physical.content_end)..physical.content_end];
        let token = raw.trim_start();
        let token_start = physical.content_end - token.len();

        if !directives_done {
            match directive_match(token) {
                Some((name, value)) if ["escape", "syntax", "check"].contains(&name.as_str()) => {
                    if directives.iter().any(|d| d.name == name) {
                        return Err(ParseError {
                            line: line_number,
                            kind: ParseErrorKind::DuplicateDirective { name },
                        });
                    }
                    if name == "escape" {
                        escape = match value.as_str() {
                            "\\" => '\\',
                            "`" => '`',
                            _ => {
                                return Err(ParseError {
                                    line: line_number,
                                    kind: ParseErrorKind::BadEscapeDirective { value },
                                });
                            }
                        };
                    }
                    directives.push(Directive {
                        name,
                        value,
                        line: line_number,
                    });
                }
                _ => directives_done = true,
            }
        }
        if is_comment(token) {
            continue;
        }
        let (content, mut continued) = trim_continuation(token, escape);
        if !continued && content.is_empty() {
            continue;
        }
        let mut text = content.to_owned();
        let mut segments = vec![(0, token_start, content.len())];
        let mut end_line = line_number;
        while continued && next < lines.len() {
            let physical = lines[next];
            next += 1;
            end_line = next;
            let raw = &source[physical.start..physical.content_end];
            if is_comment(raw) || raw.trim_start().is_empty() {
                continue;
            }
            let (content, more) = trim_continuation(raw, escape);
            continued = more;
            segments.push((text.len(), physical.start, content.len()));
            text.push_str(content);
        }

        let at = |kind| ParseError {
            line: line_number,
            kind,
        };
        let parsed = parse_instruction(&text, escape).map_err(at)?;
        let mut heredocs = Vec::new();
        let form = parsed.innermost();
        if form.keyword.takes_heredoc() && form.exec_form.is_none() && text.contains("<<") {
            for (name, chomp, expand) in heredoc_markers(&text).map_err(at)? {
                let body_start = lines.get(next).map_or(source.len(), |line| line.start);
                let mut terminated = false;
                while next < lines.len() {
                    let physical = lines[next];
                    next += 1;
                    end_line = next;
                    let candidate = &source[physical.start..physical.content_end];
                    let candidate = if chomp {
                        candidate.trim_start_matches('\t')
                    } else {
                        candidate
                    };
                    if candidate == name {
                        let body = body_start..physical.start;
                        heredocs.push(Heredoc {
                            name: name.clone(),
                            chomp,
                            expand,
                            content: source[body.clone()].to_owned(),
                            body,
                        });
                        terminated = true;
                        break;
                    }
                }
                if !terminated {
                    return Err(at(ParseErrorKind::UnterminatedHeredoc { name }));
                }
            }
        }
        let span_end = lines[end_line - 1].end;
        instructions.push(Instruction {
            keyword: parsed.keyword,
            line: line_number,
            end_line,
            span: token_start..span_end,
            text,
            flags: parsed.flags,
            flag_spans: parsed.flag_spans,
            args: parsed.args,
            exec_form: parsed.exec_form,
            trigger: parsed.trigger.as_ref().map(|trigger| trigger.keyword),
            heredocs,
            stage: None,
            args_offset: parsed.args_offset,
            segments,
            pairs: parsed.pairs,
        });
    }
    Ok(Lines {
        escape,
        directives,
        instructions,
        line_ending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_rule() {
        let cases: &[(&str, char, (&str, bool))] = &[
            ("RUN a \\", '\\', ("RUN a ", true)),
            ("RUN a \\  \t", '\\', ("RUN a ", true)),
            ("\\", '\\', ("", true)),
            // An escaped escape character is not a continuation (seen on Docker 20.10).
            ("LABEL a=x\\\\", '\\', ("LABEL a=x\\\\", false)),
            ("RUN a `", '`', ("RUN a ", true)),
            ("RUN a \\", '`', ("RUN a \\", false)),
            ("RUN a", '\\', ("RUN a", false)),
        ];
        for (line, escape, expect) in cases {
            assert_eq!(trim_continuation(line, *escape), *expect, "{line:?}");
        }
    }

    #[test]
    fn directive_regexp() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("# escape=`", Some(("escape", "`"))),
            ("#escape = ` ", Some(("escape", "`"))),
            ("# ESCAPE=\\", Some(("escape", "\\"))),
            (
                "# syntax=docker/dockerfile:1",
                Some(("syntax", "docker/dockerfile:1")),
            ),
            ("# escape= ", Some(("escape", " "))),
            ("# escape=", None),
            ("# just a comment", None),
            ("#1x=y", None),
            ("FROM x", None),
        ];
        for (line, expect) in cases {
            let got = directive_match(line);
            let got = got.as_ref().map(|(n, v)| (n.as_str(), v.as_str()));
            assert_eq!(got, *expect, "{line:?}");
        }
    }

    #[test]
    fn builder_flags() {
        let cases: &[(&str, (&[&str], &str))] = &[
            (
                "--platform=linux/amd64 busybox AS b",
                (&["--platform=linux/amd64"], "busybox AS b"),
            ),
            ("busybox", (&[], "busybox")),
            (
                "--from=build --chown=1:1 a b",
                (&["--from=build", "--chown=1:1"], "a b"),
            ),
            (
                "--platform=\"linux/arm64\" x",
                (&["--platform=linux/arm64"], "x"),
            ),
            ("-- --notaflag", (&[], "--notaflag")),
            ("--platform=x", (&["--platform=x"], "")),
        ];
        for (line, (flags, rest)) in cases {
            let (got_flags, at) = extract_builder_flags(line, '\\');
            let names: Vec<&str> = got_flags.iter().map(|(flag, _)| flag.as_str()).collect();
            assert_eq!(names, *flags, "{line:?}");
            for (flag, span) in &got_flags {
                let quoted = &line[span.clone()];
                assert!(quoted.starts_with("--"), "{line:?}: {quoted:?}");
                assert_eq!(quoted.replace('"', ""), *flag, "{line:?}");
            }
            assert_eq!(line[at..].trim(), *rest, "{line:?}");
        }
    }

    #[test]
    fn heredoc_markers_table() {
        type Marker<'a> = (&'a str, bool, bool);
        let cases: &[(&str, &[Marker])] = &[
            ("RUN <<EOF", &[("EOF", false, true)]),
            ("RUN <<-EOT bash", &[("EOT", true, true)]),
            ("RUN <<\"EOF\"", &[("EOF", false, false)]),
            ("RUN <<'E'", &[("E", false, false)]),
            (
                "RUN cat <<A >a && cat <<B >b",
                &[("A", false, true), ("B", false, true)],
            ),
            ("COPY <<EOF /etc/x", &[("EOF", false, true)]),
            ("RUN 3<<X cat", &[("X", false, true)]),
            ("RUN echo \"<<EOF\"", &[]),
            ("RUN cat <<<word", &[]),
            ("RUN a<<EOF", &[]),
        ];
        for (line, expect) in cases {
            let got = heredoc_markers(line).expect("markers");
            let got: Vec<(&str, bool, bool)> =
                got.iter().map(|(n, c, e)| (n.as_str(), *c, *e)).collect();
            assert_eq!(got, *expect, "{line:?}");
        }
    }
}
