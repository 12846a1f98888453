//! Inspect step, pure part: the `rpm -qa` query, parsing its output into components, and the
//! target's signed-content policy.

use osbs_proto::v1::Rpm;

/// DESIGN.md's query format, then the header-only signatures (`RSAHEADER`, `DSAHEADER`) that
/// rpm ≥ 4.16 writes by default instead of `SIGPGP`: without them a package signed by a
/// modern `rpmsign` would look unsigned.
pub const RPM_QUERY_FORMAT: &str = "%{NAME};%{VERSION};%{RELEASE};%{ARCH};%{EPOCH};%{SIZE};%{SIGMD5};%{BUILDTIME};%{SIGPGP:pgpsig};%{SIGGPG:pgpsig};%{RSAHEADER:pgpsig};%{DSAHEADER:pgpsig}\n";

/// Where an image keeps `rpm`: without it, the image has no rpm components (and no
/// container needs to start to learn that).
pub const RPM_PATHS: &[&str] = &["/usr/bin/rpm", "/bin/rpm"];

/// The command run in a container of the image.
pub fn rpm_command() -> Vec<String> {
    vec![
        "rpm".into(),
        "-qa".into(),
        "--qf".into(),
        RPM_QUERY_FORMAT.into(),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    #[error("rpm -qa printed a line that is not `{fields}` fields: {line:?}", fields = FIELDS)]
    BadLine { line: String },
    #[error(
        "signing policy of target {target}: {count} package(s) not signed by an allowed key ({allowed}): {packages}; rebuild with signed packages or use the right yum repos"
    )]
    Unsigned {
        target: String,
        count: usize,
        allowed: String,
        packages: String,
    },
}

const FIELDS: usize = 10;

/// Parses `rpm -qa` output in [`RPM_QUERY_FORMAT`] (also DESIGN.md's 10-field form). Skips
/// `gpg-pubkey` pseudo-packages and blank lines.
pub fn parse_rpm_output(output: &str) -> Result<Vec<Rpm>, InspectError> {
    let mut rpms = Vec::new();
    for line in output.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split(';').collect();
        if fields.len() < FIELDS {
            return Err(InspectError::BadLine {
                line: line.to_owned(),
            });
        }
        if fields[0] == "gpg-pubkey" {
            continue;
        }
        let number = |text: &str| text.parse::<i64>().ok();
        let bad = || InspectError::BadLine {
            line: line.to_owned(),
        };
        let signature = fields[8..]
            .iter()
            .find_map(|sig| key_id(sig))
            .unwrap_or_default();
        rpms.push(Rpm {
            name: fields[0].to_owned(),
            version: fields[1].to_owned(),
            release: fields[2].to_owned(),
            arch: fields[3].to_owned(),
            epoch: if fields[4] == "(none)" {
                -1
            } else {
                number(fields[4]).ok_or_else(bad)?
            },
            size: number(fields[5]).ok_or_else(bad)?,
            sigmd5: fields[6].to_owned(),
            buildtime: number(fields[7]).ok_or_else(bad)?,
            signature,
        });
    }
    Ok(rpms)
}

/// The key id of an rpm `pgpsig` rendering (`RSA/SHA256, <date>, Key ID 0e771bebb16156d2`),
/// lowercase; `None` for `(none)`.
pub fn key_id(pgpsig: &str) -> Option<String> {
    let (_, after) = pgpsig.split_once("Key ID ")?;
    let id: String = after
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_lowercase();
    (!id.is_empty()).then_some(id)
}

/// Whether a package's long key id matches an allowed id (Koji's sigkeys are the short,
/// 8-hex form: the low bits of the long id).
fn allowed_by(signature: &str, allowed: &[String]) -> bool {
    !signature.is_empty()
        && allowed.iter().any(|key| {
            let key = key.trim().trim_start_matches("0x").to_ascii_lowercase();
            key.len() >= 8 && signature.ends_with(&key)
        })
}

/// Fails when the target requires signed content (non-empty `allowed_key_ids`) and some
/// package is unsigned or signed by another key; the error names each of them.
pub fn check_signatures(
    target: &str,
    allowed_key_ids: &[String],
    rpms: &[Rpm],
) -> Result<(), InspectError> {
    if allowed_key_ids.is_empty() {
        return Ok(());
    }
    let offenders: Vec<String> = rpms
        .iter()
        .filter(|rpm| !allowed_by(&rpm.signature, allowed_key_ids))
        .map(|rpm| {
            let nvra = format!("{}-{}-{}.{}", rpm.name, rpm.version, rpm.release, rpm.arch);
            if rpm.signature.is_empty() {
                format!("{nvra} (unsigned)")
            } else {
                format!("{nvra} (signed by {})", rpm.signature)
            }
        })
        .collect();
    if offenders.is_empty() {
        Ok(())
    } else {
        Err(InspectError::Unsigned {
            target: target.to_owned(),
            count: offenders.len(),
            allowed: allowed_key_ids.join(", "),
            packages: offenders.join(", "),
        })
    }
}

/// Whether a container start failure means "this image has no rpm": then it has no
/// components rather than a broken inspection.
pub fn means_no_rpm(docker_error: &str) -> bool {
    let error = docker_error.to_ascii_lowercase();
    error.contains("executable file not found")
        || (error.contains("no such file or directory") && error.contains("rpm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNED: &str = "bash;5.2.26;3.fc41;x86_64;(none);8106939;0123abcd;1716825600;RSA/SHA256, Mon 27 May 2024 10:00:00 AM UTC, Key ID d0f25a3ce2ea1b3c;(none)";
    const HEADER_ONLY: &str = "hello-osbs;1.0;1;noarch;(none);3;d6a5;1700000000;(none);(none);RSA/SHA512, Fri Nov 27 07:33:38 2026, Key ID 0e771bebb16156d2;(none)";
    const UNSIGNED: &str = "local;1;1;noarch;2;10;aa;1700000000;(none);(none);(none);(none)";
    const PUBKEY: &str = "gpg-pubkey;e2ea1b3c;5f1e;(none);(none);0;(none);1600000000;(none);(none)";

    #[test]
    fn parses_both_formats_and_skips_pubkeys() {
        let output = format!("{SIGNED}\n{HEADER_ONLY}\n\n{UNSIGNED}\n{PUBKEY}\n");
        let rpms = parse_rpm_output(&output).unwrap();
        assert_eq!(rpms.len(), 3);
        assert_eq!(rpms[0].name, "bash");
        assert_eq!(rpms[0].epoch, -1);
        assert_eq!(rpms[0].size, 8_106_939);
        assert_eq!(rpms[0].buildtime, 1_716_825_600);
        assert_eq!(rpms[0].signature, "d0f25a3ce2ea1b3c");
        assert_eq!(rpms[1].signature, "0e771bebb16156d2");
        assert_eq!(rpms[2].epoch, 2);
        assert_eq!(rpms[2].signature, "");
        assert!(parse_rpm_output("").unwrap().is_empty());
        assert!(parse_rpm_output("a;b;c").is_err());
        assert!(parse_rpm_output("a;1;1;x;(none);big;m;1;(none);(none)").is_err());
    }

    #[test]
    fn signing_policy() {
        let rpms = parse_rpm_output(&format!("{SIGNED}\n{HEADER_ONLY}\n{UNSIGNED}")).unwrap();
        type Case<'a> = (&'a [&'a str], Result<(), &'a [&'a str]>);
        let table: [Case; 5] = [
            (&[], Ok(())),
            (
                &["E2EA1B3C", "b16156d2"],
                Err(&["local-1-1.noarch (unsigned)"]),
            ),
            (
                &["e2ea1b3c"],
                Err(&[
                    "hello-osbs-1.0-1.noarch (signed by 0e771bebb16156d2)",
                    "local-1-1.noarch (unsigned)",
                ]),
            ),
            (
                &["0xD0F25A3CE2EA1B3C", "0e771bebb16156d2"],
                Err(&["local-1-1.noarch (unsigned)"]),
            ),
            (
                &["ffffffff"],
                Err(&["bash-5.2.26-3.fc41.x86_64 (signed by d0f25a3ce2ea1b3c)"]),
            ),
        ];
        for (keys, expected) in table {
            let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            let outcome = check_signatures("t", &keys, &rpms);
            match expected {
                Ok(()) => assert!(outcome.is_ok(), "{keys:?}"),
                Err(names) => {
                    let text = outcome.unwrap_err().to_string();
                    for name in names {
                        assert!(text.contains(name), "{keys:?}: {text}");
                    }
                    assert!(!text.contains('\n'));
                }
            }
        }
        let signed_only = parse_rpm_output(SIGNED).unwrap();
        assert!(check_signatures("t", &["e2ea1b3c".into()], &signed_only).is_ok());
    }

    #[test]
    fn missing_rpm_is_no_components() {
        assert!(means_no_rpm(
            "OCI runtime create failed: exec: \"rpm\": executable file not found in $PATH"
        ));
        assert!(!means_no_rpm("Cannot connect to the Docker daemon"));
    }
}
