//! `/healthz` (the process lives) and `/readyz` (the database and, when configured, Redis
//! answer).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schema::ErrorBody;
use schema::api::Readiness;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::error_response;
use crate::extract::Json;
use crate::state::{AppState, ping_database, ping_redis};

/// How long a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// Liveness: 200 while the process lives.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "alive")))]
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: 200 only while the database and (when configured) Redis answer; otherwise 503
/// naming which does not.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Readiness),
    (status = 503, body = ErrorBody, description = "The database or Redis does not answer; the message names it"),
))]
async fn readyz(State(state): State<AppState>) -> Response {
    let backend = state.db.dialect().name();
    let redis_probe = async {
        match &state.redis {
            Some(pool) => ping_redis(pool, PROBE_TIMEOUT).await.is_ok(),
            None => true,
        }
    };
    let (db, redis_ok) = tokio::join!(ping_database(&state.db, PROBE_TIMEOUT), redis_probe);
    let down: Vec<&str> = [(backend, db.is_ok()), ("redis", redis_ok)]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect();
    if down.is_empty() {
        return Json(Readiness {
            database: backend.into(),
            database_status: "ok".into(),
            redis: if state.redis.is_some() {
                "ok"
            } else {
                "in_process"
            }
            .into(),
        })
        .into_response();
    }
    let code = match down.as_slice() {
        ["postgres"] => "postgres_unavailable",
        ["sqlite"] => "sqlite_unavailable",
        ["redis"] => "redis_unavailable",
        _ => "dependencies_unavailable",
    };
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        code,
        format!("not ready: {} unavailable", down.join(" and ")),
        None,
    )
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format")))]
async fn metrics() -> String {
    crate::metrics::render().await
}
