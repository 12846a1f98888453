//! Docker's shell-word lexer: quotes, escapes and `$VAR` / `${VAR…}` substitution exactly as
//! the builder applies them to the arguments of FROM, ARG, ENV, LABEL and USER.
//!
//! Hand-written because no crate reproduces Docker's dialect (it is not POSIX sh: `\` only
//! escapes `"`, `$` and itself inside double quotes, the escape character may be a
//! backtick, words split after substitution). This follows BuildKit's
//! `frontend/dockerfile/shell/lex.go` function by function, so the two can be compared.

use std::collections::BTreeMap;

/// Where the lexer looks variables up.
pub(crate) trait Lookup {
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl Lookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// A word that failed to process (unbalanced quote, bad `${…}`), worded like Docker's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShellError {
    pub message: String,
}

impl ShellError {
    fn syntax(message: impl Into<String>) -> ShellError {
        ShellError {
            message: message.into(),
        }
    }
}

/// The result of processing one word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expanded {
    pub value: String,
    /// Some variable the word refers to was not set.
    pub used_unset: bool,
}

/// Processes `word` like Docker's `ProcessWord`: quotes removed, escapes applied, variables
/// substituted (unset ones become empty).
pub(crate) fn process_word(
    word: &str,
    escape: char,
    env: &dyn Lookup,
) -> Result<Expanded, ShellError> {
    process_word_with(word, escape, env, Options::default())
}

/// [`process_word`] with lexer switches.
pub(crate) fn process_word_with(
    word: &str,
    escape: char,
    env: &dyn Lookup,
    options: Options,
) -> Result<Expanded, ShellError> {
    let mut lexer = Lexer::new(word, escape, env, options);
    let (value, _) = lexer.process_stop_on(None, false)?;
    Ok(Expanded {
        value,
        used_unset: lexer.used_unset,
    })
}

/// Lexer switches, as in BuildKit's `Lex` struct.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    pub raw_quotes: bool,
    pub raw_escapes: bool,
    pub skip_unset: bool,
    /// `${VAR?…}` on an unset variable reads as empty instead of failing: the variable may
    /// come from an environment we do not know (the parent image's).
    pub unset_required_is_empty: bool,
}

/// Splits `word` into shell words like Docker's `ProcessWords` (used for heredoc markers).
pub(crate) fn process_words(
    word: &str,
    escape: char,
    env: &dyn Lookup,
    options: Options,
) -> Result<Vec<String>, ShellError> {
    let mut lexer = Lexer::new(word, escape, env, options);
    lexer.split = true;
    let raw_escapes = options.raw_escapes;
    let (_, words) = lexer.process_stop_on(None, raw_escapes)?;
    Ok(words)
}

/// Splits an instruction's arguments into words the way the Dockerfile parser does before
/// any processing (`parseWords` in BuildKit's line_parsers.go): quotes and escapes are kept,
/// whitespace outside quotes separates words.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // The quote character while inside quotes.
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut in_word = false;
    let mut chars = rest.chars().peekable();
    while let Some(ch) = chars.next() {
        match quote {
            None if !in_word && ch.is_whitespace() => {}
            None if ch.is_whitespace() => {
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                in_word = false;
                blank_ok = false;
            }
            None => {
                in_word = true;
                if ch == '\'' || ch == '"' {
                    quote = Some(ch);
                    blank_ok = true;
                }
                if ch == escape {
                    // An escape at the very end is dropped; otherwise it and the next
                    // character are kept as they are, even a quote.
                    let Some(next) = chars.next() else { break };
                    word.push(ch);
                    word.push(next);
                    continue;
                }
                word.push(ch);
            }
            Some(open) => {
                if ch == open {
                    quote = None;
                }
                // Nothing escapes inside single quotes.
                if ch == escape && open != '\'' {
                    let Some(next) = chars.next() else { break };
                    word.push(ch);
                    word.push(next);
                    continue;
                }
                word.push(ch);
            }
        }
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// Word splitting during processing (BuildKit's `wordsStruct`).
#[derive(Default)]
struct Words {
    /// Off for `process_word`, which needs no words: saves an allocation per character.
    enabled: bool,
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if !self.enabled {
            return;
        }
        if ch.is_whitespace() && self.in_word {
            if !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else if !ch.is_whitespace() {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        if !self.enabled {
            return;
        }
        self.buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        if !self.enabled {
            return;
        }
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        if !self.enabled {
            return;
        }
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

struct Lexer<'a> {
    text: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    /// Whether to split words (only `process_words` needs them).
    split: bool,
    escape: char,
    env: &'a dyn Lookup,
    options: Options,
    raw_escapes: bool,
    used_unset: bool,
}

impl<'a> Lexer<'a> {
    fn new(word: &'a str, escape: char, env: &'a dyn Lookup, options: Options) -> Lexer<'a> {
        Lexer {
            text: word,
            pos: 0,
            split: false,
            escape,
            env,
            options,
            raw_escapes: options.raw_escapes,
            used_unset: false,
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if let Some(c) = ch {
            self.pos += c.len_utf8();
        }
        ch
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        let value = self.env.lookup(name).map(str::to_owned);
        if value.is_none() {
            self.used_unset = true;
        }
        value
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ShellError> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let result = self.process_stop_on_inner(stop);
        self.raw_escapes = saved;
        result
    }

    fn process_stop_on_inner(
        &mut self,
        stop: Option<char>,
    ) -> Result<(String, Vec<String>), ShellError> {
        let mut result = String::new();
        let mut words = Words {
            enabled: self.split,
            ..Words::default()
        };
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '\'' => {
                    let value = self.process_single_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' => {
                    let value = self.process_double_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    self.next();
                    if ch == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // The escape character escapes the next one, except at the end.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(ShellError::syntax(format!(
                "unexpected end of statement while looking for matching {stop}"
            )));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Result<String, ShellError> {
        let mut result = String::new();
        let open = self.next();
        if self.options.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(ShellError::syntax(
                        "unexpected end of statement while looking for matching single-quote",
                    ));
                }
                Some('\'') => {
                    if self.options.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(ch) => result.push(ch),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, ShellError> {
        let mut result = String::new();
        let open = self.next();
        if self.options.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(ShellError::syntax(
                        "unexpected end of statement while looking for matching double-quote",
                    ));
                }
                Some('"') => {
                    self.next();
                    if self.options.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or_default();
                    if ch == self.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // An escape at the very end of the word is dropped.
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.escape => {
                                ch = next;
                                self.next();
                            }
                            // Any other escape stays as it is.
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, ShellError> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.options.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(ShellError::syntax("syntax error: missing '}'")),
            Some('{' | '}' | ':') => {
                return Err(ShellError::syntax("syntax error: bad substitution"));
            }
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(mut ch) = self.next() else {
            return Err(ShellError::syntax("syntax error: missing '}'"));
        };
        let mut modifier = ch.to_string();
        let mut null_is_unset = false;
        match ch {
            '}' => Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.options.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                if ch == ':' {
                    null_is_unset = true;
                    let Some(next) = self.next() else {
                        return Err(ShellError::syntax("syntax error: missing '}'"));
                    };
                    ch = next;
                    modifier.push(ch);
                }
                let pattern = ch == '#' || ch == '%';
                if null_is_unset && pattern {
                    return Err(ShellError::syntax(format!(
                        "unsupported modifier ({modifier}) in substitution"
                    )));
                }
                let (word, _) = self.stop_on_brace('}', pattern)?;
                let value = self.get_env(&name);
                if self.options.skip_unset && value.is_none() {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let empty_is_unset = |value: &Option<String>| match value {
                    None => true,
                    Some(value) => null_is_unset && value.is_empty(),
                };
                match ch {
                    '-' => Ok(if empty_is_unset(&value) {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if empty_is_unset(&value) {
                        String::new()
                    } else {
                        word
                    }),
                    '?' => {
                        if empty_is_unset(&value) {
                            if self.options.unset_required_is_empty {
                                self.used_unset = true;
                                return Ok(String::new());
                            }
                            let message = if !word.is_empty() {
                                word
                            } else if value.is_none() {
                                "is not allowed to be unset".to_owned()
                            } else {
                                "is not allowed to be empty".to_owned()
                            };
                            return Err(ShellError::syntax(format!("{name}: {message}")));
                        }
                        Ok(value.unwrap_or_default())
                    }
                    '#' | '%' => {
                        let value = value.unwrap_or_default();
                        let (greedy, word) = match word.strip_prefix(ch) {
                            Some(rest) => (true, rest.to_owned()),
                            None => (false, word),
                        };
                        let glob = Glob::parse(&word)?;
                        Ok(if ch == '#' {
                            glob.trim_prefix(&value, greedy)
                        } else {
                            glob.trim_suffix(&value, greedy)
                        })
                    }
                    _ => Err(ShellError::syntax(format!(
                        "unsupported modifier ({modifier}) in substitution"
                    ))),
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let (pattern, _) = self.stop_on_brace('/', true)?;
                let (replacement, _) = self.stop_on_brace('}', true)?;
                let value = self.get_env(&name);
                let Some(value) = value else {
                    if self.options.skip_unset {
                        return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                    }
                    return Ok(String::new());
                };
                Ok(Glob::parse(&pattern)?.replace(&value, &replacement, replace_all))
            }
            _ => Err(ShellError::syntax(format!(
                "unsupported modifier ({modifier}) in substitution"
            ))),
        }
    }

    /// `processStopOn` inside `${…}`, with Docker's "missing '}'" wording at the end of input.
    fn stop_on_brace(
        &mut self,
        stop: char,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ShellError> {
        self.process_stop_on(Some(stop), raw_escapes)
            .map_err(|error| {
                if self.peek().is_none() {
                    ShellError::syntax(if stop == '/' {
                        "syntax error: missing '/' in ${}"
                    } else {
                        "syntax error: missing '}'"
                    })
                } else {
                    error
                }
            })
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_numeric() {
                while let Some(digit) = self.peek().filter(|c| c.is_numeric()) {
                    self.next();
                    name.push(digit);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphabetic() && !ch.is_numeric() && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }
}

/// A shell pattern of `${VAR#…}`, `${VAR%…}` and `${VAR/…/…}`: `*`, `?` and literal
/// characters (`\` escapes `*`, `?` and `\`), as BuildKit's `convertShellPatternToRegex`.
#[derive(Debug)]
struct Glob(Vec<GlobToken>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum GlobToken {
    Star,
    Any,
    Literal(char),
}

impl Glob {
    fn parse(pattern: &str) -> Result<Glob, ShellError> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(ch) = chars.next() {
            tokens.push(match ch {
                '*' => GlobToken::Star,
                '?' => GlobToken::Any,
                '\\' => match chars.peek() {
                    // `\}` and `\/` only protect the character from ending the `${…}`.
                    Some('}' | '/') => continue,
                    Some(&next @ ('*' | '?' | '\\')) => {
                        chars.next();
                        GlobToken::Literal(next)
                    }
                    other => {
                        return Err(ShellError::syntax(format!(
                            "invalid pattern ({pattern}) in substitution: invalid escape '\\{}'",
                            other.map(|c| c.to_string()).unwrap_or_default()
                        )));
                    }
                },
                other => GlobToken::Literal(other),
            });
        }
        Ok(Glob(tokens))
    }

    /// Whether the whole of `text` matches.
    fn matches(&self, text: &[char]) -> bool {
        fn go(tokens: &[GlobToken], text: &[char]) -> bool {
            match tokens.split_first() {
                None => text.is_empty(),
                Some((GlobToken::Star, rest)) => (0..=text.len()).any(|i| go(rest, &text[i..])),
                Some((GlobToken::Any, rest)) => !text.is_empty() && go(rest, &text[1..]),
                Some((GlobToken::Literal(c), rest)) => {
                    text.first() == Some(c) && go(rest, &text[1..])
                }
            }
        }
        go(&self.0, text)
    }

    fn trim_prefix(&self, value: &str, greedy: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut lengths: Vec<usize> = (0..=chars.len()).collect();
        if greedy {
            lengths.reverse();
        }
        match lengths.into_iter().find(|&n| self.matches(&chars[..n])) {
            Some(n) => chars[n..].iter().collect(),
            None => value.to_owned(),
        }
    }

    fn trim_suffix(&self, value: &str, greedy: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut starts: Vec<usize> = (0..=chars.len()).collect();
        if !greedy {
            starts.reverse();
        }
        match starts.into_iter().find(|&n| self.matches(&chars[n..])) {
            Some(n) => chars[..n].iter().collect(),
            None => value.to_owned(),
        }
    }

    /// Replaces the leftmost-longest match (or every match) with `replacement`.
    fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut start = 0;
        while start <= chars.len() {
            let found = (start..=chars.len()).find_map(|from| {
                (from..=chars.len())
                    .rev()
                    .find(|&to| self.matches(&chars[from..to]))
                    .map(|to| (from, to))
            });
            let Some((from, to)) = found else { break };
            out.extend(&chars[start..from]);
            out.push_str(replacement);
            if to == from {
                // An empty match: keep one character so the scan moves on.
                if let Some(&c) = chars.get(to) {
                    out.push(c);
                }
                start = to + 1;
            } else {
                start = to;
            }
            if !all {
                break;
            }
        }
        if start < chars.len() {
            out.extend(&chars[start..]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn word(input: &str, escape: char, vars: &[(&str, &str)]) -> Result<String, String> {
        process_word(input, escape, &env(vars))
            .map(|e| e.value)
            .map_err(|e| e.message)
    }

    #[test]
    fn process_word_table() {
        let vars = [("A", "1"), ("E", ""), ("P", "a/b/c.tar.gz")];
        let cases: &[(&str, char, Result<&str, &str>)] = &[
            ("plain", '\\', Ok("plain")),
            ("\"two words\"", '\\', Ok("two words")),
            ("'$A'", '\\', Ok("$A")),
            ("\"$A\"", '\\', Ok("1")),
            ("$A$A", '\\', Ok("11")),
            ("${A}x", '\\', Ok("1x")),
            ("$UNSET.", '\\', Ok(".")),
            ("${UNSET:-d}", '\\', Ok("d")),
            ("${E:-d}", '\\', Ok("d")),
            ("${E-d}", '\\', Ok("")),
            ("${UNSET-d}", '\\', Ok("d")),
            ("${A:+s}", '\\', Ok("s")),
            ("${E:+s}", '\\', Ok("")),
            ("${E+s}", '\\', Ok("s")),
            ("${A:-\"q d\"}", '\\', Ok("1")),
            ("${UNSET:-\"q d\"}", '\\', Ok("q d")),
            ("${P#*/}", '\\', Ok("b/c.tar.gz")),
            ("${P##*/}", '\\', Ok("c.tar.gz")),
            ("${P%.*}", '\\', Ok("a/b/c.tar")),
            ("${P%%.*}", '\\', Ok("a/b/c")),
            ("${P/\\//-}", '\\', Ok("a-b/c.tar.gz")),
            ("${P//\\//-}", '\\', Ok("a-b-c.tar.gz")),
            ("a\\ b", '\\', Ok("a b")),
            ("\"a\\\"b\\\\c\\$d\\n\"", '\\', Ok("a\"b\\c$d\\n")),
            ("\"a`\"b\\c`$d\"", '`', Ok("a\"b\\c$d")),
            ("x\\", '\\', Ok("x")),
            ("$", '\\', Ok("$")),
            ("$1x", '\\', Ok("x")),
            (
                "\"open",
                '\\',
                Err("unexpected end of statement while looking for matching double-quote"),
            ),
            (
                "'open",
                '\\',
                Err("unexpected end of statement while looking for matching single-quote"),
            ),
            ("${A", '\\', Err("syntax error: missing '}'")),
            ("${}", '\\', Err("syntax error: bad substitution")),
            (
                "${A:#x}",
                '\\',
                Err("unsupported modifier (:#) in substitution"),
            ),
            (
                "${A!x}",
                '\\',
                Err("unsupported modifier (!) in substitution"),
            ),
            ("${UNSET:?must be set}", '\\', Err("UNSET: must be set")),
            ("${E:?}", '\\', Err("E: is not allowed to be empty")),
        ];
        for (input, escape, expect) in cases {
            let got = word(input, *escape, &vars);
            let expect = expect.map_err(str::to_owned);
            assert_eq!(got.as_deref(), expect.as_deref(), "word {input:?}");
        }
    }

    #[test]
    fn parse_words_keeps_quotes_and_escapes() {
        let cases: &[(&str, char, &[&str])] = &[
            ("a=1 b=2", '\\', &["a=1", "b=2"]),
            ("a=\"x y\" b='p q'", '\\', &["a=\"x y\"", "b='p q'"]),
            ("a=x\\ y", '\\', &["a=x\\ y"]),
            ("a=\"q\\\"r\"", '\\', &["a=\"q\\\"r\""]),
            ("a='\\' b=c", '\\', &["a='\\'", "b=c"]),
            ("a=\"\"", '\\', &["a=\"\""]),
            ("  spaced   out  ", '\\', &["spaced", "out"]),
            ("a=`\"x", '`', &["a=`\"x"]),
        ];
        for (input, escape, expect) in cases {
            assert_eq!(parse_words(input, *escape), *expect, "words of {input:?}");
        }
    }

    #[test]
    fn heredoc_word_splitting_keeps_quotes_raw() {
        let options = Options {
            raw_quotes: true,
            raw_escapes: true,
            skip_unset: true,
            ..Options::default()
        };
        let words =
            process_words("cat <<\"EOF\" >$X 2<<-'E 2'", '\\', &env(&[]), options).expect("words");
        assert_eq!(words, ["cat", "<<\"EOF\"", ">$X", "2<<-'E 2'"]);
    }
}
