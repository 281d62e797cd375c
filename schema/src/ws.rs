//! The WebSocket protocol at `/api/v1/ws`: every message, in both directions, and the close
//! codes. `docs/protocol.md` documents each with an example.
//!
//! Frames are JSON text, each with a `type`. Client requests carry a client-chosen `id` that the
//! server echoes in the `ok` or `error` reply. Topic messages (`snapshot`, `event`) carry the
//! topic and a per-topic sequence number that grows by one per message, so a client sees a gap.

use serde::{Deserialize, Serialize};

use crate::ids::SubmissionId;
use crate::league::SubmitBehavior;

/// The protocol version announced in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The `type` of every [`ClientMsg`], so a server can tell an unknown type (`unknown_type`)
/// from a known one with bad fields (`malformed_message`).
pub const CLIENT_TYPES: [&str; 10] = [
    "auth",
    "subscribe",
    "unsubscribe",
    "submit",
    "confirm",
    "approve",
    "reject",
    "revoke",
    "board",
    "ping",
];

/// A message from the client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// The first frame: authenticate with a bearer token (never put it in the URL).
    Auth {
        /// Echoed in the reply.
        id: String,
        /// A user, student or station-display token.
        token: String,
    },
    /// Follow a topic: `board:<board>`, `challenge:<id>`, `moderation:<class id>`, `station:<id>`.
    Subscribe {
        /// Echoed in the reply.
        id: String,
        /// The topic.
        topic: String,
    },
    /// Stop following a topic.
    Unsubscribe {
        /// Echoed in the reply.
        id: String,
        /// The topic.
        topic: String,
    },
    /// Report a behaviour (students), exactly as `POST /submissions`.
    Submit {
        /// Echoed in the reply.
        id: String,
        /// The submission.
        #[serde(flatten)]
        submission: SubmitBehavior,
    },
    /// Confirm a classmate's behaviour (students).
    Confirm {
        /// Echoed in the reply.
        id: String,
        /// The classmate's submission.
        submission_id: SubmissionId,
    },
    /// Approve pending submissions (their teacher).
    Approve {
        /// Echoed in the reply.
        id: String,
        /// 1 to 500 submissions.
        submission_ids: Vec<SubmissionId>,
    },
    /// Reject pending submissions (their teacher).
    Reject {
        /// Echoed in the reply.
        id: String,
        /// 1 to 500 submissions.
        submission_ids: Vec<SubmissionId>,
    },
    /// Take back a verified submission's points (its teacher).
    Revoke {
        /// Echoed in the reply.
        id: String,
        /// The submission.
        submission_id: SubmissionId,
        /// Why.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Read a leaderboard: the top `limit`, or `k` rows either side of `around`.
    Board {
        /// Echoed in the reply.
        id: String,
        /// The board, e.g. `class:<id>`.
        board: String,
        /// Top rows (default 10, at most 100).
        #[serde(default)]
        limit: Option<u32>,
        /// An entity to centre on (e.g. oneself).
        #[serde(default)]
        around: Option<uuid::Uuid>,
        /// Rows above and below `around` (default 3, at most 25).
        #[serde(default)]
        k: Option<u32>,
    },
    /// Application-level keep-alive for clients that cannot send WebSocket pings.
    Ping {
        /// Echoed in the reply.
        id: String,
    },
}

impl ClientMsg {
    /// The client-chosen request id, echoed in the reply.
    pub fn id(&self) -> &str {
        match self {
            Self::Auth { id, .. }
            | Self::Subscribe { id, .. }
            | Self::Unsubscribe { id, .. }
            | Self::Submit { id, .. }
            | Self::Confirm { id, .. }
            | Self::Approve { id, .. }
            | Self::Reject { id, .. }
            | Self::Revoke { id, .. }
            | Self::Board { id, .. }
            | Self::Ping { id } => id,
        }
    }
}

/// A message from the server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// The first frame: the protocol version and how long the client has to authenticate.
    Hello {
        /// [`PROTOCOL_VERSION`].
        protocol: u32,
        /// Milliseconds until an unauthenticated connection is closed with 4001.
        auth_deadline_ms: u64,
        /// Largest accepted frame, bytes.
        max_frame_bytes: usize,
    },
    /// A request succeeded.
    Ok {
        /// The request's id.
        id: String,
        /// The request's result (the same body as the HTTP twin), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        result: Option<serde_json::Value>,
    },
    /// A request failed, or a frame could not be understood (then without `id`).
    Error {
        /// The request's id, when it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The error code, as in the HTTP error envelope.
        code: String,
        /// A sentence for people.
        message: String,
        /// The input field at fault, on validation errors (as in the HTTP error envelope).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
    /// A topic's current state, right after subscribing.
    Snapshot {
        /// The topic.
        topic: String,
        /// Sequence number; the next `event` carries `seq + 1`.
        seq: u64,
        /// The state (a [`crate::league::Board`], a challenge, a queue, a station code).
        data: serde_json::Value,
    },
    /// A change on a topic.
    Event {
        /// The topic.
        topic: String,
        /// Sequence number, one more than the previous message on this topic.
        seq: u64,
        /// The change.
        data: serde_json::Value,
    },
}

/// Application close codes (4000–4999).
pub mod close {
    /// No `auth` frame within the deadline.
    pub const AUTH_TIMEOUT: u16 = 4001;
    /// The token was refused, or the first frame was not `auth`.
    pub const AUTH_FAILED: u16 = 4002;
    /// The client read too slowly: its send queue filled up.
    pub const TOO_SLOW: u16 = 4003;
    /// Too many malformed, unknown or oversized frames.
    pub const ABUSE: u16 = 4004;
    /// The server holds its maximum number of connections; retry later.
    pub const SERVER_FULL: u16 = 4005;
    /// No pong within the deadline.
    pub const PING_TIMEOUT: u16 = 4006;
    /// The server is shutting down; reconnect (to another node).
    pub const GOING_AWAY: u16 = 1001;
    /// A frame exceeded the transport limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The token could not be checked (the database is unavailable); reconnect later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_client_type_is_a_client_message_and_no_other_is() {
        for name in CLIENT_TYPES {
            let err = serde_json::from_value::<ClientMsg>(serde_json::json!({ "type": name }))
                .expect_err("fields are missing")
                .to_string();
            assert!(!err.contains("unknown variant"), "{name}: {err}");
        }
        let err = serde_json::from_value::<ClientMsg>(serde_json::json!({ "type": "shout" }))
            .expect_err("unknown")
            .to_string();
        assert!(err.contains("unknown variant"), "{err}");
    }

    #[test]
    fn a_submit_frame_reads_its_id_and_its_flattened_submission() {
        let msg: ClientMsg = serde_json::from_value(serde_json::json!({
            "type": "submit", "id": "7", "behavior": "meatless_meal", "quantity": 1,
            "occurred_at": "2026-03-02T04:00:00Z", "idempotency_key": "k1"
        }))
        .expect("a valid submit");
        let ClientMsg::Submit { id, submission } = msg else {
            panic!("not a submit: {msg:?}");
        };
        assert_eq!(id, "7");
        assert_eq!(submission.behavior, "meatless_meal");
    }
}
