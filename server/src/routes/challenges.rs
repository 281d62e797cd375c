//! Challenges over HTTP; the logic lives in `league::challenges`.

use axum::extract::State;
use axum::http::StatusCode;
use schema::league::{Challenge, CreateChallenge, Participants};
use schema::{ChallengeId, ErrorBody, SeasonId};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::league::challenges;
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get))
        .routes(routes!(invite))
        .routes(routes!(accept))
        .routes(routes!(decline))
        .routes(routes!(end))
}

/// Which season's challenges.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SeasonQuery {
    /// The season (default: the active one).
    season_id: Option<SeasonId>,
}

/// Creates a challenge in the active season and invites its participants (classes, schools or
/// clubs by kind). Teachers and school admins create class and club battles; the programme
/// office and school admins create school battles. Participants the creator answers for take
/// part at once; the others' teachers or admins accept or decline.
#[utoipa::path(post, path = "/challenges", tag = "challenges", security(("bearer" = [])), request_body = CreateChallenge, responses(
    (status = 201, body = Challenge), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "`no_active_season`"), (status = 422, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<CreateChallenge>,
) -> ApiResult<(StatusCode, Json<Challenge>)> {
    Ok((
        StatusCode::CREATED,
        Json(challenges::create(&state, &principal.actor, &req).await?),
    ))
}

/// The challenges the caller takes part in or runs, newest first.
#[utoipa::path(get, path = "/challenges", tag = "challenges", security(("bearer" = [])), params(SeasonQuery), responses(
    (status = 200, body = Vec<Challenge>), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
))]
async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<SeasonQuery>,
) -> ApiResult<Json<Vec<Challenge>>> {
    Ok(Json(
        challenges::list(&state, &principal.actor, q.season_id).await?,
    ))
}

/// One challenge: status, participants, goal progress and the board to follow.
#[utoipa::path(get, path = "/challenges/{challenge_id}", tag = "challenges", security(("bearer" = [])),
    params(("challenge_id" = String, Path, description = "the challenge's id")), responses(
    (status = 200, body = Challenge), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<ChallengeId>,
) -> ApiResult<Json<Challenge>> {
    Ok(Json(challenges::get(&state, &principal.actor, id).await?))
}

/// Invites more participants (its creator or an admin).
#[utoipa::path(post, path = "/challenges/{challenge_id}/invite", tag = "challenges", security(("bearer" = [])),
    params(("challenge_id" = String, Path, description = "the challenge's id")), request_body = Participants, responses(
    (status = 200, body = Challenge), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn invite(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<ChallengeId>,
    Json(req): Json<Participants>,
) -> ApiResult<Json<Challenge>> {
    Ok(Json(
        challenges::invite(&state, &principal.actor, id, &req.participant_ids).await?,
    ))
}

/// An invited class's teacher (school or club: its admin) accepts.
#[utoipa::path(post, path = "/challenges/{challenge_id}/accept", tag = "challenges", security(("bearer" = [])),
    params(("challenge_id" = String, Path, description = "the challenge's id")), request_body = Participants, responses(
    (status = 200, body = Challenge), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody, description = "`not_invited`"), (status = 409, body = ErrorBody, description = "`invitation_closed`"),
))]
#[tracing::instrument(skip_all)]
async fn accept(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<ChallengeId>,
    Json(req): Json<Participants>,
) -> ApiResult<Json<Challenge>> {
    Ok(Json(
        challenges::answer(&state, &principal.actor, id, &req.participant_ids, true).await?,
    ))
}

/// An invited class's teacher (school or club: its admin) declines.
#[utoipa::path(post, path = "/challenges/{challenge_id}/decline", tag = "challenges", security(("bearer" = [])),
    params(("challenge_id" = String, Path, description = "the challenge's id")), request_body = Participants, responses(
    (status = 200, body = Challenge), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn decline(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<ChallengeId>,
    Json(req): Json<Participants>,
) -> ApiResult<Json<Challenge>> {
    Ok(Json(
        challenges::answer(&state, &principal.actor, id, &req.participant_ids, false).await?,
    ))
}

/// Ends a challenge early (the programme office, the owning school's admin, or its creator):
/// its final standings are written at once and pushed to its subscribers.
#[utoipa::path(post, path = "/challenges/{challenge_id}/end", tag = "challenges", security(("bearer" = [])),
    params(("challenge_id" = String, Path, description = "the challenge's id")), responses(
    (status = 200, body = Challenge), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`challenge_not_running`"),
))]
#[tracing::instrument(skip_all)]
async fn end(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<ChallengeId>,
) -> ApiResult<Json<Challenge>> {
    Ok(Json(
        challenges::end_early(&state, &principal.actor, id).await?,
    ))
}
