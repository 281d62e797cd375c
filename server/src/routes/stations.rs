//! Stations: canteen lines and sorting points that show a rotating six-digit code.
//!
//! A school admin or a teacher registers a station for behaviours that accept station
//! verification. Each station holds a 256-bit secret, stored in Postgres and never sent to
//! anyone; its code is derived from the secret and the current time window (see
//! `game_rules::station`). The screen at the station signs in with a display token of its own,
//! which may read that station's code and nothing else. Students never read a code over the
//! API: they must be at the station to see it.

use crate::store::{Conn, TextList, query};
use axum::extract::State;
use axum::http::StatusCode;
use game_rules::catalogue::VerificationMethod;
use rand::RngExt as _;
use schema::api::{Page, PageQuery, Role, TokenResponse};
use schema::league::{CreateStation, Station, StationCode};
use schema::{ErrorBody, SchoolId, StationId, UserId};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Actor, Principal, TokenOwner, issue_token};
use crate::error::{ApiError, ApiResult, violated_constraint};
use crate::extract::{Json, Path, Query};
use crate::league::access;
use crate::routes::{into_page, page_params, text_field};
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_station, list_stations))
        .routes(routes!(get_station))
        .routes(routes!(display_token))
        .routes(routes!(current_code))
}

/// The longest station name, in characters.
const MAX_NAME_CHARS: usize = 60;
/// The code rotation period when none is given, seconds.
const DEFAULT_WINDOW_SECS: u32 = 60;
/// The allowed code rotation periods, seconds.
const WINDOW_SECS: std::ops::RangeInclusive<u32> = 15..=3600;

/// A station as stored, without its secret.
#[derive(sqlx::FromRow)]
struct StationRow {
    id: StationId,
    school_id: SchoolId,
    name: String,
    #[sqlx(try_from = "TextList")]
    behaviors: Vec<String>,
    window_secs: i32,
    created_at: OffsetDateTime,
}

impl StationRow {
    fn into_wire(self) -> Station {
        Station {
            id: self.id,
            school_id: self.school_id,
            name: self.name,
            behaviors: self.behaviors,
            // The table's check keeps it within 15..=3600.
            window_secs: u32::try_from(self.window_secs).unwrap_or(DEFAULT_WINDOW_SECS),
            created_at: self.created_at,
        }
    }
}

/// The columns of [`StationRow`]: never the secret.
macro_rules! station_columns {
    () => {
        "id, school_id, name, behaviors, window_secs, created_at"
    };
}

async fn fetch_station(db: impl Into<Conn<'_>>, id: StationId) -> ApiResult<StationRow> {
    query(concat!(
        "SELECT ",
        station_columns!(),
        " FROM stations WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(ApiError::NotFound("station"))
}

/// A school admin or teacher of a school: who may register stations and run their screens.
fn school_staff(actor: &Actor) -> Option<(UserId, SchoolId)> {
    match *actor {
        Actor::User {
            id,
            role: Role::SchoolAdmin | Role::Teacher,
            school_id: Some(school),
        } => Some((id, school)),
        _ => None,
    }
}

/// The behaviours a station may verify: known, accepting station verification, each once (in
/// the order given).
fn station_behaviors(state: &AppState, requested: &[String]) -> ApiResult<Vec<String>> {
    if requested.is_empty() {
        return Err(ApiError::validation(
            "behaviors",
            "a station verifies at least one behaviour",
        ));
    }
    let mut accepted: Vec<String> = Vec::with_capacity(requested.len());
    for id in requested {
        let Some(behavior) = state.league.catalogue.get(id) else {
            return Err(ApiError::validation(
                "behaviors",
                format!(
                    "`{}` is not a behaviour of the catalogue",
                    id.chars().take(64).collect::<String>()
                ),
            ));
        };
        if !behavior.verification.contains(&VerificationMethod::Station) {
            return Err(ApiError::validation(
                "behaviors",
                format!("`{id}` cannot be verified by a station"),
            ));
        }
        if !accepted.contains(id) {
            accepted.push(id.clone());
        }
    }
    Ok(accepted)
}

/// Registers a station in the caller's school, with a fresh secret.
#[utoipa::path(post, path = "/stations", tag = "stations", security(("bearer" = [])), request_body = CreateStation, responses(
    (status = 201, body = Station),
    (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "only school admins and teachers register stations"),
    (status = 409, body = ErrorBody, description = "`station_exists`: a station of that name already exists in the school"),
    (status = 422, body = ErrorBody, description = "`name`, `behaviors` (unknown, or not verifiable by a station) or `window_secs` (15 to 3600) is invalid"),
))]
#[tracing::instrument(skip_all)]
async fn create_station(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<CreateStation>,
) -> ApiResult<(StatusCode, Json<Station>)> {
    let (user, school) = school_staff(&principal.actor).ok_or(ApiError::Forbidden)?;
    let name = text_field("name", &req.name, MAX_NAME_CHARS)?;
    let behaviors = station_behaviors(&state, &req.behaviors)?;
    let window_secs = req.window_secs.unwrap_or(DEFAULT_WINDOW_SECS);
    if !WINDOW_SECS.contains(&window_secs) {
        return Err(ApiError::validation(
            "window_secs",
            format!(
                "window_secs must be between {} and {}",
                WINDOW_SECS.start(),
                WINDOW_SECS.end()
            ),
        ));
    }
    let secret: [u8; 32] = rand::rng().random();
    let id = StationId::new();
    let row: StationRow = query(concat!(
        "INSERT INTO stations (id, school_id, name, behaviors, secret, window_secs, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
        station_columns!()
    ))
    .bind(id)
    .bind(school)
    .bind(&name)
    .bind(TextList(behaviors.clone()))
    .bind(secret.as_slice())
    .bind(i32::try_from(window_secs).unwrap_or(i32::MAX))
    .bind(user)
    .fetch_one(&state.db)
    .await
    .map_err(|e| match violated_constraint(&e) {
        Some("stations_school_name_key") => ApiError::Conflict(
            "station_exists",
            "a station of that name already exists in the school".into(),
        ),
        _ => e.into(),
    })?;
    tracing::info!(station.id = %id, school.id = %school, "station registered");
    Ok((StatusCode::CREATED, Json(row.into_wire())))
}

/// Lists stations: those of the caller's school for its admins and teachers, every station for
/// the programme office.
#[utoipa::path(get, path = "/stations", tag = "stations", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = Page<Station>), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "students and station displays"),
    (status = 422, body = ErrorBody),
))]
async fn list_stations(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<Station>>> {
    let (limit, after) = page_params(&q)?;
    let school = match principal.actor {
        Actor::User {
            role: Role::ProgrammeAdmin,
            ..
        } => None,
        actor => Some(school_staff(&actor).ok_or(ApiError::Forbidden)?.1),
    };
    let rows: Vec<StationRow> = query(concat!(
        "SELECT ",
        station_columns!(),
        " FROM stations WHERE ($1 IS NULL OR school_id = $1) AND ($2 IS NULL OR id > $2) \
         ORDER BY id LIMIT $3"
    ))
    .bind(school)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(
        into_page(rows, limit, |r| r.id.0).map(StationRow::into_wire),
    ))
}

/// One station: for its school's staff, the programme office and its own display.
#[utoipa::path(get, path = "/stations/{station_id}", tag = "stations", security(("bearer" = [])),
    params(("station_id" = String, Path, description = "the station's id")), responses(
    (status = 200, body = Station), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
async fn get_station(
    State(state): State<AppState>,
    principal: Principal,
    Path(station_id): Path<StationId>,
) -> ApiResult<Json<Station>> {
    access::may_see_station(&state, &principal.actor, station_id).await?;
    Ok(Json(
        fetch_station(&state.db, station_id).await?.into_wire(),
    ))
}

/// Issues a token for the station's screen (valid as long as a student's device token). The
/// screen may read and follow this station's code, and nothing else.
#[utoipa::path(post, path = "/stations/{station_id}/display-token", tag = "stations", security(("bearer" = [])),
    params(("station_id" = String, Path, description = "the station's id")), responses(
    (status = 201, body = TokenResponse, description = "shown once; send as `Authorization: Bearer <token>` from the screen"),
    (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "only the school admins and teachers of the station's school"),
    (status = 404, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn display_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(station_id): Path<StationId>,
) -> ApiResult<(StatusCode, Json<TokenResponse>)> {
    let station = fetch_station(&state.db, station_id).await?;
    match school_staff(&principal.actor) {
        Some((_, school)) if school == station.school_id => {}
        _ => return Err(ApiError::Forbidden),
    }
    let (token, expires_at) = issue_token(
        &state.db,
        TokenOwner::Station(station_id),
        state.settings.auth.student_token_ttl_secs,
    )
    .await?;
    tracing::info!(station.id = %station_id, "station display token issued");
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse { token, expires_at }),
    ))
}

/// The station's current code: for its own display and its school's staff. Students get a 403:
/// they read the code off the screen, at the station.
#[utoipa::path(get, path = "/stations/{station_id}/code", tag = "stations", security(("bearer" = [])),
    params(("station_id" = String, Path, description = "the station's id")), responses(
    (status = 200, body = StationCode), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "students, other stations' displays, staff of other schools"),
    (status = 404, body = ErrorBody),
))]
async fn current_code(
    State(state): State<AppState>,
    principal: Principal,
    Path(station_id): Path<StationId>,
) -> ApiResult<Json<StationCode>> {
    access::may_see_station(&state, &principal.actor, station_id).await?;
    Ok(Json(
        access::station_code(&state, station_id, OffsetDateTime::now_utc()).await?,
    ))
}
