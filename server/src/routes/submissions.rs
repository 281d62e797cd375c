//! The behaviour catalogue, submissions and their verification over HTTP. The logic lives in
//! `league::submissions`, shared with the WebSocket.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use schema::api::{Page, PageQuery};
use schema::league::{
    Behavior, BulkResult, Decide, Revoke, Submission, SubmitBehavior, TeacherSubmit,
};
use schema::{ClassId, ErrorBody, SubmissionId};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::league::submissions;
use crate::routes::page_params;
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(behaviors))
        .routes(routes!(submit))
        .routes(routes!(my_submissions))
        .routes(routes!(get_submission))
        .routes(routes!(teacher_submit))
        .routes(routes!(moderation))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(confirm))
        .routes(routes!(revoke))
}

/// The behaviour catalogue: units, emission factors with their sources, points and caps.
#[utoipa::path(get, path = "/behaviors", tag = "league", responses((status = 200, body = Vec<Behavior>)))]
async fn behaviors(State(state): State<AppState>) -> Json<Vec<Behavior>> {
    Json(
        state
            .league
            .catalogue
            .iter()
            .map(|b| Behavior {
                id: b.id.as_str().to_owned(),
                name_zh: b.name_zh.clone(),
                name_en: b.name_en.clone(),
                unit: b.unit.as_str().to_owned(),
                mg_co2e_per_unit: b.mg_co2e_per_unit,
                points_per_unit: b.points_per_unit,
                max_quantity_per_submission: b.max_quantity_per_submission,
                daily_cap_per_student: b.daily_cap_per_student,
                verification: b
                    .verification
                    .iter()
                    .map(|m| m.as_str().to_owned())
                    .collect(),
                factor_source: b.factor_source.clone(),
                factor_version: b.factor_version.clone(),
            })
            .collect(),
    )
}

/// A student reports a behaviour. Committed before the answer; a retry with the same
/// `idempotency_key` returns the first answer (header `Idempotent-Replayed: true`) and never
/// counts twice. With a valid station code it is verified at once; otherwise it waits for the
/// teacher or for classmates.
#[utoipa::path(post, path = "/submissions", tag = "league", security(("bearer" = [])), request_body = SubmitBehavior,
    responses(
        (status = 201, body = Submission),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "only students submit here"),
        (status = 409, body = ErrorBody, description = "`no_active_season`"),
        (status = 422, body = ErrorBody, description = "`unknown_behavior`, `quantity_out_of_range`, `over_daily_cap`, \
            `in_the_future`, `too_late`, `outside_season`, `invalid_station_code`, `station_code_used`, \
            `station_not_accepted`, `validation_failed`"),
    ))]
#[tracing::instrument(skip_all)]
async fn submit(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<SubmitBehavior>,
) -> ApiResult<Response> {
    let (submission, replayed) = submissions::submit(&state, &principal.actor, &req).await?;
    let mut response = (StatusCode::CREATED, Json(submission)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The student's own submissions, newest first (up to 200).
#[utoipa::path(get, path = "/me/submissions", tag = "league", security(("bearer" = [])), responses(
    (status = 200, body = Vec<Submission>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
))]
async fn my_submissions(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<Json<Vec<Submission>>> {
    Ok(Json(
        submissions::mine(&state, &principal.actor, 200).await?,
    ))
}

/// One submission: its student, their classmates, and their class's staff.
#[utoipa::path(get, path = "/submissions/{submission_id}", tag = "league", security(("bearer" = [])),
    params(("submission_id" = String, Path, description = "the submission's id")), responses(
    (status = 200, body = Submission), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
async fn get_submission(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<SubmissionId>,
) -> ApiResult<Json<Submission>> {
    Ok(Json(submissions::get(&state, &principal.actor, id).await?))
}

/// The teacher enters a behaviour for roster students (one, some, or the whole class): verified
/// at once. Each student's part is checked on its own; refusals are listed.
#[utoipa::path(post, path = "/classes/{class_id}/submissions", tag = "league", security(("bearer" = [])),
    params(("class_id" = String, Path, description = "the class's id")), request_body = TeacherSubmit, responses(
    (status = 201, body = BulkResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn teacher_submit(
    State(state): State<AppState>,
    principal: Principal,
    Path(class): Path<ClassId>,
    Json(req): Json<TeacherSubmit>,
) -> ApiResult<(StatusCode, Json<BulkResult>)> {
    let result = submissions::teacher_submit(&state, &principal.actor, class, &req).await?;
    Ok((StatusCode::CREATED, Json(result)))
}

/// The class's moderation queue: pending submissions, oldest first (its teacher and school admin).
#[utoipa::path(get, path = "/classes/{class_id}/moderation", tag = "league", security(("bearer" = [])),
    params(("class_id" = String, Path, description = "the class's id"), PageQuery), responses(
    (status = 200, body = Page<Submission>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
async fn moderation(
    State(state): State<AppState>,
    principal: Principal,
    Path(class): Path<ClassId>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<Submission>>> {
    let (limit, after) = page_params(&q)?;
    Ok(Json(
        submissions::moderation_queue(&state, &principal.actor, class, limit, after).await?,
    ))
}

/// The teacher approves pending submissions (1 to 500): they score at once on every board.
#[utoipa::path(post, path = "/submissions/approve", tag = "league", security(("bearer" = [])), request_body = Decide, responses(
    (status = 200, body = BulkResult, description = "approved submissions, and refusals (`not_pending`, `forbidden`, `season_closed`, `not_found`)"),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn approve(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<Decide>,
) -> ApiResult<Json<BulkResult>> {
    Ok(Json(
        submissions::decide(&state, &principal.actor, &req.submission_ids, true).await?,
    ))
}

/// The teacher rejects pending submissions (1 to 500): they never score.
#[utoipa::path(post, path = "/submissions/reject", tag = "league", security(("bearer" = [])), request_body = Decide, responses(
    (status = 200, body = BulkResult), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn reject(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<Decide>,
) -> ApiResult<Json<BulkResult>> {
    Ok(Json(
        submissions::decide(&state, &principal.actor, &req.submission_ids, false).await?,
    ))
}

/// A classmate confirms a pending submission (never one's own; one vote each). Enough
/// confirmations verify it.
#[utoipa::path(post, path = "/submissions/{submission_id}/confirm", tag = "league", security(("bearer" = [])),
    params(("submission_id" = String, Path, description = "the submission's id")), responses(
    (status = 200, body = Submission), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "`self_confirmation`, `already_confirmed`, `peer_not_accepted`, `not_pending`, `season_closed`"),
))]
#[tracing::instrument(skip_all)]
async fn confirm(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<SubmissionId>,
) -> ApiResult<Json<Submission>> {
    Ok(Json(
        submissions::confirm(&state, &principal.actor, id).await?,
    ))
}

/// The teacher takes back a verified submission: its points come off every board.
#[utoipa::path(post, path = "/submissions/{submission_id}/revoke", tag = "league", security(("bearer" = [])),
    params(("submission_id" = String, Path, description = "the submission's id")), request_body = Revoke, responses(
    (status = 200, body = Submission), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "`not_verified`, `season_closed`"),
))]
#[tracing::instrument(skip_all)]
async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<SubmissionId>,
    Json(req): Json<Revoke>,
) -> ApiResult<Json<Submission>> {
    Ok(Json(
        submissions::revoke(&state, &principal.actor, id, req.reason.as_deref()).await?,
    ))
}
