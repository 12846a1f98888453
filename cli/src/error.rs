//! The CLI's one error type, and the exit code each kind of failure maps to.

use osbs_common::{BusError, ChangeError, StoreError};

/// Exit codes, as documented in `osbs --help`.
pub mod exit {
    /// Done; for a build: it ended `complete` or `imported`.
    pub const OK: u8 = 0;
    /// The build ended `failed`, `canceled`, `superseded` or `import_failed`.
    pub const BUILD_FAILED: u8 = 1;
    /// Usage error (clap's own code).
    pub const USAGE: u8 = 2;
    /// Refused: bad input or state.
    pub const REFUSED: u8 = 3;
    /// A service or tool failed (RabbitMQ, Redis, git, a file).
    pub const UNAVAILABLE: u8 = 4;
    /// Timed out waiting.
    pub const TIMEOUT: u8 = 5;
}

/// The text `--help` shows under "Exit codes".
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  done; for a build: it ended complete or imported
  1  the build ended failed, canceled, superseded or import_failed
  2  usage error
  3  refused: bad input or state (dirty checkout, unknown build, finished build, request refused)
  4  a service or tool failed (RabbitMQ, Redis, git, a file)
  5  timed out waiting";

/// Every way a verb can fail. Each message is one line: what failed, on what, what to do.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The build ran and did not succeed (the reason is the build's own).
    #[error("build {id} ended {state}: {reason}")]
    BuildFailed {
        id: String,
        state: String,
        reason: String,
    },
    /// The input or the state of things does not allow what was asked.
    #[error("{0}")]
    Refused(String),
    // Boxed: the adapters' errors are large and every verb returns this type.
    #[error(transparent)]
    Config(Box<osbs_common::config::ConfigError>),
    #[error(transparent)]
    Bus(Box<BusError>),
    #[error(transparent)]
    Store(Box<StoreError>),
    /// A state change recorded but not announced.
    #[error(transparent)]
    Unannounced(Box<ChangeError>),
    /// A command (git) or a file failed.
    #[error("{0}")]
    Tool(String),
    #[error("{0}")]
    Timeout(String),
}

impl From<StoreError> for CliError {
    fn from(error: StoreError) -> Self {
        match error {
            // An unknown id is the user's input, not an outage.
            StoreError::NotFound(_) => CliError::Refused(error.to_string()),
            other => CliError::Store(Box::new(other)),
        }
    }
}

impl From<ChangeError> for CliError {
    fn from(error: ChangeError) -> Self {
        match error {
            ChangeError::Store(error) => error.into(),
            unannounced => CliError::Unannounced(Box::new(unannounced)),
        }
    }
}

impl From<BusError> for CliError {
    fn from(error: BusError) -> Self {
        CliError::Bus(Box::new(error))
    }
}

impl From<osbs_common::config::ConfigError> for CliError {
    fn from(error: osbs_common::config::ConfigError) -> Self {
        CliError::Config(Box::new(error))
    }
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::BuildFailed { .. } => exit::BUILD_FAILED,
            CliError::Refused(_) | CliError::Config(_) => exit::REFUSED,
            CliError::Bus(_)
            | CliError::Store(_)
            | CliError::Unannounced(_)
            | CliError::Tool(_) => exit::UNAVAILABLE,
            CliError::Timeout(_) => exit::TIMEOUT,
        }
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_documented_code() {
        let cases = [
            (
                CliError::BuildFailed {
                    id: "b".into(),
                    state: "failed".into(),
                    reason: "no FROM".into(),
                },
                1,
            ),
            (CliError::Refused("dirty".into()), 3),
            (CliError::from(StoreError::NotFound("x".into())), 3),
            (CliError::Tool("git".into()), 4),
            (CliError::Timeout("t".into()), 5),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error}");
            assert!(EXIT_CODES_HELP.contains(&format!("  {code}  ")));
        }
    }
}
