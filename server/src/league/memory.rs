//! The embedded mode's in-process stand-ins for Redis: [`MemoryBoards`] (leaderboards) and
//! [`LocalBus`] (live fan-out on one node).
//!
//! [`MemoryBoards`] behaves exactly like [`RedisBoards`](super::boards::RedisBoards) and its Lua
//! script, observably: the same totals, instants, sort keys, ranks, ties, board sizes and board
//! lists. The differential test at the bottom of this file drives both with the same random
//! events and compares every answer.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use game_rules::ranking::{MAX_ELAPSED_SECS, MAX_SCORE, ScoringMode, TIME_BITS};
use schema::SeasonId;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;
use crate::league::boards::{
    BoardKey, LeaderboardStore, PointsEvent, RebuiltEntry, StoredEntry, board_score, elapsed_secs,
    split_key,
};
use crate::league::live::{Hub, LiveBus, LiveMessage};

/// A member's place in a board's order: ascending order is the board from the top.
///
/// A higher sort key ranks higher; equal sort keys rank like Redis' `ZREVRANGE`, by member name
/// descending. A member's name is its hyphenated lower-case UUID, whose byte order is the
/// order of [`Uuid`] itself, so comparing UUIDs compares the names Redis compares.
type Slot = (Reverse<u64>, Reverse<Uuid>);

/// One member as the Redis hash and sorted set hold it.
#[derive(Debug, Clone, Copy)]
struct Member {
    /// Total points (the hash's `<member>` field).
    total: i64,
    /// Seconds after the epoch of its last points change (the hash's `<member>:at` field).
    at: u64,
    /// Its sort key's bits (the sorted set's score).
    key: u64,
}

/// One board of one season.
#[derive(Debug, Default)]
struct Board {
    members: HashMap<Uuid, Member>,
    order: Ranked,
}

impl Board {
    /// Sets a member's total, instant and sort key, keeping the order in step.
    fn set(&mut self, member: Uuid, total: i64, at: u64, key: u64) {
        let new = Member { total, at, key };
        match self.members.insert(member, new) {
            Some(old) if old.key == key => {}
            Some(old) => {
                self.order.remove(&(Reverse(old.key), Reverse(member)));
                self.order.insert((Reverse(key), Reverse(member)));
            }
            None => self.order.insert((Reverse(key), Reverse(member))),
        }
    }
}

/// Slots per block of a [`Ranked`] list before it splits in two.
const BLOCK_MAX: usize = 512;

/// A sorted list of slots in blocks of at most [`BLOCK_MAX`]: insertion, removal and rank cost
/// O(log n + n / 512 + 512) instead of a plain sorted vector's O(n) shifts, and a page from any
/// offset is found by skipping whole blocks. For the boards this serves (a few thousand members
/// at most) that is a handful of short block scans per update.
#[derive(Debug, Default)]
struct Ranked {
    /// Non-empty, sorted blocks; every slot of a block sorts before every slot of the next.
    blocks: Vec<Vec<Slot>>,
    len: usize,
}

impl Ranked {
    /// The block that holds `slot`, or would: the first whose last slot is not below it (the
    /// last block when `slot` sorts after everything).
    fn block_of(&self, slot: &Slot) -> usize {
        let i = self
            .blocks
            .partition_point(|b| b.last().is_some_and(|last| last < slot));
        i.min(self.blocks.len().saturating_sub(1))
    }

    /// Inserts a slot that is not in the list yet.
    fn insert(&mut self, slot: Slot) {
        self.len += 1;
        if self.blocks.is_empty() {
            self.blocks.push(vec![slot]);
            return;
        }
        let b = self.block_of(&slot);
        let block = &mut self.blocks[b];
        let at = block.partition_point(|s| s < &slot);
        block.insert(at, slot);
        if block.len() >= 2 * BLOCK_MAX {
            let tail = block.split_off(BLOCK_MAX);
            self.blocks.insert(b + 1, tail);
        }
    }

    /// Removes a slot; whether it was there.
    fn remove(&mut self, slot: &Slot) -> bool {
        if self.blocks.is_empty() {
            return false;
        }
        let b = self.block_of(slot);
        let block = &mut self.blocks[b];
        let Ok(at) = block.binary_search(slot) else {
            return false;
        };
        block.remove(at);
        if block.is_empty() {
            self.blocks.remove(b);
        }
        self.len -= 1;
        true
    }

    /// The 0-based position of a slot in the list.
    fn position(&self, slot: &Slot) -> Option<usize> {
        if self.blocks.is_empty() {
            return None;
        }
        let b = self.block_of(slot);
        let at = self.blocks[b].binary_search(slot).ok()?;
        Some(self.blocks[..b].iter().map(Vec::len).sum::<usize>() + at)
    }

    /// The slots from the 0-based `offset` on.
    fn iter_from(&self, offset: usize) -> impl Iterator<Item = &Slot> {
        let mut skip = offset;
        let mut first = self.blocks.len();
        for (i, block) in self.blocks.iter().enumerate() {
            if skip < block.len() {
                first = i;
                break;
            }
            skip -= block.len();
        }
        self.blocks[first..].iter().flatten().skip(skip)
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// Every board, by season.
type Seasons = HashMap<SeasonId, HashMap<BoardKey, Board>>;

/// Leaderboards in this process's memory, for the embedded mode: the observable behaviour of
/// [`RedisBoards`](super::boards::RedisBoards) without Redis.
///
/// One lock guards every board: an [`apply`](LeaderboardStore::apply) holds it for its whole
/// batch, so readers see a batch entirely or not at all, and no lock is held across an await
/// (no method awaits). Ranks cost O(log n + n / 512) (see `Ranked`); totals saturate at the
/// limits of `i64` where Redis would fail the script half-way.
#[derive(Debug, Default)]
pub struct MemoryBoards {
    seasons: Mutex<Seasons>,
}

impl MemoryBoards {
    /// No boards yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Seasons> {
        // A panic while holding the lock cannot leave a board half-sorted in a way that matters
        // more than losing every board would: carry on with what is there.
        self.seasons.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The score the Lua script computes from a total: per capita `floor(total * 1000 / members)`
/// (0 without members), clamped to `0..=MAX_SCORE`.
fn script_score(per_capita: bool, total: i64, members: u32) -> u64 {
    let score = if per_capita {
        if members == 0 {
            0
        } else {
            (i128::from(total) * 1000).div_euclid(i128::from(members))
        }
    } else {
        i128::from(total)
    };
    u64::try_from(score.clamp(0, i128::from(MAX_SCORE))).unwrap_or(0)
}

/// The sort key's bits as the Lua script computes them (the instant clamped to its range).
fn key_bits(score: u64, at: u64) -> u64 {
    (score.min(MAX_SCORE) << TIME_BITS) | (MAX_ELAPSED_SECS - at.min(MAX_ELAPSED_SECS))
}

#[async_trait]
impl LeaderboardStore for MemoryBoards {
    async fn apply(&self, events: &[PointsEvent]) -> Result<(), ApiError> {
        let mut seasons = self.lock();
        for e in events {
            let elapsed = elapsed_secs(e.epoch, e.at);
            for u in &e.updates {
                let per_capita = u.board.scoring() == ScoringMode::PerCapita;
                let boards = seasons.entry(e.season).or_default();
                let previous = boards
                    .get(&u.board)
                    .and_then(|b| b.members.get(&u.member))
                    .copied();
                let (delta, at) = match (u.refresh, previous) {
                    // A refresh only touches members already on the board, keeping their instant.
                    (true, None) => continue,
                    (true, Some(m)) => (0, m.at),
                    // Otherwise the instant only moves forward.
                    (false, previous) => (u.delta, previous.map_or(elapsed, |m| m.at.max(elapsed))),
                };
                let total = previous.map_or(0, |m| m.total).saturating_add(delta);
                let key = key_bits(script_score(per_capita, total, u.members), at);
                boards
                    .entry(u.board)
                    .or_default()
                    .set(u.member, total, at, key);
            }
        }
        seasons.retain(|_, boards| !boards.is_empty());
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
        // As in Redis: no rows asked for, no size either.
        if limit == 0 {
            return Ok((Vec::new(), 0));
        }
        let seasons = self.lock();
        let Some(b) = seasons.get(&season).and_then(|s| s.get(&board)) else {
            return Ok((Vec::new(), 0));
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        let entries = b
            .order
            .iter_from(start)
            .take(take)
            .enumerate()
            .map(|(i, &(Reverse(key), Reverse(member)))| {
                let (score, elapsed) = split_key(key as f64);
                StoredEntry {
                    member,
                    rank: offset + 1 + i as u64,
                    score,
                    points: b.members.get(&member).map_or(0, |m| m.total),
                    reached_at: (epoch
                        + time::Duration::seconds(i64::try_from(elapsed).unwrap_or(0)))
                    .to_offset(time::UtcOffset::UTC),
                }
            })
            .collect();
        Ok((entries, b.order.len() as u64))
    }

    async fn rank(
        &self,
        season: SeasonId,
        board: BoardKey,
        member: Uuid,
    ) -> Result<Option<u64>, ApiError> {
        let seasons = self.lock();
        let Some(b) = seasons.get(&season).and_then(|s| s.get(&board)) else {
            return Ok(None);
        };
        let Some(m) = b.members.get(&member) else {
            return Ok(None);
        };
        Ok(b.order
            .position(&(Reverse(m.key), Reverse(member)))
            .map(|p| p as u64 + 1))
    }

    async fn replace(
        &self,
        season: SeasonId,
        epoch: OffsetDateTime,
        board: BoardKey,
        entries: &[RebuiltEntry],
    ) -> Result<(), ApiError> {
        // Built before taking the lock; a member listed twice keeps its last entry, as the
        // pipelined ZADD and HSET do.
        let mut fresh = Board::default();
        for e in entries {
            let at = elapsed_secs(epoch, e.at);
            let score = board_score(board.scoring(), e.points, e.members);
            fresh.set(e.member, e.points, at, key_bits(score, at));
        }
        let mut seasons = self.lock();
        if fresh.members.is_empty() {
            if let Some(boards) = seasons.get_mut(&season) {
                boards.remove(&board);
                if boards.is_empty() {
                    seasons.remove(&season);
                }
            }
        } else {
            seasons.entry(season).or_default().insert(board, fresh);
        }
        Ok(())
    }

    /// The season's boards with members, in the order of their names (Redis lists its set in
    /// no particular order).
    async fn boards(&self, season: SeasonId) -> Result<Vec<BoardKey>, ApiError> {
        let mut names: Vec<(String, BoardKey)> = {
            let seasons = self.lock();
            seasons.get(&season).map_or_else(Vec::new, |boards| {
                boards
                    .iter()
                    .filter(|(_, b)| !b.members.is_empty())
                    .map(|(k, _)| (k.to_string(), *k))
                    .collect()
            })
        };
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(names.into_iter().map(|(_, k)| k).collect())
    }

    async fn drop_board(&self, season: SeasonId, board: BoardKey) -> Result<(), ApiError> {
        let mut seasons = self.lock();
        if let Some(boards) = seasons.get_mut(&season) {
            boards.remove(&board);
            if boards.is_empty() {
                seasons.remove(&season);
            }
        }
        Ok(())
    }
}

/// The live bus of a single node: a published message goes straight to this node's [`Hub`].
pub struct LocalBus {
    hub: Arc<Hub>,
}

impl LocalBus {
    /// Delivers to `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

#[async_trait]
impl LiveBus for LocalBus {
    async fn publish(&self, msg: &LiveMessage) -> Result<(), ApiError> {
        self.hub.deliver(msg.clone());
        // Over Redis every publish is a round trip, which paces a burst of them (a teacher
        // approving a hundred submissions announces a hundred moderation events). Delivering in
        // process costs nothing, so yield: the subscribers' forwarders get to drain their topic
        // buffers between two events instead of overflowing them (close 4003).
        tokio::task::yield_now().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rand::rngs::StdRng;
    use rand::{RngExt as _, SeedableRng as _};
    use schema::{ChallengeId, ClassId, SchoolId};
    use time::macros::datetime;

    use super::*;
    use crate::league::boards::{BoardUpdate, RedisBoards, key_of};

    const EPOCH: OffsetDateTime = datetime!(2026-09-01 00:00 UTC);

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn season() -> SeasonId {
        SeasonId(id(0xfeed))
    }

    fn class() -> BoardKey {
        BoardKey::Class(ClassId(id(0xc1a55)))
    }

    fn school() -> BoardKey {
        BoardKey::School(SchoolId(id(0x5c001)))
    }

    fn at(secs: i64) -> OffsetDateTime {
        EPOCH + time::Duration::seconds(secs)
    }

    fn update(board: BoardKey, member: Uuid, delta: i64) -> BoardUpdate {
        BoardUpdate {
            board,
            member,
            delta,
            refresh: false,
            members: 1,
        }
    }

    fn event(secs: i64, updates: Vec<BoardUpdate>) -> PointsEvent {
        PointsEvent {
            season: season(),
            epoch: EPOCH,
            at: at(secs),
            updates,
        }
    }

    async fn top(boards: &MemoryBoards, board: BoardKey) -> Vec<StoredEntry> {
        boards
            .range(season(), EPOCH, board, 0, 100)
            .await
            .expect("range")
            .0
    }

    /// `(member, points, score, seconds after the epoch)` from the top.
    async fn rows(boards: &MemoryBoards, board: BoardKey) -> Vec<(Uuid, i64, u64, i64)> {
        top(boards, board)
            .await
            .into_iter()
            .map(|e| {
                (
                    e.member,
                    e.points,
                    e.score,
                    (e.reached_at - EPOCH).whole_seconds(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn totals_add_up_and_instants_only_move_forward() {
        let boards = MemoryBoards::new();
        let (a, b) = (id(1), id(2));
        boards
            .apply(&[
                event(100, vec![update(class(), a, 5)]),
                // Older news arrives late: it adds up, but the instant stays at 100.
                event(50, vec![update(class(), a, 3), update(class(), b, 2)]),
            ])
            .await
            .expect("apply");
        assert_eq!(
            rows(&boards, class()).await,
            vec![(a, 8, 8, 100), (b, 2, 2, 50)]
        );
        boards
            .apply(&[event(200, vec![update(class(), a, -10)])])
            .await
            .expect("apply");
        // A negative total scores 0, and a revocation moves the instant forward too.
        assert_eq!(
            rows(&boards, class()).await,
            vec![(b, 2, 2, 50), (a, -2, 0, 200)]
        );
    }

    #[tokio::test]
    async fn equal_scores_rank_whoever_got_there_first_higher() {
        let boards = MemoryBoards::new();
        let (early, late) = (id(1), id(2));
        boards
            .apply(&[
                event(90, vec![update(class(), late, 7)]),
                event(30, vec![update(class(), early, 7)]),
            ])
            .await
            .expect("apply");
        assert_eq!(
            boards.rank(season(), class(), early).await.expect("rank"),
            Some(1)
        );
        assert_eq!(
            boards.rank(season(), class(), late).await.expect("rank"),
            Some(2)
        );
        assert_eq!(
            boards.rank(season(), class(), id(3)).await.expect("rank"),
            None
        );
    }

    #[tokio::test]
    async fn equal_scores_at_the_same_second_rank_like_redis_by_member_name_descending() {
        let boards = MemoryBoards::new();
        let low = Uuid::parse_str("0a000000-0000-4000-8000-000000000000").expect("uuid");
        let high = Uuid::parse_str("f0000000-0000-4000-8000-000000000000").expect("uuid");
        boards
            .apply(&[event(
                10,
                vec![update(class(), low, 4), update(class(), high, 4)],
            )])
            .await
            .expect("apply");
        let order: Vec<Uuid> = top(&boards, class())
            .await
            .iter()
            .map(|e| e.member)
            .collect();
        assert_eq!(order, vec![high, low]);
        // The names Redis compares sort like the UUIDs themselves.
        assert!(high.to_string() > low.to_string() && high > low);
    }

    #[tokio::test]
    async fn a_refresh_only_touches_members_already_on_the_board() {
        let boards = MemoryBoards::new();
        let (on, off) = (id(1), id(2));
        let mut first = update(school(), on, 30);
        first.members = 3;
        boards
            .apply(&[event(100, vec![first])])
            .await
            .expect("apply");
        let refresh = |member, members| BoardUpdate {
            board: school(),
            member,
            delta: 999,
            refresh: true,
            members,
        };
        boards
            .apply(&[event(500, vec![refresh(on, 4), refresh(off, 1)])])
            .await
            .expect("apply");
        // The delta is ignored, the instant kept, the score divided by the new size.
        assert_eq!(rows(&boards, school()).await, vec![(on, 30, 7_500, 100)]);
        // A refresh alone does not create a board.
        let other = BoardKey::Province;
        let mut lone = refresh(off, 2);
        lone.board = other;
        boards
            .apply(&[event(600, vec![lone])])
            .await
            .expect("apply");
        assert_eq!(
            boards.boards(season()).await.expect("boards"),
            vec![school()]
        );
    }

    #[tokio::test]
    async fn per_capita_scores_divide_by_members() {
        let boards = MemoryBoards::new();
        let (rural, city, empty) = (id(1), id(2), id(3));
        let per_capita = |member, delta, members| BoardUpdate {
            board: school(),
            member,
            delta,
            refresh: false,
            members,
        };
        boards
            .apply(&[event(
                5,
                vec![
                    per_capita(rural, 300, 15),
                    per_capita(city, 1_000, 60),
                    per_capita(empty, 50, 0),
                ],
            )])
            .await
            .expect("apply");
        assert_eq!(
            rows(&boards, school()).await,
            vec![
                (rural, 300, 20_000, 5),
                (city, 1_000, 16_666, 5),
                (empty, 50, 0, 5)
            ]
        );
    }

    #[tokio::test]
    async fn scores_and_instants_clamp_to_what_a_sort_key_carries() {
        let boards = MemoryBoards::new();
        let (rich, early) = (id(1), id(2));
        boards
            .apply(&[
                event(400 * 86_400 * 3, vec![update(class(), rich, 1 << 40)]),
                event(-100, vec![update(class(), early, 1)]),
            ])
            .await
            .expect("apply");
        let max_elapsed = i64::try_from(MAX_ELAPSED_SECS).expect("small");
        assert_eq!(
            rows(&boards, class()).await,
            vec![(rich, 1 << 40, MAX_SCORE, max_elapsed), (early, 1, 1, 0)]
        );
        assert_eq!(
            key_bits(MAX_SCORE, MAX_ELAPSED_SECS) as f64,
            key_of(MAX_SCORE, MAX_ELAPSED_SECS)
        );
    }

    #[tokio::test]
    async fn a_range_pages_from_the_top_and_reports_the_board_size() {
        let boards = MemoryBoards::new();
        let updates = (1..=10).map(|n| update(class(), id(n), n as i64)).collect();
        boards.apply(&[event(1, updates)]).await.expect("apply");
        let (page, size) = boards
            .range(season(), EPOCH, class(), 2, 3)
            .await
            .expect("range");
        assert_eq!(size, 10);
        let got: Vec<(u64, Uuid)> = page.iter().map(|e| (e.rank, e.member)).collect();
        assert_eq!(got, vec![(3, id(8)), (4, id(7)), (5, id(6))]);
        let (page, size) = boards
            .range(season(), EPOCH, class(), 20, 3)
            .await
            .expect("range");
        assert!(page.is_empty());
        assert_eq!(size, 10);
        // Like Redis: asking for no rows reports no size either.
        assert_eq!(
            boards
                .range(season(), EPOCH, class(), 0, 0)
                .await
                .expect("range"),
            (Vec::new(), 0)
        );
    }

    #[tokio::test]
    async fn replace_swaps_a_whole_board() {
        let boards = MemoryBoards::new();
        let (old, new) = (id(1), id(2));
        boards
            .apply(&[event(10, vec![update(school(), old, 9)])])
            .await
            .expect("apply");
        boards
            .replace(
                season(),
                EPOCH,
                school(),
                &[RebuiltEntry {
                    member: new,
                    points: 40,
                    members: 8,
                    at: at(77),
                }],
            )
            .await
            .expect("replace");
        assert_eq!(rows(&boards, school()).await, vec![(new, 40, 5_000, 77)]);
        assert_eq!(
            boards.rank(season(), school(), old).await.expect("rank"),
            None
        );
        boards
            .replace(season(), EPOCH, school(), &[])
            .await
            .expect("replace");
        assert!(top(&boards, school()).await.is_empty());
        assert!(boards.boards(season()).await.expect("boards").is_empty());
    }

    #[tokio::test]
    async fn drop_board_forgets_it() {
        let boards = MemoryBoards::new();
        boards
            .apply(&[event(
                10,
                vec![update(class(), id(1), 3), update(school(), id(2), 3)],
            )])
            .await
            .expect("apply");
        boards.drop_board(season(), class()).await.expect("drop");
        assert!(top(&boards, class()).await.is_empty());
        assert_eq!(
            boards.boards(season()).await.expect("boards"),
            vec![school()]
        );
        // Dropped means forgotten: a refresh finds nobody, new points start from zero.
        let mut refresh = update(class(), id(1), 0);
        refresh.refresh = true;
        boards
            .apply(&[event(20, vec![refresh, update(class(), id(3), 1)])])
            .await
            .expect("apply");
        assert_eq!(rows(&boards, class()).await, vec![(id(3), 1, 1, 20)]);
    }

    #[tokio::test]
    async fn the_local_bus_delivers_to_this_nodes_hub() {
        let hub = Arc::new(Hub::new(8));
        let topic = hub.topic("challenge:x");
        let mut rx = topic.subscribe();
        let bus = LocalBus::new(hub.clone());
        bus.publish(&LiveMessage::Topic {
            topic: "challenge:x".into(),
            data: serde_json::json!({"hello": 1}),
        })
        .await
        .expect("publish");
        let frame = rx.try_recv().expect("a frame");
        assert_eq!(frame.seq, 1);
        assert!(frame.text.contains("hello"));
    }

    #[test]
    fn the_block_list_keeps_order_and_positions_through_many_changes() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut list = Ranked::default();
        let mut model: BTreeSet<Slot> = BTreeSet::new();
        for step in 0..20_000 {
            let slot = (
                Reverse(rng.random_range(0..50u64)),
                Reverse(id(rng.random_range(0..3_000u128))),
            );
            if rng.random_bool(0.6) {
                if model.insert(slot) {
                    list.insert(slot);
                }
            } else {
                assert_eq!(list.remove(&slot), model.remove(&slot));
            }
            if step % 997 == 0 {
                let all: Vec<Slot> = list.iter_from(0).copied().collect();
                let expected: Vec<Slot> = model.iter().copied().collect();
                assert_eq!(all, expected);
                assert_eq!(list.len(), model.len());
                for (i, s) in expected.iter().enumerate().step_by(37) {
                    assert_eq!(list.position(s), Some(i));
                    let from: Vec<Slot> = list.iter_from(i).take(3).copied().collect();
                    assert_eq!(from, expected[i..(i + 3).min(expected.len())]);
                }
            }
        }
        assert!(list.blocks.len() > 1, "the test reaches several blocks");
    }

    // ---- The differential test: MemoryBoards against RedisBoards and its Lua script. ----

    /// What the random driver picks from.
    struct Universe {
        seasons: Vec<(SeasonId, OffsetDateTime)>,
        boards: Vec<BoardKey>,
        members: Vec<Uuid>,
    }

    impl Universe {
        fn new(rng: &mut StdRng) -> Self {
            let mut uuid = || Uuid::from_u128(rng.random());
            let seasons = vec![(SeasonId(uuid()), EPOCH), (SeasonId(uuid()), at(86_400))];
            let boards = vec![
                BoardKey::Class(ClassId(uuid())),
                BoardKey::Class(ClassId(uuid())),
                BoardKey::School(SchoolId(uuid())),
                BoardKey::Province,
                BoardKey::ChallengeTotal(ChallengeId(uuid())),
                BoardKey::ChallengePerCapita(ChallengeId(uuid())),
            ];
            // Some members share their first bytes, so ties fall to the name comparison deep in
            // the string.
            let mut members: Vec<Uuid> = (0..24).map(|_| uuid()).collect();
            let base: u128 = rng.random();
            members.extend((0..6u128).map(|i| Uuid::from_u128((base & !0xff) | i)));
            Self {
                seasons,
                boards,
                members,
            }
        }

        fn season(&self, rng: &mut StdRng) -> (SeasonId, OffsetDateTime) {
            self.seasons[rng.random_range(0..self.seasons.len())]
        }

        fn board(&self, rng: &mut StdRng) -> BoardKey {
            self.boards[rng.random_range(0..self.boards.len())]
        }

        fn member(&self, rng: &mut StdRng) -> Uuid {
            self.members[rng.random_range(0..self.members.len())]
        }

        /// An instant near the epoch: few distinct seconds (ties), now and then before the
        /// epoch or beyond the sort key's range.
        fn instant(&self, rng: &mut StdRng, epoch: OffsetDateTime) -> OffsetDateTime {
            let secs = match rng.random_range(0..20) {
                0 => -rng.random_range(1..10_000i64),
                1 => 800 * 86_400 + rng.random_range(0..10i64),
                _ => rng.random_range(0..12i64) * 60,
            };
            epoch + time::Duration::seconds(secs)
        }

        fn event(&self, rng: &mut StdRng) -> PointsEvent {
            let (season, epoch) = self.season(rng);
            let n = rng.random_range(1..6);
            let updates = (0..n)
                .map(|_| BoardUpdate {
                    board: self.board(rng),
                    member: self.member(rng),
                    delta: match rng.random_range(0..30) {
                        0 => rng.random_range(100_000_000..300_000_000i64),
                        1..=4 => -rng.random_range(1..8i64),
                        _ => rng.random_range(0..12i64),
                    },
                    refresh: rng.random_bool(0.15),
                    members: rng.random_range(0..7u32),
                })
                .collect();
            PointsEvent {
                season,
                epoch,
                at: self.instant(rng, epoch),
                updates,
            }
        }

        fn rebuilt(&self, rng: &mut StdRng, epoch: OffsetDateTime) -> Vec<RebuiltEntry> {
            let n = rng.random_range(0..8);
            (0..n)
                .map(|_| RebuiltEntry {
                    member: self.member(rng),
                    points: rng.random_range(-5..60i64),
                    members: rng.random_range(0..5u32),
                    at: self.instant(rng, epoch),
                })
                .collect()
        }
    }

    /// Both stores answer every question the same way.
    async fn same_answers(
        redis: &RedisBoards,
        memory: &MemoryBoards,
        universe: &Universe,
        step: usize,
    ) {
        for &(season, epoch) in &universe.seasons {
            let mut from_redis = redis.boards(season).await.expect("redis boards");
            from_redis.sort_unstable_by_key(ToString::to_string);
            let from_memory = memory.boards(season).await.expect("memory boards");
            assert_eq!(from_memory, from_redis, "boards of a season, step {step}");
            // A different epoch for reading, too: both add it to the stored instant.
            for read_epoch in [epoch, at(-3_600)] {
                for &board in &universe.boards {
                    for (offset, limit) in [(0, 1_000), (0, 0), (0, 1), (3, 4), (29, 5), (99, 2)] {
                        let want = redis
                            .range(season, read_epoch, board, offset, limit)
                            .await
                            .expect("redis range");
                        let got = memory
                            .range(season, read_epoch, board, offset, limit)
                            .await
                            .expect("memory range");
                        assert_eq!(got, want, "range {offset}+{limit} of {board}, step {step}");
                    }
                }
            }
            for &board in &universe.boards {
                for &member in &universe.members {
                    let want = redis.rank(season, board, member).await.expect("redis rank");
                    let got = memory
                        .rank(season, board, member)
                        .await
                        .expect("memory rank");
                    assert_eq!(got, want, "rank of {member} on {board}, step {step}");
                }
            }
        }
    }

    async fn drive(redis: &RedisBoards, memory: &MemoryBoards) {
        let mut rng = StdRng::seed_from_u64(0xca4b_0e1e);
        let universe = Universe::new(&mut rng);
        for step in 0..120 {
            match rng.random_range(0..20) {
                0 => {
                    let (season, epoch) = universe.season(&mut rng);
                    let board = universe.board(&mut rng);
                    let entries = universe.rebuilt(&mut rng, epoch);
                    redis
                        .replace(season, epoch, board, &entries)
                        .await
                        .expect("redis replace");
                    memory
                        .replace(season, epoch, board, &entries)
                        .await
                        .expect("memory replace");
                }
                1 => {
                    let (season, _) = universe.season(&mut rng);
                    let board = universe.board(&mut rng);
                    redis.drop_board(season, board).await.expect("redis drop");
                    memory.drop_board(season, board).await.expect("memory drop");
                }
                _ => {
                    let n = rng.random_range(1..25);
                    let events: Vec<PointsEvent> =
                        (0..n).map(|_| universe.event(&mut rng)).collect();
                    redis.apply(&events).await.expect("redis apply");
                    memory.apply(&events).await.expect("memory apply");
                }
            }
            if step % 6 == 5 {
                same_answers(redis, memory, &universe, step).await;
            }
        }
        same_answers(redis, memory, &universe, usize::MAX).await;
    }

    /// Deletes every key under `prefix`.
    async fn delete_keys(pool: &crate::state::RedisPool, prefix: &str) {
        let mut conn = pool
            .get()
            .await
            .expect("a Redis connection for cleaning up");
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{prefix}:*"))
                .arg("COUNT")
                .arg(500)
                .query_async(&mut *conn)
                .await
                .expect("SCAN");
            if !keys.is_empty() {
                let _: i64 = redis::cmd("DEL")
                    .arg(&keys)
                    .query_async(&mut *conn)
                    .await
                    .expect("DEL");
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }

    /// Needs Redis (`REDIS_URL`, default the local one); a missing Redis fails the test.
    #[tokio::test]
    async fn memory_boards_answer_exactly_like_redis_boards_for_the_same_random_events() {
        use futures_util::FutureExt as _;

        let mut settings = crate::settings::Settings::defaults().expect("default settings");
        settings.redis.url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let pool = crate::state::connect_redis(&settings.redis)
            .await
            .expect("Redis must be reachable at REDIS_URL for the differential test");
        let prefix = format!("tmem{}", Uuid::new_v4().simple());
        let redis = RedisBoards::new(pool.clone(), &prefix);
        let memory = MemoryBoards::new();
        let outcome = std::panic::AssertUnwindSafe(drive(&redis, &memory))
            .catch_unwind()
            .await;
        delete_keys(&pool, &prefix).await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}
