//! The socket's requests that are plain service calls: `submit`, `confirm`, `approve`, `reject`,
//! `revoke` and `board`. Each calls the same league function as its HTTP twin and answers the
//! same JSON body, so the two transports cannot drift apart.

use schema::ws::ClientMsg;
use serde::Serialize;
use serde_json::Value;

use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::league::access::may_read_board;
use crate::league::boards::BoardKey;
use crate::league::standings::{View, read_board, season_for};
use crate::league::submissions;
use crate::state::AppState;

/// Rows of a `board` read without `limit`.
pub(super) const DEFAULT_BOARD_LIMIT: u32 = 10;
/// Most rows of a `board` read.
pub(super) const MAX_BOARD_LIMIT: u32 = 100;
/// Rows either side of `around` without `k`.
pub(super) const DEFAULT_AROUND_K: u32 = 3;
/// Most rows either side of `around`.
pub(super) const MAX_AROUND_K: u32 = 25;

/// Runs a service request for `actor` and returns the `ok` reply's result. Connection-level
/// messages (`auth`, `subscribe`, `unsubscribe`, `ping`) are the connection's own business and
/// never reach here.
#[tracing::instrument(skip_all, fields(ws.request = request_type(msg)))]
pub(super) async fn handle(state: &AppState, actor: &Actor, msg: &ClientMsg) -> ApiResult<Value> {
    match msg {
        ClientMsg::Submit { submission, .. } => {
            // A replay answers the first submission, as HTTP does (there with 200 instead of 201).
            let (submission, _replayed) = submissions::submit(state, actor, submission).await?;
            to_json(&submission)
        }
        ClientMsg::Confirm { submission_id, .. } => {
            to_json(&submissions::confirm(state, actor, *submission_id).await?)
        }
        ClientMsg::Approve { submission_ids, .. } => {
            to_json(&submissions::decide(state, actor, submission_ids, true).await?)
        }
        ClientMsg::Reject { submission_ids, .. } => {
            to_json(&submissions::decide(state, actor, submission_ids, false).await?)
        }
        ClientMsg::Revoke {
            submission_id,
            reason,
            ..
        } => to_json(&submissions::revoke(state, actor, *submission_id, reason.as_deref()).await?),
        ClientMsg::Board {
            board,
            limit,
            around,
            k,
            ..
        } => {
            let board: BoardKey =
                board
                    .parse()
                    .map_err(|e: crate::league::boards::UnknownBoard| {
                        ApiError::Refused("unknown_board", e.to_string())
                    })?;
            let view = board_view(*limit, *around, *k)?;
            may_read_board(state, actor, board).await?;
            let season = season_for(state, None).await?;
            to_json(&read_board(state, &season, board, view).await?)
        }
        ClientMsg::Auth { .. }
        | ClientMsg::Subscribe { .. }
        | ClientMsg::Unsubscribe { .. }
        | ClientMsg::Ping { .. } => Err(ApiError::Internal(anyhow::anyhow!(
            "connection message routed to the service dispatcher"
        ))),
    }
}

/// Validates a `board` read's view: the top `limit` rows, or `k` rows around an entity.
fn board_view(limit: Option<u32>, around: Option<uuid::Uuid>, k: Option<u32>) -> ApiResult<View> {
    match around {
        Some(member) => {
            if limit.is_some() {
                return Err(ApiError::validation(
                    "limit",
                    "give either limit (the top rows) or around (rows around an entity)",
                ));
            }
            let k = k.unwrap_or(DEFAULT_AROUND_K);
            if k > MAX_AROUND_K {
                return Err(ApiError::validation(
                    "k",
                    format!("k must be between 0 and {MAX_AROUND_K}"),
                ));
            }
            Ok(View::Around(member, u64::from(k)))
        }
        None => {
            if k.is_some() {
                return Err(ApiError::validation("k", "k goes with around"));
            }
            let limit = limit.unwrap_or(DEFAULT_BOARD_LIMIT);
            if !(1..=MAX_BOARD_LIMIT).contains(&limit) {
                return Err(ApiError::validation(
                    "limit",
                    format!("limit must be between 1 and {MAX_BOARD_LIMIT}"),
                ));
            }
            Ok(View::Top(u64::from(limit)))
        }
    }
}

fn to_json(value: &impl Serialize) -> ApiResult<Value> {
    serde_json::to_value(value).map_err(|e| ApiError::Internal(e.into()))
}

/// The `type` of a client message, for logs.
pub(super) fn request_type(msg: &ClientMsg) -> &'static str {
    match msg {
        ClientMsg::Auth { .. } => "auth",
        ClientMsg::Subscribe { .. } => "subscribe",
        ClientMsg::Unsubscribe { .. } => "unsubscribe",
        ClientMsg::Submit { .. } => "submit",
        ClientMsg::Confirm { .. } => "confirm",
        ClientMsg::Approve { .. } => "approve",
        ClientMsg::Reject { .. } => "reject",
        ClientMsg::Revoke { .. } => "revoke",
        ClientMsg::Board { .. } => "board",
        ClientMsg::Ping { .. } => "ping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_read_is_the_top_ten_unless_told_otherwise() {
        assert!(matches!(board_view(None, None, None), Ok(View::Top(10))));
        assert!(matches!(
            board_view(Some(100), None, None),
            Ok(View::Top(100))
        ));
        assert!(board_view(Some(0), None, None).is_err());
        assert!(board_view(Some(101), None, None).is_err());
    }

    #[test]
    fn a_read_around_an_entity_takes_k_rows_either_side_up_to_25() {
        let me = uuid::Uuid::nil();
        assert!(matches!(
            board_view(None, Some(me), None),
            Ok(View::Around(_, 3))
        ));
        assert!(matches!(
            board_view(None, Some(me), Some(25)),
            Ok(View::Around(_, 25))
        ));
        assert!(board_view(None, Some(me), Some(26)).is_err());
        assert!(board_view(Some(5), Some(me), None).is_err());
        assert!(board_view(None, None, Some(2)).is_err());
    }
}
