//! The one application error type and how it becomes an HTTP answer.
//!
//! Every variant documents its status. Internal errors are logged once, here, with their cause;
//! the client only ever sees the `{"error": {"code", "message"}}` envelope and never an internal
//! detail. A database or Redis that is down or saturated is a 503, never a 500.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schema::{ErrorBody, ErrorDetail};

/// Anything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON, or not the JSON media type.
    #[error("{0}")]
    BadRequest(&'static str, String),
    /// 401: no token, or a token that is unknown, expired or revoked.
    #[error("{1}")]
    Unauthorized(&'static str, &'static str),
    /// 403: authenticated but not allowed.
    #[error("you are not allowed to do this")]
    Forbidden,
    /// 404: nothing there, or nothing the caller may see.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 404 with a specific code and message.
    #[error("{1}")]
    NotFoundWith(&'static str, &'static str),
    /// 409: the request clashes with the current state.
    #[error("{1}")]
    Conflict(&'static str, String),
    /// 415: the body is not declared as JSON.
    #[error("send the body as JSON with Content-Type: application/json")]
    UnsupportedMediaType,
    /// 413: the body is larger than `server.max_body_bytes`.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// 422: a field fails validation; the field is named.
    #[error("{message}")]
    Validation {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// 422: a game rule refuses the request (over the daily cap, outside the window, a wrong
    /// station code…); the code says which rule.
    #[error("{1}")]
    Refused(&'static str, String),
    /// 429: too many attempts; retry after the given seconds.
    #[error("too many attempts; try again in {0} s")]
    TooManyRequests(u64),
    /// 503: Postgres is down or saturated.
    #[error("the database is unavailable; try again shortly")]
    DatabaseUnavailable(#[source] sqlx::Error),
    /// 503: Redis is down or saturated.
    #[error("the leaderboard store is unavailable; try again shortly")]
    RedisUnavailable(String),
    /// 500: a bug or an unexpected failure; logged with its cause.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// The stable code of this error, as in the envelope.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// A validation error on `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(code, _) => (StatusCode::BAD_REQUEST, code),
            Self::Unauthorized(code, _) => (StatusCode::UNAUTHORIZED, code),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::NotFoundWith(code, _) => (StatusCode::NOT_FOUND, code),
            Self::Conflict(code, _) => (StatusCode::CONFLICT, code),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Self::Refused(code, _) => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            Self::DatabaseUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            Self::RedisUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "redis_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

/// Builds the error envelope; used for errors raised outside handlers too (404 fallback, 405).
pub fn error_response(
    status: StatusCode,
    code: &str,
    message: String,
    field: Option<String>,
) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message,
            field,
        },
    };
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            Self::Internal(err) => tracing::error!(error = ?err, "request failed"),
            Self::DatabaseUnavailable(err) => tracing::warn!(error = %err, "database unavailable"),
            Self::RedisUnavailable(err) => tracing::warn!(error = %err, "redis unavailable"),
            _ => {}
        }
        let field = match &self {
            Self::Validation { field, .. } => Some(field.clone()),
            _ => None,
        };
        let mut response = error_response(status, code, self.to_string(), field);
        if let Self::TooManyRequests(secs) = self
            && let Ok(v) = secs.to_string().parse()
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::DatabaseUnavailable(err),
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // Postgres: admin_shutdown, crash_shutdown, cannot_connect_now, query_canceled
                // (statement_timeout), too_many_connections: all mean "try again shortly".
                Some("57P01" | "57P02" | "57P03" | "57014" | "53300") => {
                    Self::DatabaseUnavailable(err)
                }
                // SQLite: busy, locked, disk I/O, disk full, cannot open.
                Some(code)
                    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                        && crate::store::sqlite_code_is_transient(code) =>
                {
                    Self::DatabaseUnavailable(err)
                }
                _ => Self::Internal(anyhow::Error::new(err)),
            },
            _ => Self::Internal(anyhow::Error::new(err)),
        }
    }
}

impl From<bb8::RunError<redis::RedisError>> for ApiError {
    fn from(err: bb8::RunError<redis::RedisError>) -> Self {
        Self::RedisUnavailable(err.to_string())
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(err: redis::RedisError) -> Self {
        Self::RedisUnavailable(err.to_string())
    }
}

/// The name of the constraint a database error broke, if any, as the Postgres schema names it
/// (SQLite errors are translated: see [`crate::store::sqlite_constraint`]).
pub fn violated_constraint(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) => db
            .constraint()
            .or_else(|| crate::store::sqlite_constraint(db.message())),
        _ => None,
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
