//! Who may read which board and follow which live topic, and what a topic's snapshot is.
//!
//! Topics: `board:<board>` (see [`BoardKey`]), `challenge:<id>`, `moderation:<class id>` (the
//! class's teacher and school admin only) and `station:<id>` (the station's own display and its
//! school's staff). Minors' nicknames appear only on class and club boards, which only their
//! class, club and school see.

use std::num::NonZeroU32;
use std::str::FromStr;

use game_rules::station::{StationSecret, WindowIndex};
use schema::api::Role;
use schema::league::StationCode;
use schema::{ChallengeId, ClassId, ClubId, SchoolId, StationId};
use time::OffsetDateTime;

use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::league::boards::BoardKey;
use crate::league::standings::{View, read_board};
use crate::league::{challenges, submissions};
use crate::state::AppState;
use crate::store::query;

/// A live topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicKind {
    /// A leaderboard of the active season.
    Board(BoardKey),
    /// A challenge's status, participants and final standings.
    Challenge(ChallengeId),
    /// A class's moderation queue.
    Moderation(ClassId),
    /// A station's current code.
    Station(StationId),
}

impl FromStr for TopicKind {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            ApiError::Refused(
                "unknown_topic",
                "topics are board:<board>, challenge:<id>, moderation:<class id>, station:<id>"
                    .into(),
            )
        };
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        let id = || uuid::Uuid::parse_str(rest).map_err(|_| bad());
        match kind {
            "board" => rest
                .parse()
                .map(TopicKind::Board)
                .map_err(|e| ApiError::Refused("unknown_topic", e.to_string())),
            "challenge" => Ok(TopicKind::Challenge(ChallengeId(id()?))),
            "moderation" => Ok(TopicKind::Moderation(ClassId(id()?))),
            "station" => Ok(TopicKind::Station(StationId(id()?))),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for TopicKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Board(b) => write!(f, "board:{b}"),
            Self::Challenge(id) => write!(f, "challenge:{id}"),
            Self::Moderation(id) => write!(f, "moderation:{id}"),
            Self::Station(id) => write!(f, "station:{id}"),
        }
    }
}

/// Whether `actor` may read `board`.
pub async fn may_read_board(state: &AppState, actor: &Actor, board: BoardKey) -> ApiResult<()> {
    if let Actor::Station { .. } = actor {
        return Err(ApiError::Forbidden);
    }
    let admin = actor.role() == Role::ProgrammeAdmin;
    let ok = match board {
        BoardKey::Province => true,
        BoardKey::School(school) | BoardKey::SchoolClubs(school) => {
            admin || actor.school_id() == Some(school)
        }
        BoardKey::Class(class) => {
            let row: Option<(SchoolId, schema::UserId)> =
                query("SELECT school_id, teacher_id FROM classes WHERE id = $1")
                    .bind(class)
                    .fetch_optional(&state.db)
                    .await?;
            let (school, teacher) = row.ok_or(ApiError::NotFound("class"))?;
            match *actor {
                Actor::Student { class_id, .. } => class_id == class,
                _ => actor.manages_class(school, teacher),
            }
        }
        BoardKey::Club(club) => {
            let row: Option<(SchoolId,)> = query("SELECT school_id FROM clubs WHERE id = $1")
                .bind(club)
                .fetch_optional(&state.db)
                .await?;
            let (school,) = row.ok_or(ApiError::NotFound("club"))?;
            match *actor {
                Actor::Student { id, .. } => is_club_member(state, club, id).await?,
                Actor::User {
                    role: Role::ProgrammeAdmin,
                    ..
                } => true,
                _ => actor.school_id() == Some(school),
            }
        }
        BoardKey::ChallengeTotal(id) | BoardKey::ChallengePerCapita(id) => {
            return challenges::may_follow(state, actor, id).await;
        }
    };
    if ok { Ok(()) } else { Err(ApiError::Forbidden) }
}

async fn is_club_member(
    state: &AppState,
    club: ClubId,
    student: schema::StudentId,
) -> ApiResult<bool> {
    let (member,): (bool,) =
        query("SELECT EXISTS (SELECT 1 FROM club_members WHERE club_id = $1 AND student_id = $2)")
            .bind(club)
            .bind(student)
            .fetch_one(&state.db)
            .await?;
    Ok(member)
}

/// Whether `actor` may follow `topic`.
pub async fn authorize(state: &AppState, actor: &Actor, topic: TopicKind) -> ApiResult<()> {
    match topic {
        TopicKind::Board(board) => may_read_board(state, actor, board).await,
        TopicKind::Challenge(id) => challenges::may_follow(state, actor, id).await,
        TopicKind::Moderation(class) => submissions::may_moderate(state, actor, class).await,
        TopicKind::Station(station) => may_see_station(state, actor, station).await,
    }
}

/// The station's own display, or its school's staff.
pub async fn may_see_station(state: &AppState, actor: &Actor, station: StationId) -> ApiResult<()> {
    let row: Option<(SchoolId,)> = query("SELECT school_id FROM stations WHERE id = $1")
        .bind(station)
        .fetch_optional(&state.db)
        .await?;
    let (school,) = row.ok_or(ApiError::NotFound("station"))?;
    let ok = match *actor {
        Actor::Station { id, .. } => id == station,
        Actor::User {
            role: Role::ProgrammeAdmin,
            ..
        } => true,
        Actor::User { school_id, .. } => school_id == Some(school),
        Actor::Student { .. } => false,
    };
    if ok { Ok(()) } else { Err(ApiError::Forbidden) }
}

/// A station's current code.
pub async fn station_code(
    state: &AppState,
    station: StationId,
    now: OffsetDateTime,
) -> ApiResult<StationCode> {
    let row: Option<(Vec<u8>, i32)> =
        query("SELECT secret, window_secs FROM stations WHERE id = $1")
            .bind(station)
            .fetch_optional(&state.db)
            .await?;
    let (secret, window_secs) = row.ok_or(ApiError::NotFound("station"))?;
    let secret = StationSecret::new(secret)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("station secret: {e}")))?;
    let window = NonZeroU32::new(u32::try_from(window_secs).unwrap_or(60))
        .unwrap_or(game_rules::station::DEFAULT_WINDOW_SECS);
    let index = WindowIndex::containing(now, window);
    let code = game_rules::station::code_for_window(&secret, index);
    let next = i64::try_from((index.0 + 1) * u64::from(window.get())).unwrap_or(i64::MAX);
    Ok(StationCode {
        station_id: station,
        code: code.to_string(),
        window_index: index.0,
        next_at: OffsetDateTime::from_unix_timestamp(next).unwrap_or(now),
    })
}

/// The state a new subscriber gets first.
pub async fn snapshot(
    state: &AppState,
    actor: &Actor,
    topic: TopicKind,
) -> ApiResult<serde_json::Value> {
    let value = match topic {
        TopicKind::Board(board) => {
            let season = crate::league::standings::season_for(state, None).await?;
            serde_json::to_value(
                read_board(
                    state,
                    &season,
                    board,
                    View::Top(u64::from(state.settings.live.board_rows)),
                )
                .await?,
            )
        }
        TopicKind::Challenge(id) => serde_json::to_value(challenges::get(state, actor, id).await?),
        TopicKind::Moderation(class) => serde_json::to_value(
            submissions::moderation_queue(state, actor, class, 200, None).await?,
        ),
        TopicKind::Station(station) => {
            serde_json::to_value(station_code(state, station, OffsetDateTime::now_utc()).await?)
        }
    };
    value.map_err(|e| ApiError::Internal(e.into()))
}

/// Pushes each followed station's new code when its window turns (run about once a second).
pub async fn push_station_codes(
    state: &AppState,
    last: &mut std::collections::HashMap<StationId, u64>,
) {
    let now = OffsetDateTime::now_utc();
    for topic in state.league.hub.with_prefix("station:") {
        let Ok(TopicKind::Station(id)) = topic.name.parse::<TopicKind>() else {
            continue;
        };
        match station_code(state, id, now).await {
            Ok(code) => {
                if last.get(&id) != Some(&code.window_index) {
                    last.insert(id, code.window_index);
                    if let Ok(data) = serde_json::to_value(&code) {
                        topic.push(data, true);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, station.id = %id, "cannot compute a station code"),
        }
    }
    last.retain(|id, _| {
        state
            .league
            .hub
            .existing(&format!("station:{id}"))
            .is_some()
    });
}
