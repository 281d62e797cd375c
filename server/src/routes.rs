//! The HTTP API under `/api/v1`, its OpenAPI document, the health probes and the WebSocket
//! route (`/api/v1/ws`, served by [`crate::ws`]).
//!
//! Each submodule owns one resource and the SQL that serves it. Handlers are registered
//! through `utoipa-axum`, so the OpenAPI document at `/api/v1/openapi.json` is generated from
//! the same annotations that route the requests.

pub(crate) mod auth;
mod challenges;
pub(crate) mod classes;
mod clubs;
mod health;
mod leaderboards;
pub(crate) mod schools;
mod seasons;
mod stations;
mod submissions;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use schema::api::PageQuery;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{ApiError, ApiResult, error_response};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Carbon League API",
        description = "The real-time game backend of a provincial low-carbon schools programme. \
            Every error answers `{\"error\": {\"code\", \"message\", \"field\"?}}`. \
            Live leaderboards and requests also run over the WebSocket at `GET /api/v1/ws` \
            (JSON text frames; the first frame authenticates): see docs/protocol.md.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "auth", description = "Signing in, joining a class, signing out"),
        (name = "schools", description = "Schools and their staff"),
        (name = "classes", description = "Classes, join codes and rosters"),
        (name = "seasons", description = "League seasons"),
        (name = "clubs", description = "Clubs across the classes of a school, with join codes"),
        (name = "stations", description = "Stations showing rotating codes, and their displays"),
        (name = "league", description = "The behaviour catalogue, submissions and their verification"),
        (name = "challenges", description = "Class-, school- and club-versus challenges"),
        (name = "leaderboards", description = "Live boards and final standings"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes of `/api/v1` with their OpenAPI document.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(schools::router())
        .merge(classes::router())
        .merge(seasons::router())
        .merge(clubs::router())
        .merge(stations::router())
        .merge(submissions::router())
        .merge(challenges::router())
        .merge(leaderboards::router())
}

/// The whole HTTP router: probes, `/api/v1`, its OpenAPI document and the docs page.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", api_router())
        .merge(health::router())
        .split_for_parts();
    // The WebSocket is not an OpenAPI operation: docs/protocol.md documents it.
    api.route("/api/v1/ws", axum::routing::get(crate::ws::ws_handler))
        .merge(SwaggerUi::new("/api/v1/docs").url("/api/v1/openapi.json", openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The OpenAPI document, as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", api_router())
        .merge(health::router())
        .into_openapi()
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        "there is nothing at this address".into(),
        None,
    )
}

async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this address does not accept that method".into(),
        None,
    )
}

/// The default and the largest page size.
pub const DEFAULT_PAGE: u32 = 50;
/// The largest page size.
pub const MAX_PAGE: u32 = 200;

/// Validated pagination: how many rows to fetch (one more than the page, to know whether
/// another page follows) and the keyset cursor.
pub fn page_params(q: &PageQuery) -> ApiResult<(i64, Option<uuid::Uuid>)> {
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok((i64::from(limit), q.after))
}

/// Cuts the extra row off and sets the cursor.
pub fn into_page<T>(
    mut rows: Vec<T>,
    limit: i64,
    id: impl Fn(&T) -> uuid::Uuid,
) -> schema::api::Page<T> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let next_after = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(&id)
    } else {
        None
    };
    schema::api::Page {
        items: rows,
        next_after,
    }
}

/// Trims a free-text field and checks its length in characters.
pub fn text_field(field: &'static str, value: &str, max_chars: usize) -> ApiResult<String> {
    let trimmed = value.trim();
    let len = trimmed.chars().count();
    if len == 0 {
        return Err(ApiError::validation(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if len > max_chars {
        return Err(ApiError::validation(
            field,
            format!("{field} has at most {max_chars} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ApiError::validation(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}
