//! Reading arguments: `TOKEN|@FILE` with bounded size, and durations.

use std::io::Read;

use weft::ucan::MAX_TOKEN_LEN;

use crate::error::CliError;

/// A token given inline, or `@path` to read it from a file (surrounding whitespace trimmed).
/// Files are read up to just past the token limit, so a huge file costs nothing.
pub(crate) fn token_arg(arg: &str) -> Result<String, CliError> {
    let Some(path) = arg.strip_prefix('@') else {
        return Ok(arg.trim().to_owned());
    };
    let file = std::fs::File::open(path).map_err(|e| CliError::Failed(format!("{path}: {e}")))?;
    let mut text = String::new();
    file.take(MAX_TOKEN_LEN as u64 + 1024)
        .read_to_string(&mut text)
        .map_err(|e| CliError::Failed(format!("{path}: {e}")))?;
    Ok(text.trim().to_owned())
}

/// Parses `500ms`, `2s`, `1m` or a bare number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, CliError> {
    let bad = || CliError::Usage(format!("{s:?} is not a duration (e.g. 500ms, 2s, 1m)"));
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(bad()),
    };
    std::time::Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}
