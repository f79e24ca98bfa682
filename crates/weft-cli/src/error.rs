//! CLI errors and the one place they become exit codes.

use weft::identity::KeyError;
use weft::ucan::UcanError;

/// Anything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The arguments are wrong in a way clap could not see (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The configuration file or a `WEFT_*` variable is wrong (exit 2); names the file and key,
    /// or the variable.
    #[error("{0}")]
    Config(String),
    /// A key file could not be read or written (exit 1).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A token is invalid (exit 1); followed by its contract error code.
    #[error("{} [{}]", .0, .0.code())]
    Ucan(#[from] UcanError),
    /// Any other failure of the command (exit 1).
    #[error("{0}")]
    Failed(String),
    /// The action was not allowed (exit 5). The text names the refusal itself.
    #[error("{0}")]
    Unauthorized(String),
    /// Nothing was found where something was asked for (exit 3).
    #[error("{0}")]
    NotFound(String),
    /// A peer or the mesh could not be reached (exit 7).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A call failed; its kind picks the exit code (3, 4, 5, 6 or 7).
    #[error(transparent)]
    Call(weft::CallError),
}

impl From<weft::Error> for CliError {
    fn from(e: weft::Error) -> Self {
        use weft::{Error, PublishError, SubscribeError};
        match e {
            Error::Publish(PublishError::Unauthorized(e)) => CliError::Unauthorized(e.to_string()),
            Error::Subscribe(SubscribeError::Unauthorized(e)) => {
                CliError::Unauthorized(e.to_string())
            }
            Error::Name(e) => CliError::Usage(e.to_string()),
            Error::Call(e) => CliError::Call(e),
            Error::Advertise(weft::AdvertiseError::Unauthorized(e)) => {
                CliError::Unauthorized(e.to_string())
            }
            Error::Net(e) => CliError::Usage(e.to_string()),
            other => CliError::Failed(other.to_string()),
        }
    }
}

impl CliError {
    pub(crate) const FAILED: u8 = 1;
    pub(crate) const USAGE: u8 = 2;

    /// Contract §5 (`docs/contract.md`): 0 ok, 1 invalid/failed, 2 usage, 3 not found, 4 timeout,
    /// 5 unauthorized, 6 remote error, 7 unavailable.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Config(_) => Self::USAGE,
            CliError::Key(_) | CliError::Ucan(_) | CliError::Failed(_) => Self::FAILED,
            CliError::NotFound(_) => 3,
            CliError::Unauthorized(_) => 5,
            CliError::Unavailable(_) => 7,
            CliError::Call(e) => match e {
                weft::CallError::NotFound(_) => 3,
                weft::CallError::Timeout => 4,
                weft::CallError::Unauthorized(_) => 5,
                weft::CallError::Remote { .. } => 6,
                _ => 7,
            },
        }
    }
}
