//! Leaderboards over HTTP: top-N, "around me" and ranks, live from the board store during the
//! season, from Postgres' final standings after it (or after its challenge) closed.

use axum::extract::State;
use schema::league::Board;
use schema::{ErrorBody, SeasonId};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::league::access::may_read_board;
use crate::league::boards::BoardKey;
use crate::league::standings::{View, read_board, season_for};
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(board))
}

/// What part of a board to read.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct BoardQuery {
    /// The season (default: the active one).
    season_id: Option<SeasonId>,
    /// The top rows, 1 to 100 (default 10).
    limit: Option<u32>,
    /// Centre on this student, class, school or club instead of the top.
    around: Option<uuid::Uuid>,
    /// Rows above and below `around`, 0 to 25 (default 3).
    k: Option<u32>,
}

/// A leaderboard: `class:<id>` (students in a class), `school:<id>` (classes in a school, per
/// capita), `province` (schools, per capita), `challenge:<id>:per_capita` and
/// `challenge:<id>:total`, `club:<id>` (students in a club), `school:<id>:clubs` (clubs, per
/// capita). Ties go to whoever reached the score first.
#[utoipa::path(get, path = "/leaderboards/{board}", tag = "leaderboards", security(("bearer" = [])),
    params(("board" = String, Path, description = "the board, e.g. `class:<id>` or `province`"), BoardQuery), responses(
    (status = 200, body = Board), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "`no_active_season`"), (status = 422, body = ErrorBody),
))]
async fn board(
    State(state): State<AppState>,
    principal: Principal,
    Path(board): Path<String>,
    Query(q): Query<BoardQuery>,
) -> ApiResult<Json<Board>> {
    let board: BoardKey = board
        .parse()
        .map_err(|e: crate::league::boards::UnknownBoard| {
            ApiError::validation("board", e.to_string())
        })?;
    let limit = q.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::validation(
            "limit",
            "limit must be between 1 and 100",
        ));
    }
    let k = q.k.unwrap_or(3);
    if k > 25 {
        return Err(ApiError::validation("k", "k must be at most 25"));
    }
    may_read_board(&state, &principal.actor, board).await?;
    let season = season_for(&state, q.season_id).await?;
    let view = match q.around {
        Some(id) => View::Around(id, u64::from(k)),
        None => View::Top(u64::from(limit)),
    };
    Ok(Json(read_board(&state, &season, board, view).await?))
}
