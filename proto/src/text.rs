//! Text from elsewhere (a hub's answer, a failed command's output, a dead letter's reason)
//! made fit for one header, log line or error message. Pure.

/// `text` on one line (line breaks as ` | `, blank lines dropped), cut after `max`
/// characters with a `…`.
pub fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .split(['\n', '\r'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_fit_on_one_line() {
        assert_eq!(one_line("a\n\n  b\r\nc", 100), "a | b | c");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("abc", 3), "abc");
        assert_eq!(one_line("ééé", 2), "éé…", "cut on characters, not bytes");
    }
}
