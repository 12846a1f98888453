//! Registry credentials as configured (`[worker.registry_auth."HOST:PORT"]`,
//! `[koji.registry_auth."HOST:PORT"]`): a user and a password, the password given in the
//! file or, better, named by `password_env` and read from the environment (a Kubernetes
//! Secret, an `.env` file). Pure: the environment is passed in. The password is a
//! [`Secret`]: it prints as `***` and never reaches an error or a log line.

use osbs_proto::secret::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The credentials of one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    /// The password itself; prefer `password_env`.
    pub password: Secret,
    /// The environment variable holding the password, read when `password` is empty.
    pub password_env: String,
}

impl Credentials {
    pub fn new(username: &str, password: Secret) -> Credentials {
        Credentials {
            username: username.to_owned(),
            password,
            password_env: String::new(),
        }
    }

    /// The same credentials with the password in `password`, read through `env` when only
    /// `password_env` names it.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Credentials, CredentialsError> {
        if self.username.is_empty() {
            return Err(CredentialsError::NoUser);
        }
        if !self.password.is_empty() {
            return Ok(self.clone());
        }
        if self.password_env.is_empty() {
            return Err(CredentialsError::NoPassword);
        }
        match env(&self.password_env) {
            Some(password) if !password.is_empty() => Ok(Credentials {
                password: Secret::new(password),
                ..self.clone()
            }),
            _ => Err(CredentialsError::EnvUnset(self.password_env.clone())),
        }
    }
}

/// Why configured credentials cannot be used (never with the password in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("no username is set")]
    NoUser,
    #[error("neither password nor password_env is set")]
    NoPassword,
    #[error("password_env names ${0}, which is unset or empty")]
    EnvUnset(String),
}

/// Every registry's credentials with their passwords read, or the first registry whose
/// credentials cannot be used.
pub fn resolve_all(
    credentials: &BTreeMap<String, Credentials>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, Credentials>, (String, CredentialsError)> {
    credentials
        .iter()
        .map(|(registry, credentials)| {
            credentials
                .resolve(&env)
                .map(|resolved| (registry.clone(), resolved))
                .map_err(|error| (registry.clone(), error))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_come_from_the_file_or_the_environment() {
        let env = |name: &str| match name {
            "OSBS_QUAY_PASSWORD" => Some("from-env".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let given = |user: &str, password: &str, password_env: &str| Credentials {
            username: user.into(),
            password: Secret::new(password),
            password_env: password_env.into(),
        };
        for (credentials, expected) in [
            (given("robot", "in-file", ""), Ok("in-file")),
            (
                given("robot", "in-file", "OSBS_QUAY_PASSWORD"),
                Ok("in-file"),
            ),
            (given("robot", "", "OSBS_QUAY_PASSWORD"), Ok("from-env")),
            (
                given("robot", "", "MISSING"),
                Err(CredentialsError::EnvUnset("MISSING".into())),
            ),
            (
                given("robot", "", "EMPTY"),
                Err(CredentialsError::EnvUnset("EMPTY".into())),
            ),
            (given("robot", "", ""), Err(CredentialsError::NoPassword)),
            (given("", "x", ""), Err(CredentialsError::NoUser)),
        ] {
            let got = credentials.resolve(env);
            assert_eq!(
                got.as_ref().map(|c| c.password.expose()),
                expected.as_ref().map(|p| *p),
                "{credentials:?}"
            );
        }
        let error = given("robot", "", "MISSING").resolve(env).unwrap_err();
        assert_eq!(
            error.to_string(),
            "password_env names $MISSING, which is unset or empty"
        );
    }

    #[test]
    fn credentials_never_print_their_password() {
        let config: BTreeMap<String, Credentials> = toml::from_str(
            "[\"quay.io\"]\nusername = \"robot\"\npassword = \"s3cret\"\n[\"[::1]:5000\"]\nusername = \"u\"\npassword_env = \"P\"\n",
        )
        .unwrap();
        assert_eq!(config["quay.io"].password.expose(), "s3cret");
        let shown = format!("{config:?} {}", serde_json::to_string(&config).unwrap());
        assert!(
            !shown.contains("s3cret") && shown.contains("robot"),
            "{shown}"
        );
        let resolved = resolve_all(&config, |_| Some("p".into())).unwrap();
        assert_eq!(resolved["[::1]:5000"].password.expose(), "p");
        assert_eq!(
            resolve_all(&config, |_| None).unwrap_err(),
            (
                "[::1]:5000".to_owned(),
                CredentialsError::EnvUnset("P".into())
            )
        );
        assert!(toml::from_str::<Credentials>("user = \"typo\"").is_err());
    }
}
