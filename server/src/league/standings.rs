//! Boards computed from Postgres (for rebuilds and final standings), board reads for the API,
//! and the coalesced pushes of changed boards.

use std::collections::HashMap;

use crate::store::{AsConn, query};
use game_rules::ranking::{Entry, standings};
use schema::league::{Board, BoardEntry};
use schema::{ChallengeId, SeasonId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::league::boards::{BoardKey, RebuiltEntry, board_score, elapsed_secs};
use crate::league::{SeasonInfo, season};
use crate::state::AppState;

/// Every verified point of a season as (+points at verification, −points at revocation).
const EVENTS: &str = "WITH ev AS ( \
    SELECT s.id, s.student_id, s.class_id, s.school_id, s.points AS delta, v.created_at AS at \
      FROM submissions s JOIN verifications v ON v.submission_id = s.id AND v.outcome = 'verified' \
      WHERE s.season_id = $1 \
    UNION ALL \
    SELECT s.id, s.student_id, s.class_id, s.school_id, -s.points, r.created_at \
      FROM submissions s JOIN revocations r ON r.submission_id = s.id WHERE s.season_id = $1) ";

#[derive(sqlx::FromRow)]
struct Row {
    board_id: Option<Uuid>,
    member: Uuid,
    points: i64,
    members: i64,
    at: OffsetDateTime,
}

fn entries(rows: Vec<Row>) -> HashMap<Option<Uuid>, Vec<RebuiltEntry>> {
    let mut map: HashMap<Option<Uuid>, Vec<RebuiltEntry>> = HashMap::new();
    for r in rows {
        map.entry(r.board_id).or_default().push(RebuiltEntry {
            member: r.member,
            points: r.points,
            members: u32::try_from(r.members.max(0)).unwrap_or(u32::MAX),
            at: r.at,
        });
    }
    map
}

/// Every board of `season` as Postgres says it is now. With `challenge`, only that challenge's
/// two boards.
pub async fn compute_boards(
    conn: &mut dyn AsConn,
    season: SeasonId,
    challenge: Option<ChallengeId>,
) -> ApiResult<Vec<(BoardKey, Vec<RebuiltEntry>)>> {
    let mut out = Vec::new();
    if challenge.is_none() {
        let by_class = fetch(conn, season, "SELECT class_id AS board_id, student_id AS member, CAST(sum(delta) AS BIGINT) AS points, CAST(1 AS BIGINT) AS members, max(at) AS at \
             FROM ev GROUP BY class_id, student_id").await?;
        out.extend(
            by_class
                .into_iter()
                .filter_map(|(b, e)| Some((BoardKey::Class(schema::ClassId(b?)), e))),
        );
        let by_school = fetch(conn, season, "SELECT ev.school_id AS board_id, ev.class_id AS member, CAST(sum(delta) AS BIGINT) AS points, \
               (SELECT count(*) FROM students x WHERE x.class_id = ev.class_id AND x.removed_at IS NULL) AS members, max(at) AS at \
             FROM ev GROUP BY ev.school_id, ev.class_id").await?;
        out.extend(
            by_school
                .into_iter()
                .filter_map(|(b, e)| Some((BoardKey::School(schema::SchoolId(b?)), e))),
        );
        let province = fetch(conn, season, "SELECT CAST(NULL AS uuid) AS board_id, ev.school_id AS member, CAST(sum(delta) AS BIGINT) AS points, \
               (SELECT count(*) FROM students x JOIN classes c ON c.id = x.class_id \
                  WHERE c.school_id = ev.school_id AND x.removed_at IS NULL) AS members, max(at) AS at \
             FROM ev GROUP BY ev.school_id").await?;
        out.extend(province.into_values().map(|e| (BoardKey::Province, e)));
        let by_club = fetch(conn, season, "SELECT m.club_id AS board_id, ev.student_id AS member, CAST(sum(delta) AS BIGINT) AS points, CAST(1 AS BIGINT) AS members, max(at) AS at \
             FROM ev JOIN club_members m ON m.student_id = ev.student_id GROUP BY m.club_id, ev.student_id").await?;
        out.extend(
            by_club
                .into_iter()
                .filter_map(|(b, e)| Some((BoardKey::Club(schema::ClubId(b?)), e))),
        );
        let clubs = fetch(conn, season, "SELECT c.school_id AS board_id, c.id AS member, CAST(sum(delta) AS BIGINT) AS points, \
               (SELECT count(*) FROM club_members y JOIN students x ON x.id = y.student_id \
                  WHERE y.club_id = c.id AND x.removed_at IS NULL) AS members, max(at) AS at \
             FROM ev JOIN club_members m ON m.student_id = ev.student_id JOIN clubs c ON c.id = m.club_id \
             GROUP BY c.school_id, c.id").await?;
        out.extend(
            clubs
                .into_iter()
                .filter_map(|(b, e)| Some((BoardKey::SchoolClubs(schema::SchoolId(b?)), e))),
        );
    }
    let rows: Vec<Row> = query(format!(
        "{EVENTS} SELECT sc.challenge_id AS board_id, sc.participant_id AS member, CAST(sum(delta) AS BIGINT) AS points, \
           CASE c.kind \
             WHEN 'class_vs_class' THEN (SELECT count(*) FROM students x WHERE x.class_id = sc.participant_id AND x.removed_at IS NULL) \
             WHEN 'school_vs_school' THEN (SELECT count(*) FROM students x JOIN classes k ON k.id = x.class_id \
                WHERE k.school_id = sc.participant_id AND x.removed_at IS NULL) \
             ELSE (SELECT count(*) FROM club_members y JOIN students x ON x.id = y.student_id \
                WHERE y.club_id = sc.participant_id AND x.removed_at IS NULL) END AS members, \
           max(at) AS at \
         FROM ev JOIN submission_challenges sc ON sc.submission_id = ev.id JOIN challenges c ON c.id = sc.challenge_id \
         WHERE ($2 IS NULL AND c.finalized_at IS NULL) OR c.id = $2 \
         GROUP BY sc.challenge_id, sc.participant_id, c.kind"
    ))
    .bind(season)
    .bind(challenge)
    .fetch_all(&mut *conn)
    .await?;
    for (board, list) in entries(rows) {
        let Some(id) = board else { continue };
        let id = ChallengeId(id);
        out.push((BoardKey::ChallengeTotal(id), list.clone()));
        out.push((BoardKey::ChallengePerCapita(id), list));
    }
    Ok(out)
}

async fn fetch(
    conn: &mut dyn AsConn,
    season: SeasonId,
    select: &'static str,
) -> ApiResult<HashMap<Option<Uuid>, Vec<RebuiltEntry>>> {
    let rows: Vec<Row> = query(format!("{EVENTS} {select}"))
        .bind(season)
        .fetch_all(&mut *conn)
        .await?;
    Ok(entries(rows))
}

/// Rebuilds every live board of a season exactly from Postgres: boards that Postgres does not
/// know are dropped, the others replaced. Returns how many boards were written.
pub async fn rebuild_season(state: &AppState, season_id: SeasonId) -> ApiResult<usize> {
    let mut conn = state.db.acquire().await?;
    let season = season(&mut conn, season_id).await?;
    let boards = compute_boards(&mut conn, season_id, None).await?;
    drop(conn);
    let keep: std::collections::HashSet<BoardKey> = boards.iter().map(|(b, _)| *b).collect();
    for stale in state.league.boards.boards(season_id).await? {
        if !keep.contains(&stale) {
            state.league.boards.drop_board(season_id, stale).await?;
        }
    }
    for (board, entries) in &boards {
        state
            .league
            .boards
            .replace(season_id, season.epoch(), *board, entries)
            .await?;
    }
    Ok(boards.len())
}

/// Writes the final standings of the given boards (in the caller's transaction).
pub async fn write_final(
    conn: &mut dyn AsConn,
    season: &SeasonInfo,
    boards: &[(BoardKey, Vec<RebuiltEntry>)],
) -> ApiResult<()> {
    let epoch = season.epoch();
    for (board, list) in boards {
        let challenge = board.challenge();
        let ranked = standings(
            list.iter()
                .map(|e| {
                    let elapsed = elapsed_secs(epoch, e.at);
                    Entry {
                        id: (e.member, e.points),
                        score: board_score(board.scoring(), e.points, e.members),
                        reached_at: (epoch
                            + time::Duration::seconds(i64::try_from(elapsed).unwrap_or(0)))
                        .to_offset(time::UtcOffset::UTC),
                    }
                })
                .collect(),
        );
        let name = board.to_string();
        for chunk in ranked.chunks(1000) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p = i * 8;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                        p + 1,
                        p + 2,
                        p + 3,
                        p + 4,
                        p + 5,
                        p + 6,
                        p + 7,
                        p + 8
                    )
                })
                .collect();
            let mut insert = query(format!(
                "INSERT INTO final_standings (board, season_id, challenge_id, entity_id, rank, score, points, reached_at) \
                 VALUES {} ON CONFLICT (board, entity_id) DO NOTHING",
                rows.join(", ")
            ));
            for r in chunk {
                insert = insert
                    .bind(name.as_str())
                    .bind(season.id)
                    .bind(challenge)
                    .bind(r.entry.id.0)
                    .bind(i32::try_from(r.rank).unwrap_or(i32::MAX))
                    .bind(i64::try_from(r.entry.score).unwrap_or(i64::MAX))
                    .bind(r.entry.id.1)
                    .bind(r.entry.reached_at);
            }
            insert.execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// How much of a board to read.
#[derive(Debug, Clone, Copy)]
pub enum View {
    /// The top `limit` rows.
    Top(u64),
    /// `k` rows above and below `member`.
    Around(Uuid, u64),
}

/// Reads a board: live from the store while its season is active and its challenge not final,
/// otherwise the final standings kept in Postgres.
pub async fn read_board(
    state: &AppState,
    season: &SeasonInfo,
    board: BoardKey,
    view: View,
) -> ApiResult<Board> {
    let finalized = match board.challenge() {
        Some(ch) => {
            let (f,): (bool,) =
                query("SELECT finalized_at IS NOT NULL FROM challenges WHERE id = $1")
                    .bind(ch)
                    .fetch_optional(&state.db)
                    .await?
                    .ok_or(ApiError::NotFound("challenge"))?;
            f
        }
        None => false,
    };
    let is_final = finalized || !season.is_active();
    let (rows, size) = if is_final {
        read_final(state, season, board, view).await?
    } else {
        let epoch = season.epoch();
        let (offset, limit) = match view {
            View::Top(limit) => (0, limit),
            View::Around(member, k) => {
                match state.league.boards.rank(season.id, board, member).await? {
                    Some(rank) => ((rank - 1).saturating_sub(k), 2 * k + 1),
                    None => (0, 0),
                }
            }
        };
        let (rows, size) = state
            .league
            .boards
            .range(season.id, epoch, board, offset, limit)
            .await?;
        let rows = rows
            .into_iter()
            .map(|r| (r.member, r.rank, r.score, r.points, r.reached_at))
            .collect::<Vec<_>>();
        (rows, size)
    };
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let names = state.league.names.resolve(&state.db, &ids).await?;
    Ok(Board {
        board: board.to_string(),
        season_id: season.id,
        scoring: board.wire_scoring(),
        r#final: is_final,
        size,
        entries: rows
            .into_iter()
            .map(|(id, rank, score, points, reached_at)| BoardEntry {
                rank,
                id,
                name: names.get(&id).cloned().unwrap_or_default(),
                score,
                points,
                reached_at,
            })
            .collect(),
    })
}

type Rows = (Vec<(Uuid, u64, u64, i64, OffsetDateTime)>, u64);

async fn read_final(
    state: &AppState,
    season: &SeasonInfo,
    board: BoardKey,
    view: View,
) -> ApiResult<Rows> {
    let name = board.to_string();
    let (size,): (i64,) =
        query("SELECT count(*) FROM final_standings WHERE board = $1 AND season_id = $2")
            .bind(&name)
            .bind(season.id)
            .fetch_one(&state.db)
            .await?;
    // Rows are ordered by rank, then by entity for equal ranks, so positions are stable.
    let (offset, limit) = match view {
        View::Top(limit) => (0i64, i64::try_from(limit).unwrap_or(100)),
        View::Around(member, k) => {
            let pos: Option<(i64,)> = query(
                "SELECT pos FROM (SELECT entity_id, row_number() OVER (ORDER BY rank, entity_id) AS pos \
                 FROM final_standings WHERE board = $1 AND season_id = $2) p WHERE entity_id = $3",
            )
            .bind(&name)
            .bind(season.id)
            .bind(member)
            .fetch_optional(&state.db)
            .await?;
            let k = i64::try_from(k).unwrap_or(25);
            match pos {
                Some((p,)) => ((p - 1 - k).max(0), 2 * k + 1),
                None => (0, 0),
            }
        }
    };
    let rows: Vec<(Uuid, i32, i64, i64, OffsetDateTime)> = query(
        "SELECT entity_id, rank, score, points, reached_at FROM final_standings \
         WHERE board = $1 AND season_id = $2 ORDER BY rank, entity_id LIMIT $4 OFFSET $3",
    )
    .bind(&name)
    .bind(season.id)
    .bind(offset)
    .bind(limit)
    .fetch_all(&state.db)
    .await?;
    Ok((
        rows.into_iter()
            .map(|(id, rank, score, points, at)| {
                (
                    id,
                    u64::try_from(rank).unwrap_or(0),
                    u64::try_from(score).unwrap_or(0),
                    points,
                    at,
                )
            })
            .collect(),
        u64::try_from(size).unwrap_or(0),
    ))
}

/// Pushes every dirty board topic once: one read per board, one serialisation shared by all.
pub async fn push_dirty_boards(state: &AppState) {
    let dirty = state.league.hub.take_dirty();
    if dirty.is_empty() {
        return;
    }
    let season = match crate::league::active_season(&state.db).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            // The season closed: what these topics last showed belongs to it.
            for topic in dirty {
                topic.forget();
            }
            return;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the active season for board pushes");
            return;
        }
    };
    let rows = u64::from(state.settings.live.board_rows);
    for topic in dirty {
        let Some(board) = topic
            .name
            .strip_prefix("board:")
            .and_then(|b| b.parse::<BoardKey>().ok())
        else {
            continue;
        };
        match read_board(state, &season, board, View::Top(rows)).await {
            Ok(view) => match serde_json::to_value(&view) {
                Ok(data) => topic.push(data, true),
                Err(e) => tracing::error!(error = %e, "cannot serialise a board"),
            },
            Err(e) => {
                tracing::warn!(error = %e, board = %topic.name, "cannot read a board for its push")
            }
        }
    }
}

/// Loads the season a board request names (or the active one).
pub async fn season_for(state: &AppState, season_id: Option<SeasonId>) -> ApiResult<SeasonInfo> {
    match season_id {
        Some(id) => season(&state.db, id).await,
        None => crate::league::active_season(&state.db)
            .await?
            .ok_or(ApiError::Conflict(
                "no_active_season",
                "no season is active; name one with season_id".into(),
            )),
    }
}

/// Closes a season's scoring in the caller's transaction (which already holds the exclusive
/// season lock and has marked the season closed): writes the final standings of every board and
/// finalises its open challenges. Returns those challenges.
pub async fn close_season(
    conn: &mut dyn AsConn,
    season_id: SeasonId,
) -> ApiResult<Vec<ChallengeId>> {
    let season = season(&mut *conn, season_id).await?;
    let boards = compute_boards(conn, season_id, None).await?;
    write_final(conn, &season, &boards).await?;
    let open: Vec<(ChallengeId,)> = query(
        "UPDATE challenges SET finalized_at = $2 WHERE season_id = $1 AND finalized_at IS NULL RETURNING id",
    )
    .bind(season_id)
    .bind(OffsetDateTime::now_utc())
    .fetch_all(&mut *conn)
    .await?;
    Ok(open.into_iter().map(|r| r.0).collect())
}

/// After a season's close committed: empties its live boards (its standings are in Postgres
/// now) and tells subscribers.
pub async fn after_close(state: &AppState, season_id: SeasonId, challenges: &[ChallengeId]) {
    let boards = match state.league.boards.boards(season_id).await {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the closed season's boards");
            Vec::new()
        }
    };
    for board in boards {
        if let Err(e) = state.league.boards.drop_board(season_id, board).await {
            tracing::warn!(error = %e, "cannot drop a closed season's board");
        }
        let _ = state
            .league
            .bus
            .publish(&crate::league::live::LiveMessage::BoardsChanged {
                season: season_id,
                boards: vec![board.to_string()],
            })
            .await;
    }
    for id in challenges {
        crate::league::events::announce(
            state,
            format!("challenge:{id}"),
            serde_json::json!({"kind": "finished", "challenge_id": id, "reason": "season_closed"}),
        )
        .await;
    }
}
