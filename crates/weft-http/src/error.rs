//! Every way a request fails, and the status and JSON body each becomes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A failed request: answered with its status and `{"error": CODE, "message": TEXT}` (and
/// `"code"`, the handler's own, for a remote error).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request itself is wrong (bad JSON, bad name, bad parameter).
    #[error("{0}")]
    BadRequest(String),
    /// 401: no usable credentials (missing, malformed, badly signed, expired, revoked, or
    /// delegated to someone other than this node). `code` is the UCAN error code.
    #[error("{code}: {message}")]
    Unauthenticated {
        /// The contract code (`unauthorized`, `expired`, `wrongAudience`, …).
        code: &'static str,
        /// What was wrong.
        message: String,
    },
    /// 403: a valid chain that does not grant this action here.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such realm on this node, endpoint, or procedure in the realm.
    #[error("{0}")]
    NotFound(String),
    /// 405: the endpoint exists, not with this method.
    #[error("this endpoint does not take that method")]
    MethodNotAllowed,
    /// 413: the body is larger than the limit.
    #[error("{0}")]
    TooLarge(String),
    /// 502: the procedure's handler returned an error.
    #[error("{code}: {message}")]
    Remote {
        /// The handler's code.
        code: String,
        /// The handler's message.
        message: String,
    },
    /// 502: the mesh could not carry the request (provider gone, node stopping).
    #[error("{0}")]
    Unavailable(String),
    /// 504: no reply within the call's timeout.
    #[error("no reply within the timeout")]
    Timeout,
    /// 429: the gateway's clients have had too many new chains verified lately; try again.
    #[error("{0}")]
    Busy(String),
    /// 503: the gateway holds as many event streams as it allows.
    #[error("{0}")]
    Full(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Remote { .. } | ApiError::Unavailable(_) => StatusCode::BAD_GATEWAY,
            ApiError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Full(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn code(&self) -> &str {
        match self {
            ApiError::BadRequest(_) => "badRequest",
            ApiError::Unauthenticated { code, .. } => code,
            ApiError::Forbidden(_) => "unauthorized",
            ApiError::NotFound(_) => "notFound",
            ApiError::MethodNotAllowed => "methodNotAllowed",
            ApiError::TooLarge(_) => "tooLarge",
            ApiError::Remote { .. } => "remote",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Timeout => "timeout",
            ApiError::Busy(_) | ApiError::Full(_) => "limit",
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Unauthenticated { message, .. } | ApiError::Remote { message, .. } => {
                message.clone()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code(), "message": self.message() });
        if let ApiError::Remote { code, .. } = &self {
            body["code"] = json!(code);
        }
        let mut response = (self.status(), axum::Json(body)).into_response();
        if matches!(self, ApiError::Unauthenticated { .. }) {
            // RFC 6750: a 401 names the scheme it wants.
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<weft::AuthError> for ApiError {
    /// A chain that is fine but does not reach far enough is forbidden; any other failure means
    /// the credentials themselves are not acceptable.
    fn from(e: weft::AuthError) -> Self {
        match e {
            weft::AuthError::Unauthorized(message) => ApiError::Forbidden(message),
            weft::AuthError::Limit(message) => ApiError::Busy(message),
            other => ApiError::Unauthenticated {
                code: other.code(),
                message: other.to_string(),
            },
        }
    }
}

impl From<weft::Error> for ApiError {
    fn from(e: weft::Error) -> Self {
        use weft::{CallError, Error, PublishError, SubscribeError};
        match e {
            Error::Name(e) => ApiError::BadRequest(e.to_string()),
            Error::Json(e) => ApiError::BadRequest(format!("not JSON: {e}")),
            Error::Publish(PublishError::Unauthorized(e))
            | Error::Subscribe(SubscribeError::Unauthorized(e)) => e.into(),
            Error::Publish(e @ PublishError::TooLarge { .. }) => ApiError::TooLarge(e.to_string()),
            Error::Call(CallError::NotFound(what)) => {
                ApiError::NotFound(format!("no provider of {what}"))
            }
            Error::Call(CallError::Timeout) => ApiError::Timeout,
            Error::Call(CallError::Unauthorized(message)) => ApiError::Forbidden(message),
            Error::Call(CallError::Remote { code, message }) => ApiError::Remote { code, message },
            Error::Call(CallError::Unavailable(message)) => ApiError::Unavailable(message),
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}
