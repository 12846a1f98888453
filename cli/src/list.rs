//! `osbs list`: builds, newest first, filtered by state, repository, user and age.

use crate::context::{Context, print_stdout};
use crate::error::{CliError, Result};
use crate::render;
use osbs_common::store::ListFilter;
use osbs_proto::v1::BuildState;

#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only builds in this state (queued, running, pushing, complete, imported, failed,
    /// canceled, superseded, import_failed)
    #[arg(long, value_parser = parse_state)]
    pub state: Option<BuildState>,
    /// Only builds of this dist-git repository (its name, without namespace)
    #[arg(long)]
    pub repo: Option<String>,
    /// Only builds submitted by (or pushed by) this user
    #[arg(long)]
    pub user: Option<String>,
    /// Only builds created since then: a duration (`2h`, `3days`) or a date (`2025-01-15`,
    /// `2025-01-15T10:00:00Z`)
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many builds
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

fn parse_state(text: &str) -> std::result::Result<BuildState, String> {
    BuildState::parse(text).map_err(|error| error.to_string())
}

/// `--since` as Unix milliseconds: `now` minus a duration, or a date/time (UTC).
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64> {
    let text = text.trim();
    if let Ok(duration) = humantime::parse_duration(text) {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        return Ok(now_ms.saturating_sub(millis));
    }
    if let Ok(at) =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return Ok(i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0));
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text, &date_format) {
        return Ok(date.midnight().assume_utc().unix_timestamp() * 1000);
    }
    Err(CliError::Refused(format!(
        "--since {text:?} is neither a duration (2h, 3days) nor a date (2025-01-15, 2025-01-15T10:00:00Z)"
    )))
}

pub async fn run(context: &Context, args: &ListArgs) -> Result<()> {
    let since_ms = args
        .since
        .as_deref()
        .map(|since| parse_since(since, osbs_common::telemetry::now_ms()))
        .transpose()?;
    let store = context.store().await?;
    let records = store
        .list(&ListFilter {
            state: args.state,
            repo: args.repo.clone(),
            user: args.user.clone(),
            since_ms,
            limit: args.limit.max(1),
        })
        .await?;
    if context.json {
        let values: Vec<_> = records
            .iter()
            .map(|record| render::record_json(record, None))
            .collect();
        context.print_json(&serde_json::Value::Array(values))
    } else {
        print_stdout(&render::list_text(&records))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_and_dates() {
        let now = 1_736_936_523_000;
        let cases = [
            ("2h", now - 7_200_000),
            ("90s", now - 90_000),
            ("3days", now - 3 * 86_400_000),
            ("2025-01-15", 1_736_899_200_000),
            ("2025-01-15T10:22:03Z", 1_736_936_523_000),
            ("2025-01-15T11:22:03+01:00", 1_736_936_523_000),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_since(text, now).unwrap(), expected, "{text}");
        }
        let error = parse_since("yesterday", now).unwrap_err();
        assert!(error.to_string().contains("\"yesterday\""), "{error}");
        assert_eq!(parse_state("failed"), Ok(BuildState::Failed));
        assert!(parse_state("done").is_err());
    }
}
