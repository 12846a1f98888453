//! Name-version-release rules of the hub: `check_NVR` and `get_next_release`.

use crate::fault::Fault;

/// `koji.check_NVR(strict=True)`: no `-` in version or release.
pub fn check_nvr(version: &str, release: &str) -> Result<(), Fault> {
    if version.contains('-') {
        return Err(Fault::generic(
            "The \"-\" character not allowed in version field",
        ));
    }
    if release.contains('-') {
        return Err(Fault::generic(
            "The \"-\" character not allowed in release field",
        ));
    }
    Ok(())
}

/// `get_next_release`: the release after `latest` (the newest BUILDING, COMPLETE or DELETED
/// build of that name-version), by koji's rules.
pub fn next_release(latest: Option<&str>, increment: i64) -> Result<String, Fault> {
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let bump = |text: &str| {
        text.parse::<i64>()
            .map(|number| (number + increment).to_string())
            .map_err(|_| Fault::build(format!("Unable to increment release value: {text}")))
    };
    let Some(release) = latest.filter(|release| !release.is_empty()) else {
        return Ok(increment.to_string());
    };
    if digits(release) {
        return bump(release);
    }
    let parts: Vec<&str> = release.split('.').collect();
    if parts.len() == 2 && digits(parts[0]) {
        return Ok(format!("{}.{}", bump(parts[0])?, parts[1]));
    }
    if parts.len() == 3 && digits(parts[2]) {
        return Ok(format!("{}.{}.{}", parts[0], parts[1], bump(parts[2])?));
    }
    Err(Fault::build(format!(
        "Unable to increment release value: {release}"
    )))
}

/// `koji.parse_NVR` as the hub looks builds up: split on the last two `-` (the name may be
/// empty, an `epoch:` before it is dropped), or `invalid format: <nvr>`.
pub fn parse_nvr_strict(nvr: &str) -> Result<(String, String, String), Fault> {
    let invalid = || Fault::generic(format!("invalid format: {nvr}"));
    let (rest, release) = nvr.rsplit_once('-').ok_or_else(invalid)?;
    let (name, version) = rest.rsplit_once('-').ok_or_else(invalid)?;
    if release.is_empty() || version.is_empty() {
        return Err(invalid());
    }
    let name = name.split_once(':').map_or(name, |(_, name)| name);
    Ok((name.to_owned(), version.to_owned(), release.to_owned()))
}

/// `name-version-release` → its three parts (`koji.parse_NVR`: split on the last two `-`).
pub fn parse_nvr(nvr: &str) -> Option<(String, String, String)> {
    let (rest, release) = nvr.rsplit_once('-')?;
    let (name, version) = rest.rsplit_once('-')?;
    if name.is_empty() || version.is_empty() || release.is_empty() {
        return None;
    }
    Some((name.to_owned(), version.to_owned(), release.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_increment_like_koji() {
        let cases = [
            (None, Ok("1")),
            (Some("123"), Ok("124")),
            (Some("123.el8"), Ok("124.el8")),
            (Some("123.snapshot.456"), Ok("123.snapshot.457")),
            (Some("a.b"), Err("Unable to increment release value: a.b")),
            (
                Some("1.2.3.4"),
                Err("Unable to increment release value: 1.2.3.4"),
            ),
        ];
        for (latest, expected) in cases {
            let got = next_release(latest, 1);
            match expected {
                Ok(release) => assert_eq!(got.unwrap(), release, "{latest:?}"),
                Err(text) => {
                    let fault = got.unwrap_err();
                    assert_eq!(fault.code, crate::fault::code::BUILD);
                    assert_eq!(fault.text, text);
                }
            }
        }
    }

    #[test]
    fn nvr_rules() {
        assert!(check_nvr("1.0", "3").is_ok());
        assert_eq!(
            check_nvr("1-0", "3").unwrap_err().text,
            "The \"-\" character not allowed in version field"
        );
        assert!(
            check_nvr("1", "3-x")
                .unwrap_err()
                .text
                .contains("release field")
        );
        assert_eq!(
            parse_nvr("my-image-1.0-3"),
            Some(("my-image".into(), "1.0".into(), "3".into()))
        );
        assert_eq!(parse_nvr("nodash"), None);
        let strict = |nvr: &str| parse_nvr_strict(nvr).map_err(|fault| fault.text);
        assert_eq!(
            strict("1:my-image-1.0-3"),
            Ok(("my-image".into(), "1.0".into(), "3".into()))
        );
        assert_eq!(strict("-1-2"), Ok(("".into(), "1".into(), "2".into())));
        for bad in ["nodash", "a-1-", "a--1", "a-1"] {
            assert_eq!(strict(bad), Err(format!("invalid format: {bad}")), "{bad}");
        }
    }
}
