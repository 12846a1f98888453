//! Inspect step, pure part: whether and how to list an image's rpms (the rule below), the
//! `rpm -qa` query, parsing its output into components, and the target's signed-content
//! policy.
//!
//! Which of [`RPM_DATABASES`] and [`RPM_BINARIES`] an image has is read from the squash's
//! index of its layers (`osbs_squash::ImageFiles`, symlinks followed inside the image, as
//! Fedora's `/var/lib/rpm` → `../../usr/lib/sysimage/rpm` needs), not from a container: only
//! an image with a database gets one, to run its `rpm`.
//!
//! The rule. An image's rpm components are the packages in its rpm database, so the database
//! decides, not whatever binary is called `rpm`:
//! - no database (none of [`RPM_DATABASES`]): no components, one build-log line says so, and
//!   nothing runs — busybox's `rpm` applet reads package files, not a database, and
//!   `FROM scratch` images have nothing to ask;
//! - a database: the image's own `rpm` lists it; an image without `rpm` ([`RPM_BINARIES`]),
//!   or whose `rpm` cannot run or fails, fails the build (the packager's to fix): its
//!   packages could be neither recorded in Koji nor checked against the signing policy.
//!
//! atomic-reactor's rpmqa plugin keys on the database too: it copies `/var/lib/rpm` out of the
//! image and queries it with the build host's rpm, skipping only images built `FROM scratch`
//! that have none, and failing the build otherwise. OSBS runs the image's rpm instead (the
//! host need not read every database backend), hence the failure when the image has none.

use osbs_proto::v1::Rpm;

/// DESIGN.md's query format, then the header-only signatures (`RSAHEADER`, `DSAHEADER`) that
/// rpm ≥ 4.16 writes by default instead of `SIGPGP`: without them a package signed by a
/// modern `rpmsign` would look unsigned.
pub const RPM_QUERY_FORMAT: &str = "%{NAME};%{VERSION};%{RELEASE};%{ARCH};%{EPOCH};%{SIZE};%{SIGMD5};%{BUILDTIME};%{SIGPGP:pgpsig};%{SIGGPG:pgpsig};%{RSAHEADER:pgpsig};%{DSAHEADER:pgpsig}\n";

/// The files of an rpm database (SQLite, Berkeley DB, NDB backends), where rpm keeps it:
/// `/var/lib/rpm`, and `/usr/lib/sysimage/rpm` since rpm 4.17 (Fedora 36; `/var/lib/rpm` is
/// then a symlink to it).
pub const RPM_DATABASES: &[&str] = &[
    "/var/lib/rpm/rpmdb.sqlite",
    "/var/lib/rpm/Packages",
    "/var/lib/rpm/Packages.db",
    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
    "/usr/lib/sysimage/rpm/Packages",
    "/usr/lib/sysimage/rpm/Packages.db",
];

/// Where an image keeps `rpm`.
pub const RPM_BINARIES: &[&str] = &["/usr/bin/rpm", "/bin/rpm"];

/// What the inspection does with an image, decided from which of [`RPM_DATABASES`] and
/// [`RPM_BINARIES`] exist in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpmPlan {
    /// No rpm database: no components; `rpm`, if the image has one, is not run.
    NoDatabase { rpm: Option<String> },
    /// List the database with the image's `rpm`.
    Query { rpm: String, database: String },
}

impl RpmPlan {
    /// The build-log line of an image without an rpm database.
    pub fn note(&self) -> Option<String> {
        let RpmPlan::NoDatabase { rpm } = self else {
            return None;
        };
        let mut note = "no rpm database in the image (neither /var/lib/rpm nor /usr/lib/sysimage/rpm holds one): it has no rpm components".to_owned();
        if let Some(rpm) = rpm {
            note.push_str(&format!(" (its {rpm} is not asked)"));
        }
        Some(note)
    }
}

/// The rule of this module's header, over the paths found in the image.
pub fn plan_rpm_query(found: &[&str]) -> Result<RpmPlan, InspectError> {
    let first_of = |candidates: &[&str]| {
        candidates
            .iter()
            .find(|path| found.contains(path))
            .map(|path| (*path).to_owned())
    };
    let rpm = first_of(RPM_BINARIES);
    match (first_of(RPM_DATABASES), rpm) {
        (None, rpm) => Ok(RpmPlan::NoDatabase { rpm }),
        (Some(database), Some(rpm)) => Ok(RpmPlan::Query { rpm, database }),
        (Some(database), None) => Err(InspectError::NoRpm { database }),
    }
}

/// The components listed by the query of `plan` that ended with `exit_code`: a failure of the
/// image's rpm on its own database fails the build, naming both.
pub fn read_rpm_query(
    rpm: &str,
    database: &str,
    exit_code: i64,
    stdout: &str,
    stderr: &str,
) -> Result<Vec<Rpm>, InspectError> {
    if exit_code != 0 {
        return Err(InspectError::RpmFailed {
            rpm: rpm.to_owned(),
            database: database.to_owned(),
            exit_code,
            stderr: osbs_common::bus::one_line(stderr, 300),
        });
    }
    parse_rpm_output(stdout)
}

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
    #[error(
        "the image has an rpm database ({database}) but no rpm to read it (looked for {binaries}): its packages can be neither listed nor checked; keep rpm in the image, or remove the database",
        binaries = RPM_BINARIES.join(", ")
    )]
    NoRpm { database: String },
    #[error(
        "the image's {rpm} cannot list its rpm database ({database}): exit code {exit_code}: {stderr}; the image's rpm must be RPM's own (a busybox `rpm` applet reads no database)"
    )]
    RpmFailed {
        rpm: String,
        database: String,
        exit_code: i64,
        stderr: String,
    },
    #[error(
        "the image's {rpm} cannot run to list its rpm database ({database}): {detail}; the image's rpm must be RPM's own and runnable"
    )]
    RpmCannotRun {
        rpm: String,
        database: String,
        detail: String,
    },
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

/// Whether a container start failure means the command itself cannot run (missing,
/// dangling, not executable), as opposed to an engine failure.
pub fn cannot_exec(docker_error: &str) -> bool {
    let error = docker_error.to_ascii_lowercase();
    error.contains("executable file not found")
        || error.contains("no such file or directory")
        || error.contains("permission denied")
        || error.contains("exec format error")
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
    fn the_rpm_database_decides() {
        let query = |rpm: &str, database: &str| {
            Ok(RpmPlan::Query {
                rpm: rpm.into(),
                database: database.into(),
            })
        };
        let table: [(&[&str], Result<RpmPlan, InspectError>); 8] = [
            // FROM scratch, busybox without the rpm applet.
            (&[], Ok(RpmPlan::NoDatabase { rpm: None })),
            // busybox with its `rpm` applet: never run.
            (
                &["/bin/rpm"],
                Ok(RpmPlan::NoDatabase {
                    rpm: Some("/bin/rpm".into()),
                }),
            ),
            // Debian with the rpm package installed and nothing in the database.
            (
                &["/usr/bin/rpm"],
                Ok(RpmPlan::NoDatabase {
                    rpm: Some("/usr/bin/rpm".into()),
                }),
            ),
            // Fedora ≥ 36 (`/var/lib/rpm` links to the sysimage directory: both are found).
            (
                &[
                    "/usr/bin/rpm",
                    "/var/lib/rpm/rpmdb.sqlite",
                    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
                ],
                query("/usr/bin/rpm", "/var/lib/rpm/rpmdb.sqlite"),
            ),
            // CentOS 7: Berkeley DB, rpm in /bin through the /bin → usr/bin link.
            (
                &["/usr/bin/rpm", "/bin/rpm", "/var/lib/rpm/Packages"],
                query("/usr/bin/rpm", "/var/lib/rpm/Packages"),
            ),
            // A busybox `rpm` over a real database: run, and fails the build when it fails.
            (
                &["/bin/rpm", "/usr/lib/sysimage/rpm/Packages.db"],
                query("/bin/rpm", "/usr/lib/sysimage/rpm/Packages.db"),
            ),
            // ubi-micro style: a database and no rpm.
            (
                &["/var/lib/rpm/rpmdb.sqlite"],
                Err(InspectError::NoRpm {
                    database: "/var/lib/rpm/rpmdb.sqlite".into(),
                }),
            ),
            (
                &["/usr/lib/sysimage/rpm/Packages"],
                Err(InspectError::NoRpm {
                    database: "/usr/lib/sysimage/rpm/Packages".into(),
                }),
            ),
        ];
        for (found, expected) in table {
            assert_eq!(plan_rpm_query(found), expected, "{found:?}");
        }
        let note = RpmPlan::NoDatabase {
            rpm: Some("/bin/rpm".into()),
        }
        .note()
        .unwrap();
        assert!(
            note.contains("no rpm components") && note.contains("/bin/rpm"),
            "{note}"
        );
        assert_eq!(query("r", "d").unwrap().note(), None);
    }

    #[test]
    fn a_failing_rpm_over_a_database_fails_the_build_naming_both() {
        let busybox = "rpm: invalid option -- 'a'\nBusyBox v1.35.0 (Debian 1:1.35.0-4+b3) multi-call binary.\n\nUsage: rpm -i PACKAGE.rpm; rpm -qp[ildc] PACKAGE.rpm\n";
        let error = read_rpm_query("/bin/rpm", "/var/lib/rpm/Packages", 1, "", busybox)
            .unwrap_err()
            .to_string();
        for part in [
            "/bin/rpm",
            "/var/lib/rpm/Packages",
            "exit code 1",
            "invalid option",
            "busybox",
        ] {
            assert!(error.contains(part), "{part}: {error}");
        }
        assert!(!error.contains('\n'), "{error}");
        let listed = read_rpm_query("/usr/bin/rpm", "/var/lib/rpm/rpmdb.sqlite", 0, SIGNED, "");
        assert_eq!(listed.unwrap().len(), 1);
        assert!(
            read_rpm_query("/usr/bin/rpm", "d", 0, "", "")
                .unwrap()
                .is_empty()
        );
        assert!(read_rpm_query("/usr/bin/rpm", "d", 0, "not;a;package", "").is_err());
    }

    #[test]
    fn exec_failures_are_told_from_engine_failures() {
        assert!(cannot_exec(
            "OCI runtime create failed: exec: \"rpm\": executable file not found in $PATH"
        ));
        assert!(cannot_exec(
            "OCI runtime create failed: exec: \"rpm\": stat /usr/bin/rpm: no such file or directory"
        ));
        assert!(!cannot_exec("Cannot connect to the Docker daemon"));
    }
}
