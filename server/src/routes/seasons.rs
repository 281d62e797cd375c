//! Seasons: the programme office creates, activates and closes them. The life-cycle rules
//! live in `game_rules::season`; the database also enforces "at most one active season" with a
//! partial unique index, so two concurrent activations cannot both win.

use axum::extract::State;
use axum::http::StatusCode;
use game_rules::season::{self, SchoolTimeZone, Transition};
use schema::api::{CreateSeason, Page, PageQuery, Season, SeasonStatus};
use schema::{ErrorBody, SeasonId};
use time::{Date, OffsetDateTime};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, violated_constraint};
use crate::extract::{Json, Path, Query};
use crate::league::standings;
use crate::routes::{into_page, page_params, text_field};
use crate::state::AppState;
use crate::store::{AsConn, query};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_season, list_seasons))
        .routes(routes!(get_season))
        .routes(routes!(activate_season))
        .routes(routes!(close_season))
}

/// A season as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct SeasonRow {
    id: SeasonId,
    name: String,
    starts_on: Date,
    ends_on: Date,
    timezone: String,
    status: String,
    created_at: OffsetDateTime,
    activated_at: Option<OffsetDateTime>,
    closed_at: Option<OffsetDateTime>,
}

/// The wire form of a stored season.
pub(crate) fn season_from_row(row: SeasonRow) -> Season {
    let status = match season::SeasonStatus::parse(&row.status) {
        Some(season::SeasonStatus::Active) => SeasonStatus::Active,
        Some(season::SeasonStatus::Closed) => SeasonStatus::Closed,
        _ => SeasonStatus::Draft,
    };
    Season {
        id: row.id,
        name: row.name,
        starts_on: row.starts_on,
        ends_on: row.ends_on,
        timezone: row.timezone,
        status,
        created_at: row.created_at,
        activated_at: row.activated_at,
        closed_at: row.closed_at,
    }
}

macro_rules! season_columns {
    () => {
        "id, name, starts_on, ends_on, timezone, status, created_at, activated_at, closed_at"
    };
}

async fn fetch_season(conn: &mut dyn AsConn, id: SeasonId, lock: bool) -> ApiResult<SeasonRow> {
    let lock = if lock {
        conn.as_conn().dialect().for_update()
    } else {
        ""
    };
    query(format!(
        "SELECT {} FROM seasons WHERE id = $1{lock}",
        season_columns!()
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(ApiError::NotFound("season"))
}

/// Creates a draft season (programme admin).
#[utoipa::path(post, path = "/seasons", tag = "seasons", security(("bearer" = [])), request_body = CreateSeason, responses(
    (status = 201, body = Season), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn create_season(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<CreateSeason>,
) -> ApiResult<(StatusCode, Json<Season>)> {
    principal.actor.require_programme_admin()?;
    let name = text_field("name", &req.name, 100)?;
    season::validate_days(req.starts_on, req.ends_on)
        .map_err(|e| ApiError::validation("ends_on", e.to_string()))?;
    let tz = match req.timezone.as_deref() {
        None => SchoolTimeZone::default(),
        Some(name) => SchoolTimeZone::parse(name)
            .map_err(|e| ApiError::validation("timezone", e.to_string()))?,
    };
    let row: SeasonRow = query(concat!(
        "INSERT INTO seasons (id, name, starts_on, ends_on, timezone) VALUES ($1, $2, $3, $4, $5) RETURNING ",
        season_columns!()
    ))
    .bind(SeasonId::new())
    .bind(&name)
    .bind(req.starts_on)
    .bind(req.ends_on)
    .bind(tz.name())
    .fetch_one(&state.db)
    .await?;
    tracing::info!(season.id = %row.id, "season created");
    Ok((StatusCode::CREATED, Json(season_from_row(row))))
}

/// Lists seasons, oldest first (anyone signed in).
#[utoipa::path(get, path = "/seasons", tag = "seasons", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = Page<Season>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
))]
async fn list_seasons(
    State(state): State<AppState>,
    _principal: Principal,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<Season>>> {
    let (limit, after) = page_params(&q)?;
    let rows: Vec<SeasonRow> = query(concat!(
        "SELECT ",
        season_columns!(),
        " FROM seasons WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2"
    ))
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(
        into_page(rows, limit, |r| r.id.0).map(season_from_row),
    ))
}

/// One season (anyone signed in).
#[utoipa::path(get, path = "/seasons/{season_id}", tag = "seasons", security(("bearer" = [])),
    params(("season_id" = String, Path, description = "the season's id")), responses(
    (status = 200, body = Season), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
))]
async fn get_season(
    State(state): State<AppState>,
    _principal: Principal,
    Path(id): Path<SeasonId>,
) -> ApiResult<Json<Season>> {
    let mut conn = state.db.acquire().await?;
    Ok(Json(season_from_row(
        fetch_season(&mut conn, id, false).await?,
    )))
}

/// Activates a draft season; refused while another season is active.
#[utoipa::path(post, path = "/seasons/{season_id}/activate", tag = "seasons", security(("bearer" = [])),
    params(("season_id" = String, Path, description = "the season's id")), responses(
    (status = 200, body = Season), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "`season_already_active` (another one is) or `season_closed`"),
))]
#[tracing::instrument(skip_all)]
async fn activate_season(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<SeasonId>,
) -> ApiResult<Json<Season>> {
    principal.actor.require_programme_admin()?;
    let mut tx = state.db.begin().await?;
    let row = fetch_season(&mut tx, id, true).await?;
    let current = season::SeasonStatus::parse(&row.status).unwrap_or(season::SeasonStatus::Draft);
    let (another_active,): (bool,) =
        query("SELECT EXISTS (SELECT 1 FROM seasons WHERE status = 'active' AND id <> $1)")
            .bind(id)
            .fetch_one(&mut tx)
            .await?;
    let transition = season::activate(current, another_active).map_err(|e| match e {
        season::SeasonError::AnotherActive => {
            ApiError::Conflict("season_already_active", e.to_string())
        }
        _ => ApiError::Conflict("season_closed", e.to_string()),
    })?;
    let row = match transition {
        Transition::Unchanged => row,
        Transition::To(status) => query(concat!(
            "UPDATE seasons SET status = $2, activated_at = $3 WHERE id = $1 RETURNING ",
            season_columns!()
        ))
        .bind(id)
        .bind(status.as_str())
        .bind(time::OffsetDateTime::now_utc())
        .fetch_one(&mut tx)
        .await
        .map_err(|e| match violated_constraint(&e) {
            Some("seasons_one_active") => ApiError::Conflict(
                "season_already_active",
                "another season is already active; close it first".into(),
            ),
            _ => e.into(),
        })?,
    };
    tx.commit().await?;
    tracing::info!(season.id = %id, "season activated");
    Ok(Json(season_from_row(row)))
}

/// Closes a season: scoring stops, the final standings of every board (and of its open
/// challenges) are written to Postgres, and its live boards are emptied. Closing a closed season
/// is harmless and answers it unchanged.
#[utoipa::path(post, path = "/seasons/{season_id}/close", tag = "seasons", security(("bearer" = [])),
    params(("season_id" = String, Path, description = "the season's id")), responses(
    (status = 200, body = Season), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn close_season(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<SeasonId>,
) -> ApiResult<Json<Season>> {
    principal.actor.require_programme_admin()?;
    let mut tx = state.db.begin().await?;
    // Wait for every scoring write in flight, and hold new ones off until the standings are
    // written: they then find the season closed.
    tx.lock(crate::league::SEASON_LOCK).await?;
    let row = fetch_season(&mut tx, id, true).await?;
    let current = season::SeasonStatus::parse(&row.status).unwrap_or(season::SeasonStatus::Draft);
    let (row, finalised) = match season::close(current) {
        Transition::Unchanged => (row, None),
        Transition::To(status) => {
            let row: SeasonRow = query(concat!(
                "UPDATE seasons SET status = $2, closed_at = $3 WHERE id = $1 RETURNING ",
                season_columns!()
            ))
            .bind(id)
            .bind(status.as_str())
            .bind(time::OffsetDateTime::now_utc())
            .fetch_one(&mut tx)
            .await?;
            let challenges = standings::close_season(&mut tx, id).await?;
            (row, Some(challenges))
        }
    };
    tx.commit().await?;
    if let Some(challenges) = finalised {
        tracing::info!(season.id = %id, "season closed; final standings written");
        standings::after_close(&state, id, &challenges).await;
    }
    Ok(Json(season_from_row(row)))
}
