//! What the `osbs` CLI reads from the shared configuration file: `[amqp]`, `[redis]`,
//! `[storage]` and its own `[cli]`.

use osbs_common::config::{AmqpConfig, RedisConfig, StorageConfig};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The whole file as the CLI reads it. Not `deny_unknown_fields`: every process reads the
/// same file and ignores the others' sections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub amqp: AmqpConfig,
    pub redis: RedisConfig,
    pub storage: StorageConfig,
    pub cli: CliSection,
}

/// `[cli]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CliSection {
    /// Who submits, cancels and replays; empty = the login name (`$LOGNAME`, `$USER`, `$LNAME`,
    /// `$USERNAME`, else the account of the uid, as Python's `getpass.getuser()`).
    pub user: String,
    /// Remote whose URL `container-build` sends and whose branches must hold the commit.
    pub git_remote: String,
    /// When set, `container-build` sends `<git_base_url>/<namespace>/<repo>.git` rather
    /// than the remote's URL (an ssh push URL → the anonymous clone URL).
    pub git_base_url: String,
    /// Namespace when the remote URL has none.
    pub default_namespace: String,
    /// How long `container-build` waits for the dispatcher to record its request.
    pub record_timeout_secs: u64,
    /// How long `container-build`, `watch-logs` and `cancel` follow a build.
    pub build_timeout_secs: u64,
    /// Base of the commit `url` the git hook puts in its messages.
    pub git_web_url: String,
    /// A bare repository whose parent directory has one of these names is in that namespace.
    pub git_namespaces: Vec<String>,
    /// A push of more commits announces only the newest ones.
    pub git_hook_max_commits: usize,
}

impl Default for CliSection {
    fn default() -> Self {
        CliSection {
            user: String::new(),
            git_remote: "origin".into(),
            git_base_url: String::new(),
            default_namespace: "container".into(),
            record_timeout_secs: 60,
            build_timeout_secs: 4 * 3600,
            git_web_url: "https://src.fedoraproject.org".into(),
            git_namespaces: [
                "container",
                "docker",
                "rpms",
                "modules",
                "flatpaks",
                "tests",
            ]
            .map(String::from)
            .to_vec(),
            git_hook_max_commits: 100,
        }
    }
}

impl CliSection {
    /// The acting user: `[cli] user`, else the login name as Python's `getpass.getuser()`
    /// finds it (what Fedora's tools and `fedora-messaging-git-hook` name), else `unknown`
    /// (a uid with no account).
    pub fn user(&self) -> String {
        user_from(
            &self.user,
            login_name(|name| std::env::var(name).ok(), account_of_uid),
        )
    }

    pub fn record_timeout(&self) -> Duration {
        Duration::from_secs(self.record_timeout_secs.max(1))
    }
    pub fn build_timeout(&self) -> Duration {
        Duration::from_secs(self.build_timeout_secs.max(1))
    }
}

fn user_from(configured: &str, login: Option<String>) -> String {
    [Some(configured.to_owned()), login]
        .into_iter()
        .flatten()
        .map(|user| user.trim().to_owned())
        .find(|user| !user.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// `getpass.getuser()`: the first non-empty of `LOGNAME`, `USER`, `LNAME`, `USERNAME`, else
/// the account name of the process's real uid. A service, `sudo` or a container often has
/// none of the variables; the account still names the user.
pub fn login_name(
    env: impl Fn(&str) -> Option<String>,
    account: impl FnOnce() -> Option<String>,
) -> Option<String> {
    ["LOGNAME", "USER", "LNAME", "USERNAME"]
        .into_iter()
        .filter_map(env)
        .find(|name| !name.trim().is_empty())
        .or_else(account)
}

/// The account name of the process's real uid (getpwuid_r: /etc/passwd or any NSS source).
pub fn account_of_uid() -> Option<String> {
    let user = uzers::get_user_by_uid(uzers::get_current_uid())?;
    user.name().to_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_falls_back_in_order() {
        assert_eq!(user_from("jdoe", Some("root".into())), "jdoe");
        assert_eq!(user_from("", Some("root".into())), "root");
        assert_eq!(user_from(" ", None), "unknown");
    }

    #[test]
    fn login_name_is_getpass_getuser() {
        let account = || Some("account".to_owned());
        // (variables set, login name)
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: [Case; 7] = [
            (&[("LOGNAME", "a"), ("USER", "b")], Some("a")),
            (&[("USER", "b"), ("LNAME", "c")], Some("b")),
            (&[("LNAME", "c"), ("USERNAME", "d")], Some("c")),
            (&[("USERNAME", "d")], Some("d")),
            (&[("LOGNAME", ""), ("USER", "b")], Some("b")),
            (&[], Some("account")),
            (&[("HOME", "/root")], Some("account")),
        ];
        for (vars, expected) in cases {
            let env = |name: &str| {
                vars.iter()
                    .find(|(var, _)| *var == name)
                    .map(|(_, value)| (*value).to_owned())
            };
            assert_eq!(login_name(env, account).as_deref(), expected, "{vars:?}");
        }
        assert_eq!(login_name(|_| None, || None), None, "a uid with no account");
    }

    #[test]
    fn the_account_of_this_process_is_found() {
        // Whatever runs the tests has an account (root in CI, a developer elsewhere).
        let name = account_of_uid().expect("the test runner's uid has an account");
        assert!(!name.is_empty() && name != "unknown");
    }

    #[test]
    fn reads_its_section_and_ignores_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("osbs.toml");
        std::fs::write(
            &path,
            "[cli]\nuser = \"jdoe\"\n[worker]\nconcurrency = 3\n[storage]\nartifacts_dir = \"/a\"\n",
        )
        .unwrap();
        let config: Config = osbs_common::config::load(Some(&path)).unwrap();
        assert_eq!(config.cli.user(), "jdoe");
        assert_eq!(config.storage.artifacts_dir, std::path::Path::new("/a"));
        assert_eq!(config.cli.git_remote, "origin");

        std::fs::write(&path, "[cli]\nusr = \"typo\"\n").unwrap();
        let error = osbs_common::config::load::<Config>(Some(&path)).unwrap_err();
        assert!(error.to_string().contains("usr"), "{error}");
    }
}
