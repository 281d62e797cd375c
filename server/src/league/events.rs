//! Turning committed changes into board updates.
//!
//! A verification adds a submission's points, a revocation takes them off; both touch the
//! student's class board, their class on the school board, their school on the province board,
//! each of their clubs, and every challenge participant the submission counted for. Roster
//! changes alter team sizes, so per-capita scores are refreshed.

use std::collections::BTreeSet;

use crate::store::{AsConn, query};
use schema::{ClassId, ClubId, SchoolId, StudentId, SubmissionId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::league::boards::{BoardKey, BoardUpdate, PointsEvent};
use crate::league::live::LiveMessage;
use crate::league::{SeasonInfo, active_season, season};
use crate::state::AppState;

#[derive(sqlx::FromRow)]
struct SubmissionFacts {
    season_id: schema::SeasonId,
    student_id: StudentId,
    class_id: ClassId,
    school_id: SchoolId,
    points: i64,
    class_size: i64,
    school_size: i64,
}

fn size(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

/// The board updates of a submission's points changing by `sign` × its points, at `at`.
pub async fn points_event(
    conn: &mut dyn AsConn,
    submission: SubmissionId,
    sign: i64,
    at: OffsetDateTime,
) -> ApiResult<PointsEvent> {
    let f: SubmissionFacts = query(
        "SELECT s.season_id, s.student_id, s.class_id, s.school_id, s.points, \
           (SELECT count(*) FROM students x WHERE x.class_id = s.class_id AND x.removed_at IS NULL) AS class_size, \
           (SELECT count(*) FROM students x JOIN classes c ON c.id = x.class_id \
              WHERE c.school_id = s.school_id AND x.removed_at IS NULL) AS school_size \
         FROM submissions s WHERE s.id = $1",
    )
    .bind(submission)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(ApiError::NotFound("submission"))?;
    let season = season(&mut *conn, f.season_id).await?;
    let delta = sign * f.points;
    let mut updates = vec![
        BoardUpdate {
            board: BoardKey::Class(f.class_id),
            member: f.student_id.0,
            delta,
            refresh: false,
            members: 1,
        },
        BoardUpdate {
            board: BoardKey::School(f.school_id),
            member: f.class_id.0,
            delta,
            refresh: false,
            members: size(f.class_size),
        },
        BoardUpdate {
            board: BoardKey::Province,
            member: f.school_id.0,
            delta,
            refresh: false,
            members: size(f.school_size),
        },
    ];
    let clubs: Vec<(ClubId, SchoolId, i64)> = query(
        "SELECT m.club_id, c.school_id, \
           (SELECT count(*) FROM club_members y JOIN students x ON x.id = y.student_id \
              WHERE y.club_id = m.club_id AND x.removed_at IS NULL) \
         FROM club_members m JOIN clubs c ON c.id = m.club_id WHERE m.student_id = $1",
    )
    .bind(f.student_id)
    .fetch_all(&mut *conn)
    .await?;
    for (club, school, members) in &clubs {
        updates.push(BoardUpdate {
            board: BoardKey::Club(*club),
            member: f.student_id.0,
            delta,
            refresh: false,
            members: 1,
        });
        updates.push(BoardUpdate {
            board: BoardKey::SchoolClubs(*school),
            member: club.0,
            delta,
            refresh: false,
            members: size(*members),
        });
    }
    let challenges: Vec<(schema::ChallengeId, Uuid, String)> = query(
        "SELECT sc.challenge_id, sc.participant_id, c.kind FROM submission_challenges sc \
         JOIN challenges c ON c.id = sc.challenge_id \
         WHERE sc.submission_id = $1 AND c.finalized_at IS NULL",
    )
    .bind(submission)
    .fetch_all(&mut *conn)
    .await?;
    for (challenge, participant, kind) in challenges {
        let members = match kind.as_str() {
            "class_vs_class" => size(f.class_size),
            "school_vs_school" => size(f.school_size),
            _ => clubs
                .iter()
                .find(|(c, _, _)| c.0 == participant)
                .map_or(0, |(_, _, n)| size(*n)),
        };
        updates.push(BoardUpdate {
            board: BoardKey::ChallengeTotal(challenge),
            member: participant,
            delta,
            refresh: false,
            members,
        });
        updates.push(BoardUpdate {
            board: BoardKey::ChallengePerCapita(challenge),
            member: participant,
            delta,
            refresh: false,
            members,
        });
    }
    Ok(PointsEvent {
        season: season.id,
        epoch: season.epoch(),
        at,
        updates,
    })
}

/// Per-capita refreshes after a class's roster changed (a student joined, was added or removed).
pub async fn class_size_changed(
    conn: &mut dyn AsConn,
    class: ClassId,
) -> ApiResult<Option<PointsEvent>> {
    let Some(season) = active_season(&mut *conn).await? else {
        return Ok(None);
    };
    let (school, class_size, school_size): (SchoolId, i64, i64) = query(
        "SELECT c.school_id, \
           (SELECT count(*) FROM students x WHERE x.class_id = c.id AND x.removed_at IS NULL), \
           (SELECT count(*) FROM students x JOIN classes k ON k.id = x.class_id \
              WHERE k.school_id = c.school_id AND x.removed_at IS NULL) \
         FROM classes c WHERE c.id = $1",
    )
    .bind(class)
    .fetch_one(&mut *conn)
    .await?;
    let mut updates = vec![
        refresh(BoardKey::School(school), class.0, class_size),
        refresh(BoardKey::Province, school.0, school_size),
    ];
    let challenges: Vec<(schema::ChallengeId, Uuid, String)> = query(
        "SELECT c.id, p.participant_id, c.kind FROM challenge_participants p JOIN challenges c ON c.id = p.challenge_id \
         WHERE c.season_id = $1 AND c.finalized_at IS NULL AND p.state = 'accepted' AND p.participant_id IN ($2, $3)",
    )
    .bind(season.id)
    .bind(class)
    .bind(school)
    .fetch_all(&mut *conn)
    .await?;
    for (challenge, participant, _) in challenges {
        let n = if participant == class.0 {
            class_size
        } else {
            school_size
        };
        updates.push(refresh(
            BoardKey::ChallengePerCapita(challenge),
            participant,
            n,
        ));
    }
    Ok(Some(event(&season, updates)))
}

/// Board updates after a student joined a club: their season points join the club's boards.
pub async fn club_joined(
    conn: &mut dyn AsConn,
    club: ClubId,
    student: StudentId,
) -> ApiResult<Option<PointsEvent>> {
    let Some(season) = active_season(&mut *conn).await? else {
        return Ok(None);
    };
    let (school, members): (SchoolId, i64) = query(
        "SELECT c.school_id, (SELECT count(*) FROM club_members y JOIN students x ON x.id = y.student_id \
           WHERE y.club_id = c.id AND x.removed_at IS NULL) FROM clubs c WHERE c.id = $1",
    )
    .bind(club)
    .fetch_one(&mut *conn)
    .await?;
    let (points, last): (Option<i64>, Option<OffsetDateTime>) = query(
        "SELECT CAST(sum(delta) AS BIGINT), max(at) FROM ( \
           SELECT s.points AS delta, v.created_at AS at FROM submissions s \
             JOIN verifications v ON v.submission_id = s.id AND v.outcome = 'verified' \
             WHERE s.student_id = $1 AND s.season_id = $2 \
           UNION ALL \
           SELECT -s.points, r.created_at FROM submissions s JOIN revocations r ON r.submission_id = s.id \
             WHERE s.student_id = $1 AND s.season_id = $2) e",
    )
    .bind(student)
    .bind(season.id)
    .fetch_one(&mut *conn)
    .await?;
    let members = size(members);
    let (updates, at) = match (points, last) {
        (Some(points), Some(at)) => (
            vec![
                BoardUpdate {
                    board: BoardKey::Club(club),
                    member: student.0,
                    delta: points,
                    refresh: false,
                    members: 1,
                },
                BoardUpdate {
                    board: BoardKey::SchoolClubs(school),
                    member: club.0,
                    delta: points,
                    refresh: false,
                    members,
                },
            ],
            at,
        ),
        _ => (
            vec![refresh(
                BoardKey::SchoolClubs(school),
                club.0,
                i64::from(members),
            )],
            season.epoch(),
        ),
    };
    let mut e = event(&season, updates);
    e.at = at;
    Ok(Some(e))
}

fn refresh(board: BoardKey, member: Uuid, members: i64) -> BoardUpdate {
    BoardUpdate {
        board,
        member,
        delta: 0,
        refresh: true,
        members: size(members),
    }
}

fn event(season: &SeasonInfo, updates: Vec<BoardUpdate>) -> PointsEvent {
    PointsEvent {
        season: season.id,
        epoch: season.epoch(),
        at: OffsetDateTime::now_utc(),
        updates,
    }
}

/// Applies committed events to the boards and tells every node which boards changed. Postgres
/// already holds the truth: a Redis failure here is logged (the boards can be rebuilt with
/// `carbon-league rebuild-leaderboards`) and does not undo the caller's success.
pub async fn apply(state: &AppState, events: &[PointsEvent]) {
    if events.is_empty() {
        return;
    }
    if let Err(err) = state.league.boards.apply(events).await {
        metrics::counter!("carbon_league_board_apply_failures_total").increment(1);
        tracing::error!(error = %err, events = events.len(), "board update failed after commit; rebuild the boards");
        return;
    }
    metrics::counter!("carbon_league_board_events_total").increment(events.len() as u64);
    let mut changed: Vec<(schema::SeasonId, BTreeSet<String>)> = Vec::new();
    for e in events {
        let boards = e.updates.iter().map(|u| u.board.to_string());
        match changed.iter_mut().find(|(s, _)| *s == e.season) {
            Some((_, set)) => set.extend(boards),
            None => changed.push((e.season, boards.collect())),
        }
    }
    for (season, boards) in changed {
        let msg = LiveMessage::BoardsChanged {
            season,
            boards: boards.into_iter().collect(),
        };
        if let Err(err) = state.league.bus.publish(&msg).await {
            tracing::warn!(error = %err, "live bus publish failed");
        }
    }
}

/// Publishes an event on a topic to every node.
pub async fn announce(state: &AppState, topic: String, data: serde_json::Value) {
    if let Err(err) = state
        .league
        .bus
        .publish(&LiveMessage::Topic { topic, data })
        .await
    {
        tracing::warn!(error = %err, "live bus publish failed");
    }
}
