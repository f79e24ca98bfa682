//! Reading `TOKEN|@FILE` arguments with bounded size.

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
