//! The league: the behaviour catalogue, submissions and their verification, challenges,
//! leaderboards and live fan-out, as one service used by both HTTP and the WebSocket.
//!
//! The database is the source of truth. After a transaction commits, the service turns what it
//! changed into [`boards::PointsEvent`]s, applies them to the [`boards::LeaderboardStore`] and
//! announces them on the [`live::LiveBus`]. Every board can be recomputed from the database
//! ([`standings::compute_boards`]): that is how boards are rebuilt, and how final standings are
//! written when a challenge or a season closes.

pub mod access;
pub mod boards;
pub mod challenges;
pub mod events;
pub mod live;
pub mod memory;
pub mod names;
pub mod standings;
pub mod submissions;

use std::sync::Arc;
use std::time::Duration;

use game_rules::catalogue::Catalogue;
use game_rules::season::SchoolTimeZone;
use game_rules::window::LatenessPolicy;
use schema::SeasonId;
use time::{Date, OffsetDateTime};

use crate::error::{ApiError, ApiResult};
use crate::league::boards::LeaderboardStore;
use crate::league::live::{Hub, LiveBus};
use crate::league::names::Names;
use crate::settings::Settings;
use crate::store::{Conn, Tx, query};

/// The compiled-in behaviour catalogue.
pub const DEFAULT_CATALOGUE: &str = include_str!("../../config/behaviors.toml");

/// The league's services, shared by every request.
pub struct League {
    /// The behaviour catalogue.
    pub catalogue: Catalogue,
    /// The leaderboards.
    pub boards: Arc<dyn LeaderboardStore>,
    /// The bus between nodes.
    pub bus: Arc<dyn LiveBus>,
    /// This node's topics.
    pub hub: Arc<Hub>,
    /// Display names of board members.
    pub names: Names,
    /// Lateness rules.
    pub lateness: LatenessPolicy,
    /// Peer confirmations outside challenges.
    pub default_confirmations: u8,
}

/// Loads the catalogue named by `league.catalogue_path`, or the compiled-in one. A bad entry
/// stops start-up with a message naming it.
pub fn load_catalogue(settings: &Settings) -> anyhow::Result<Catalogue> {
    let path = settings.league.catalogue_path.trim();
    let text = if path.is_empty() {
        DEFAULT_CATALOGUE.to_owned()
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read league.catalogue_path {path}: {e}"))?
    };
    Catalogue::from_toml_str(&text).map_err(|e| anyhow::anyhow!("behaviour catalogue: {e}"))
}

/// The lateness policy from the settings.
pub fn lateness(settings: &Settings) -> LatenessPolicy {
    LatenessPolicy {
        clock_skew: time::Duration::seconds(i64::from(settings.league.clock_skew_secs)),
        max_lateness: time::Duration::hours(i64::from(settings.league.max_lateness_hours)),
    }
}

/// The season fields the league needs.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct SeasonInfo {
    /// Its id.
    pub id: SeasonId,
    /// First school day.
    pub starts_on: Date,
    /// Last school day.
    pub ends_on: Date,
    /// Its status.
    #[sqlx(try_from = "String")]
    pub status: SeasonState,
    /// School time zone.
    #[sqlx(try_from = "String")]
    pub timezone: Tz,
}

/// A season's status as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeasonState(pub game_rules::season::SeasonStatus);

impl TryFrom<String> for SeasonState {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        game_rules::season::SeasonStatus::parse(&s)
            .map(SeasonState)
            .ok_or_else(|| format!("unknown season status {s}"))
    }
}

/// A school time zone as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tz(pub SchoolTimeZone);

impl TryFrom<String> for Tz {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        SchoolTimeZone::parse(&s).map(Tz).map_err(|e| e.to_string())
    }
}

impl SeasonInfo {
    /// `[start, end)` of the season in instants.
    pub fn bounds(&self) -> (OffsetDateTime, OffsetDateTime) {
        game_rules::season::season_bounds(self.timezone.0, self.starts_on, self.ends_on)
    }

    /// The season's first instant: the epoch of its boards' sort keys.
    pub fn epoch(&self) -> OffsetDateTime {
        self.bounds().0
    }

    /// Whether it scores now.
    pub fn is_active(&self) -> bool {
        self.status.0 == game_rules::season::SeasonStatus::Active
    }
}

/// Columns for [`SeasonInfo`].
pub const SEASON_INFO: &str = "id, starts_on, ends_on, status, timezone";

/// The active season, if any.
pub async fn active_season(db: impl Into<Conn<'_>>) -> ApiResult<Option<SeasonInfo>> {
    Ok(query(
        "SELECT id, starts_on, ends_on, status, timezone FROM seasons WHERE status = 'active'",
    )
    .fetch_optional(db)
    .await?)
}

/// One season.
pub async fn season(db: impl Into<Conn<'_>>, id: SeasonId) -> ApiResult<SeasonInfo> {
    query("SELECT id, starts_on, ends_on, status, timezone FROM seasons WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or(ApiError::NotFound("season"))
}

/// The lock that orders scoring writes before a season's close: writers take it
/// shared, closing takes it exclusively, so no write commits into a season after its final
/// standings were computed.
pub const SEASON_LOCK: i64 = 0x6361_7262_6f6e_4c47; // "carbonLG"

/// For a write: takes the season lock shared, then returns the active season or a 409 saying
/// there is none.
pub async fn require_active_season(tx: &mut Tx) -> ApiResult<SeasonInfo> {
    // Two statements on purpose: the season is read with a snapshot taken after the lock is
    // held, so a close that committed meanwhile is seen.
    tx.lock_shared(SEASON_LOCK).await?;
    let season = active_season(&mut *tx).await?;
    season.ok_or(ApiError::Conflict(
        "no_active_season",
        "no season is active: scoring is closed".into(),
    ))
}

/// Background work every node runs: coalesced board pushes and the challenge finaliser.
pub fn spawn_background(state: crate::state::AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let pusher = {
        let state = state.clone();
        tokio::spawn(async move {
            let period = Duration::from_millis(state.settings.live.coalesce_ms);
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut sweeps = 0u32;
            let mut station_windows = std::collections::HashMap::new();
            let mut last_station_check = tokio::time::Instant::now();
            loop {
                tick.tick().await;
                standings::push_dirty_boards(&state).await;
                if last_station_check.elapsed() >= Duration::from_secs(1) {
                    last_station_check = tokio::time::Instant::now();
                    access::push_station_codes(&state, &mut station_windows).await;
                }
                sweeps = sweeps.wrapping_add(1);
                if sweeps.is_multiple_of(50) {
                    state.league.hub.sweep();
                }
            }
        })
    };
    let finaliser = tokio::spawn(async move {
        let period = Duration::from_millis(state.settings.league.finalize_interval_ms);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = challenges::finalize_due(&state).await {
                tracing::warn!(error = %e, "finalising challenges failed; will retry");
            }
        }
    });
    vec![pusher, finaliser]
}
