//! Request extractors whose rejections speak our error shape.
//!
//! axum's own `Json`, `Path` and `Query` reject with plain-text bodies; these wrappers answer
//! with the `{"error": …}` envelope instead: 400 for JSON that does not parse, 415 for a body
//! that is not JSON, 413 for one too large, and 422 naming the field for JSON of the wrong shape
//! (unknown field, missing field, wrong type).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body (and a JSON response).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime.eq_ignore_ascii_case("application/json")
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::BadRequest(
                    "unreadable_body",
                    "the request body could not be read".into(),
                )
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses JSON the way every endpoint (and the WebSocket) does, with errors naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so "{} trailing" is malformed JSON rather than a missing field.
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| json_error(".", &e))?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        json_error(&path, &inner)
    })?;
    Ok(value)
}

fn json_error(path: &str, err: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::BadRequest(
            "malformed_json",
            format!("the body is not valid JSON: {err}"),
        ),
        Category::Data => {
            let message = err.to_string();
            // serde names unknown and missing fields in backticks; a type error names the path.
            let named = message
                .strip_prefix("unknown field `")
                .or_else(|| message.strip_prefix("missing field `"))
                .and_then(|rest| rest.split('`').next());
            let field = match (named, path) {
                (Some(name), "." | "") => name.to_owned(),
                (Some(name), path) if path == name || path.ends_with(&format!(".{name}")) => {
                    path.to_owned()
                }
                (Some(name), parent) => format!("{parent}.{name}"),
                (None, "." | "") => "body".to_owned(),
                (None, path) => path.to_owned(),
            };
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            ApiError::validation(field.clone(), format!("{field}: {message}"))
        }
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters; a malformed one (not a UUID) is a 404: there is nothing at that address.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|_| ApiError::NotFound("resource"))
    }
}

/// Query parameters; a bad one is a 422 naming it.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|err| {
                let message = err.inner().to_string();
                let field = message
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split('`').next())
                    .map_or_else(|| err.path().to_string(), str::to_owned);
                ApiError::validation(field.clone(), format!("query parameter {field}: {message}"))
            })
    }
}
