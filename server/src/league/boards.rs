//! Leaderboards: which boards exist, and the one narrow interface they are stored behind.
//!
//! Boards are derived state. Postgres holds every verified point; a [`LeaderboardStore`] holds,
//! per season and board, each member's total points, the instant it last changed, and a sort key
//! that ranks by score and, on equal scores, by who got there first
//! (`game_rules::ranking::sort_key`). [`RedisBoards`] keeps them in Redis sorted sets and
//! applies all of one event's updates in one round trip (a Lua script). The embedded mode adds a
//! second, in-memory implementation of the same trait.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use game_rules::ranking::{MAX_ELAPSED_SECS, MAX_SCORE, ScoringMode, TIME_BITS};
use schema::league::Scoring;
use schema::{ChallengeId, ClassId, ClubId, SchoolId, SeasonId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::RedisPool;

/// A leaderboard of one season.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BoardKey {
    /// Students within a class, by total points.
    Class(ClassId),
    /// Classes within a school, per capita.
    School(SchoolId),
    /// Schools across the province, per capita.
    Province,
    /// Participants of a challenge, by total points.
    ChallengeTotal(ChallengeId),
    /// Participants of a challenge, per capita.
    ChallengePerCapita(ChallengeId),
    /// Students within a club, by total points.
    Club(ClubId),
    /// Clubs within a school, per capita.
    SchoolClubs(SchoolId),
}

impl BoardKey {
    /// How the board ranks.
    pub fn scoring(self) -> ScoringMode {
        match self {
            Self::Class(_) | Self::ChallengeTotal(_) | Self::Club(_) => ScoringMode::Total,
            Self::School(_)
            | Self::Province
            | Self::ChallengePerCapita(_)
            | Self::SchoolClubs(_) => ScoringMode::PerCapita,
        }
    }

    /// The wire form of [`Self::scoring`].
    pub fn wire_scoring(self) -> Scoring {
        match self.scoring() {
            ScoringMode::Total => Scoring::Total,
            ScoringMode::PerCapita => Scoring::PerCapita,
        }
    }

    /// The challenge this board belongs to, if any.
    pub fn challenge(self) -> Option<ChallengeId> {
        match self {
            Self::ChallengeTotal(id) | Self::ChallengePerCapita(id) => Some(id),
            _ => None,
        }
    }
}

impl fmt::Display for BoardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Class(id) => write!(f, "class:{id}"),
            Self::School(id) => write!(f, "school:{id}"),
            Self::Province => f.write_str("province"),
            Self::ChallengeTotal(id) => write!(f, "challenge:{id}:total"),
            Self::ChallengePerCapita(id) => write!(f, "challenge:{id}:per_capita"),
            Self::Club(id) => write!(f, "club:{id}"),
            Self::SchoolClubs(id) => write!(f, "school:{id}:clubs"),
        }
    }
}

/// A board name that does not name a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown board; boards are class:<id>, school:<id>, province, challenge:<id>:total, \
     challenge:<id>:per_capita, club:<id>, school:<id>:clubs"
)]
pub struct UnknownBoard;

impl FromStr for BoardKey {
    type Err = UnknownBoard;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let id = |i: usize| -> Result<Uuid, UnknownBoard> {
            parts
                .get(i)
                .and_then(|p| Uuid::parse_str(p).ok())
                .ok_or(UnknownBoard)
        };
        match parts.as_slice() {
            ["province"] => Ok(Self::Province),
            ["class", _] => Ok(Self::Class(ClassId(id(1)?))),
            ["school", _] => Ok(Self::School(SchoolId(id(1)?))),
            ["school", _, "clubs"] => Ok(Self::SchoolClubs(SchoolId(id(1)?))),
            ["club", _] => Ok(Self::Club(ClubId(id(1)?))),
            ["challenge", _, "total"] => Ok(Self::ChallengeTotal(ChallengeId(id(1)?))),
            ["challenge", _, "per_capita"] => Ok(Self::ChallengePerCapita(ChallengeId(id(1)?))),
            _ => Err(UnknownBoard),
        }
    }
}

/// One member's change on one board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardUpdate {
    /// The board.
    pub board: BoardKey,
    /// The student, class, school or club.
    pub member: Uuid,
    /// Points gained (negative: revoked).
    pub delta: i64,
    /// Only recompute the per-capita score of a member already on the board (the team's size
    /// changed); `delta` is then ignored.
    pub refresh: bool,
    /// Members of the team now, for per-capita boards.
    pub members: u32,
}

/// Everything one verification (or revocation) changes, applied at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointsEvent {
    /// The season.
    pub season: SeasonId,
    /// The season's first instant: the epoch of its sort keys.
    pub epoch: OffsetDateTime,
    /// When the points changed (the commit of the verification or revocation).
    pub at: OffsetDateTime,
    /// The updates.
    pub updates: Vec<BoardUpdate>,
}

/// A member as stored on a board.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    /// The member.
    pub member: Uuid,
    /// Its rank, 1-based.
    pub rank: u64,
    /// Its ranked score (total points, or milli-points per member).
    pub score: u64,
    /// Its total points.
    pub points: i64,
    /// When it reached its score (whole seconds).
    pub reached_at: OffsetDateTime,
}

/// A member's full state, for rebuilding a board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuiltEntry {
    /// The member.
    pub member: Uuid,
    /// Total points.
    pub points: i64,
    /// Members of the team, for per-capita boards.
    pub members: u32,
    /// The instant of its last points change.
    pub at: OffsetDateTime,
}

/// Whole seconds from the epoch, clamped to the sort key's range.
pub fn elapsed_secs(epoch: OffsetDateTime, at: OffsetDateTime) -> u64 {
    let secs = (at - epoch).whole_seconds().max(0);
    u64::try_from(secs).unwrap_or(0).min(MAX_ELAPSED_SECS)
}

/// The ranked score of `points` on a board, clamped to what a sort key carries.
pub fn board_score(scoring: ScoringMode, points: i64, members: u32) -> u64 {
    let points = u64::try_from(points.max(0)).unwrap_or(0);
    scoring.score(points, members).min(MAX_SCORE)
}

/// The sort key, exactly as the Lua script computes it.
pub fn key_of(score: u64, elapsed: u64) -> f64 {
    let bits =
        (score.min(MAX_SCORE) << TIME_BITS) | (MAX_ELAPSED_SECS - elapsed.min(MAX_ELAPSED_SECS));
    // Exact: below 2^53.
    bits as f64
}

/// Splits a sort key into score and elapsed seconds.
pub fn split_key(key: f64) -> (u64, u64) {
    let bits = if key.is_finite() && key >= 0.0 {
        key as u64
    } else {
        0
    };
    (
        bits >> TIME_BITS,
        MAX_ELAPSED_SECS - (bits & MAX_ELAPSED_SECS),
    )
}

/// The leaderboard store: Redis in production, memory in embedded mode.
#[async_trait]
pub trait LeaderboardStore: Send + Sync {
    /// Applies every update of the given events, atomically, in one round trip (per few hundred
    /// updates). Applying events out of order gives the same result: totals add up, and a
    /// member's instant only moves forward.
    async fn apply(&self, events: &[PointsEvent]) -> Result<(), ApiError>;

    /// Rows `offset..offset+limit` from the top, and the board's size.
    async fn range(
        &self,
        season: SeasonId,
        epoch: OffsetDateTime,
        board: BoardKey,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<StoredEntry>, u64), ApiError>;

    /// A member's 1-based rank, if it is on the board.
    async fn rank(
        &self,
        season: SeasonId,
        board: BoardKey,
        member: Uuid,
    ) -> Result<Option<u64>, ApiError>;

    /// Replaces a board's whole content (rebuilding from Postgres).
    async fn replace(
        &self,
        season: SeasonId,
        epoch: OffsetDateTime,
        board: BoardKey,
        entries: &[RebuiltEntry],
    ) -> Result<(), ApiError>;

    /// Every board of a season that holds members.
    async fn boards(&self, season: SeasonId) -> Result<Vec<BoardKey>, ApiError>;

    /// Forgets one board.
    async fn drop_board(&self, season: SeasonId, board: BoardKey) -> Result<(), ApiError>;
}

/// Boards in Redis: per board a sorted set of sort keys and a hash of totals and instants.
///
/// Keys: `{prefix}:{s:<season>}:z:<board>` (sorted set) and `{prefix}:{s:<season>}:h:<board>`
/// (hash: `<member>` → total points, `<member>:at` → seconds after the epoch), plus the set
/// `{prefix}:{s:<season>}:boards` of board names. The `{s:<season>}` hash tag keeps a season's
/// keys on one Redis Cluster slot, so one script can update all of an event's boards.
pub struct RedisBoards {
    pool: RedisPool,
    prefix: String,
    apply_script: redis::Script,
}

/// KEYS: the boards set, then per update its sorted set and hash. ARGV: per update: board name,
/// member, delta, per-capita flag, members, refresh flag, elapsed seconds of its event.
const APPLY_LUA: &str = r"
local time_scale = 67108864 -- 2^26
local max_elapsed = 67108863
local max_score = 134217727
local n = (#KEYS - 1) / 2
for i = 1, n do
  local z = KEYS[2 * i]
  local h = KEYS[2 * i + 1]
  local base = 1 + (i - 1) * 7
  local board = ARGV[base]
  local member = ARGV[base + 1]
  local delta = tonumber(ARGV[base + 2])
  local per_capita = ARGV[base + 3] == '1'
  local members = tonumber(ARGV[base + 4])
  local refresh = ARGV[base + 5] == '1'
  local elapsed = tonumber(ARGV[base + 6])
  local skip = false
  local at
  if refresh then
    delta = 0
    -- a refresh: only members already on the board, keeping their instant
    if redis.call('HEXISTS', h, member) == 0 then
      skip = true
    else
      at = tonumber(redis.call('HGET', h, member .. ':at') or '0')
    end
  else
    local prev = tonumber(redis.call('HGET', h, member .. ':at') or '-1')
    at = elapsed
    if prev > at then at = prev end
    redis.call('HSET', h, member .. ':at', at)
  end
  if not skip then
    local total = redis.call('HINCRBY', h, member, delta)
    local score = total
    if per_capita then
      if members > 0 then score = math.floor(total * 1000 / members) else score = 0 end
    end
    if score < 0 then score = 0 end
    if score > max_score then score = max_score end
    if at > max_elapsed then at = max_elapsed end
    redis.call('ZADD', z, score * time_scale + (max_elapsed - at), member)
    redis.call('SADD', KEYS[1], board)
  end
end
return n
";

/// Updates per script invocation: a few hundred keep each run short (Redis runs one script at a
/// time) while still saving round trips.
const UPDATES_PER_SCRIPT: usize = 400;

/// How often a pool checkout that timed out is retried (nothing was sent, so a retry cannot
/// count twice).
const CHECKOUT_RETRIES: u32 = 3;

impl RedisBoards {
    /// Boards under `prefix` in the pooled Redis.
    pub fn new(pool: RedisPool, prefix: &str) -> Self {
        Self {
            pool,
            prefix: prefix.to_owned(),
            apply_script: redis::Script::new(APPLY_LUA),
        }
    }

    fn tag(&self, season: SeasonId) -> String {
        format!("{}:{{s:{season}}}", self.prefix)
    }

    fn zkey(&self, season: SeasonId, board: BoardKey) -> String {
        format!("{}:z:{board}", self.tag(season))
    }

    fn hkey(&self, season: SeasonId, board: BoardKey) -> String {
        format!("{}:h:{board}", self.tag(season))
    }

    fn boards_key(&self, season: SeasonId) -> String {
        format!("{}:boards", self.tag(season))
    }

    async fn conn(
        &self,
    ) -> Result<bb8::PooledConnection<'_, bb8_redis::RedisConnectionManager>, ApiError> {
        checkout(&self.pool).await
    }
}

#[async_trait]
impl LeaderboardStore for RedisBoards {
    async fn apply(&self, events: &[PointsEvent]) -> Result<(), ApiError> {
        // One season's updates at a time: the script's keys share the season's hash tag.
        let mut by_season: Vec<(SeasonId, Vec<(&BoardUpdate, u64)>)> = Vec::new();
        for e in events {
            let elapsed = elapsed_secs(e.epoch, e.at);
            let updates = e.updates.iter().map(|u| (u, elapsed));
            match by_season.iter_mut().find(|(s, _)| *s == e.season) {
                Some((_, list)) => list.extend(updates),
                None => by_season.push((e.season, updates.collect())),
            }
        }
        for (season, updates) in by_season {
            for chunk in updates.chunks(UPDATES_PER_SCRIPT) {
                let mut invocation = self.apply_script.prepare_invoke();
                invocation.key(self.boards_key(season));
                for (u, elapsed) in chunk {
                    invocation.key(self.zkey(season, u.board));
                    invocation.key(self.hkey(season, u.board));
                    invocation
                        .arg(u.board.to_string())
                        .arg(u.member.to_string())
                        .arg(u.delta)
                        .arg(if u.board.scoring() == ScoringMode::PerCapita {
                            "1"
                        } else {
                            "0"
                        })
                        .arg(u.members)
                        .arg(if u.refresh { "1" } else { "0" })
                        .arg(*elapsed);
                }
                let mut conn = self.conn().await?;
                let _: i64 = invocation.invoke_async(&mut *conn).await?;
            }
        }
        Ok(())
    }

    async fn range(
        &self,
        season: SeasonId,
        epoch: OffsetDateTime,
        board: BoardKey,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<StoredEntry>, u64), ApiError> {
        if limit == 0 {
            return Ok((Vec::new(), 0));
        }
        let start = isize::try_from(offset).unwrap_or(isize::MAX);
        let stop = isize::try_from(offset + limit - 1).unwrap_or(isize::MAX);
        let mut conn = self.conn().await?;
        let (rows, size): (Vec<(String, f64)>, u64) = redis::pipe()
            .zrevrange_withscores(self.zkey(season, board), start, stop)
            .zcard(self.zkey(season, board))
            .query_async(&mut *conn)
            .await?;
        if rows.is_empty() {
            return Ok((Vec::new(), size));
        }
        let fields: Vec<&str> = rows.iter().map(|(m, _)| m.as_str()).collect();
        let totals: Vec<Option<i64>> = redis::cmd("HMGET")
            .arg(self.hkey(season, board))
            .arg(&fields)
            .query_async(&mut *conn)
            .await?;
        let entries = rows
            .into_iter()
            .zip(totals)
            .enumerate()
            .filter_map(|(i, ((member, key), points))| {
                let member = Uuid::parse_str(&member).ok()?;
                let (score, elapsed) = split_key(key);
                Some(StoredEntry {
                    member,
                    rank: offset + 1 + i as u64,
                    score,
                    points: points.unwrap_or(0),
                    reached_at: (epoch
                        + time::Duration::seconds(i64::try_from(elapsed).unwrap_or(0)))
                    .to_offset(time::UtcOffset::UTC),
                })
            })
            .collect();
        Ok((entries, size))
    }

    async fn rank(
        &self,
        season: SeasonId,
        board: BoardKey,
        member: Uuid,
    ) -> Result<Option<u64>, ApiError> {
        let mut conn = self.conn().await?;
        let rank: Option<u64> = redis::cmd("ZREVRANK")
            .arg(self.zkey(season, board))
            .arg(member.to_string())
            .query_async(&mut *conn)
            .await?;
        Ok(rank.map(|r| r + 1))
    }

    async fn replace(
        &self,
        season: SeasonId,
        epoch: OffsetDateTime,
        board: BoardKey,
        entries: &[RebuiltEntry],
    ) -> Result<(), ApiError> {
        let (z, h) = (self.zkey(season, board), self.hkey(season, board));
        let mut pipe = redis::pipe();
        pipe.atomic().del(&z).del(&h);
        for chunk in entries.chunks(1000) {
            let mut zadd: Vec<(f64, String)> = Vec::with_capacity(chunk.len());
            let mut hset: Vec<(String, String)> = Vec::with_capacity(chunk.len() * 2);
            for e in chunk {
                let elapsed = elapsed_secs(epoch, e.at);
                let score = board_score(board.scoring(), e.points, e.members);
                zadd.push((key_of(score, elapsed), e.member.to_string()));
                hset.push((e.member.to_string(), e.points.to_string()));
                hset.push((format!("{}:at", e.member), elapsed.to_string()));
            }
            pipe.zadd_multiple(&z, &zadd).hset_multiple(&h, &hset);
        }
        if entries.is_empty() {
            pipe.srem(self.boards_key(season), board.to_string());
        } else {
            pipe.sadd(self.boards_key(season), board.to_string());
        }
        let mut conn = self.conn().await?;
        let _: () = pipe.query_async(&mut *conn).await?;
        Ok(())
    }

    async fn boards(&self, season: SeasonId) -> Result<Vec<BoardKey>, ApiError> {
        let mut conn = self.conn().await?;
        let names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.boards_key(season))
            .query_async(&mut *conn)
            .await?;
        Ok(names.iter().filter_map(|n| n.parse().ok()).collect())
    }

    async fn drop_board(&self, season: SeasonId, board: BoardKey) -> Result<(), ApiError> {
        let mut conn = self.conn().await?;
        let _: () = redis::pipe()
            .del(self.zkey(season, board))
            .del(self.hkey(season, board))
            .srem(self.boards_key(season), board.to_string())
            .query_async(&mut *conn)
            .await?;
        Ok(())
    }
}

/// A pooled connection; a checkout that timed out (nothing sent yet) is retried a few times.
pub async fn checkout(
    pool: &RedisPool,
) -> Result<bb8::PooledConnection<'_, bb8_redis::RedisConnectionManager>, ApiError> {
    let mut attempt = 0;
    loop {
        match pool.get().await {
            Ok(conn) => return Ok(conn),
            Err(bb8::RunError::TimedOut) if attempt < CHECKOUT_RETRIES => {
                attempt += 1;
                metrics::counter!("carbon_league_redis_checkout_retries_total").increment(1);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn board_names_round_trip() {
        let id = Uuid::now_v7();
        for b in [
            BoardKey::Class(ClassId(id)),
            BoardKey::School(SchoolId(id)),
            BoardKey::Province,
            BoardKey::ChallengeTotal(ChallengeId(id)),
            BoardKey::ChallengePerCapita(ChallengeId(id)),
            BoardKey::Club(ClubId(id)),
            BoardKey::SchoolClubs(SchoolId(id)),
        ] {
            assert_eq!(b.to_string().parse::<BoardKey>(), Ok(b));
        }
        assert_eq!("class:nope".parse::<BoardKey>(), Err(UnknownBoard));
        assert_eq!("".parse::<BoardKey>(), Err(UnknownBoard));
    }

    #[test]
    fn the_sort_key_matches_the_game_rules_encoding() {
        let epoch = datetime!(2026-09-01 00:00 +8);
        let at = datetime!(2026-09-03 10:15:07 +8);
        let expected = game_rules::ranking::sort_key(1234, at, epoch).unwrap();
        assert_eq!(key_of(1234, elapsed_secs(epoch, at)), expected);
        assert_eq!(split_key(expected), (1234, elapsed_secs(epoch, at)));
    }
}
