//! Challenges: class-, school- and club-versus challenges inside the active season, their
//! invitations, which submissions count for them, and their final standings.
//!
//! The life-cycle rules are `game_rules::challenge`; this module stores them and decides who may
//! do what. A challenge is published when created (scheduled until its start); when its time is
//! up, or an admin ends it early, the finaliser on some node writes its final standings to
//! Postgres (once: `FOR UPDATE SKIP LOCKED`) and pushes them to its subscribers.

use std::collections::BTreeSet;

use crate::store::{AsConn, TextList, query};
use game_rules::catalogue::BehaviorId;
use game_rules::challenge::{
    Challenge as Rules, ChallengeKind as Kind, ChallengeStatus, CollectiveGoal, InvitationState,
    Lifecycle,
};
use game_rules::ranking::ScoringMode;
use game_rules::verification::RequiredConfirmations;
use game_rules::window::TimeWindow;
use schema::api::Role;
use schema::league::{Challenge, ChallengeKind, CreateChallenge, Goal, Participant, Scoring};
use schema::{ChallengeId, ClassId, SchoolId, StudentId, SubmissionId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::league::boards::BoardKey;
use crate::league::live::LiveMessage;
use crate::league::standings::{self, View, compute_boards, write_final};
use crate::league::{SeasonInfo, events, require_active_season, season};
use crate::routes::text_field;
use crate::state::AppState;

#[derive(sqlx::FromRow, Clone)]
struct Row {
    id: ChallengeId,
    season_id: schema::SeasonId,
    kind: String,
    title: String,
    #[sqlx(try_from = "TextList")]
    behaviors: Vec<String>,
    starts_at: OffsetDateTime,
    ends_at: OffsetDateTime,
    scoring: String,
    required_confirmations: i16,
    goal_behavior: Option<String>,
    goal_quantity: Option<i64>,
    created_by: UserId,
    school_id: Option<SchoolId>,
    created_at: OffsetDateTime,
    ended_early_at: Option<OffsetDateTime>,
    finalized_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "id, season_id, kind, title, behaviors, starts_at, ends_at, scoring, required_confirmations, \
    goal_behavior, goal_quantity, created_by, school_id, created_at, ended_early_at, finalized_at";

fn kind_of(s: &str) -> Kind {
    match s {
        "school_vs_school" => Kind::SchoolVsSchool,
        "club_vs_club" => Kind::ClubVsClub,
        _ => Kind::ClassVsClass,
    }
}

fn kind_name(k: ChallengeKind) -> &'static str {
    match k {
        ChallengeKind::ClassVsClass => "class_vs_class",
        ChallengeKind::SchoolVsSchool => "school_vs_school",
        ChallengeKind::ClubVsClub => "club_vs_club",
    }
}

fn wire_kind(k: Kind) -> ChallengeKind {
    match k {
        Kind::ClassVsClass => ChallengeKind::ClassVsClass,
        Kind::SchoolVsSchool => ChallengeKind::SchoolVsSchool,
        Kind::ClubVsClub => ChallengeKind::ClubVsClub,
    }
}

impl Row {
    /// The stored challenge as the rules see it. Stored rows were validated when created, so
    /// only a corrupted row fails here.
    fn rules(&self) -> ApiResult<Rules> {
        let window = TimeWindow::new(self.starts_at, self.ends_at).map_err(|_| {
            ApiError::Internal(anyhow::anyhow!("challenge {} has an empty window", self.id))
        })?;
        let behaviors = self
            .behaviors
            .iter()
            .filter_map(|b| BehaviorId::parse(b).ok())
            .collect::<BTreeSet<_>>();
        let mut rules = Rules::new(kind_of(&self.kind), window, &window, behaviors)
            .map_err(|e| {
                ApiError::Internal(anyhow::anyhow!(
                    "stored challenge {} is invalid: {e}",
                    self.id
                ))
            })?
            .with_scoring(if self.scoring == "total" {
                ScoringMode::Total
            } else {
                ScoringMode::PerCapita
            });
        rules.lifecycle = Lifecycle {
            published_at: Some(self.created_at.min(self.starts_at)),
            ended_early_at: self.ended_early_at,
            cancelled_at: None,
        };
        Ok(rules)
    }

    fn scoring(&self) -> Scoring {
        if self.scoring == "total" {
            Scoring::Total
        } else {
            Scoring::PerCapita
        }
    }
}

async fn fetch(conn: &mut dyn AsConn, id: ChallengeId, lock: bool) -> ApiResult<Row> {
    let lock = if lock {
        conn.as_conn().dialect().for_update()
    } else {
        ""
    };
    let sql = format!("SELECT {COLUMNS} FROM challenges WHERE id = $1{lock}");
    query(sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(ApiError::NotFound("challenge"))
}

/// What a participant id belongs to: its school, and for clubs the user who created it.
async fn participant_school(
    conn: &mut dyn AsConn,
    kind: Kind,
    id: Uuid,
) -> ApiResult<Option<(SchoolId, Option<UserId>)>> {
    let sql = match kind {
        Kind::ClassVsClass => "SELECT school_id, teacher_id FROM classes WHERE id = $1",
        Kind::SchoolVsSchool => "SELECT id, CAST(NULL AS uuid) FROM schools WHERE id = $1",
        Kind::ClubVsClub => "SELECT school_id, created_by_user FROM clubs WHERE id = $1",
    };
    Ok(query(sql).bind(id).fetch_optional(&mut *conn).await?)
}

/// Whether `actor` answers for `participant`: the class's teacher, the school's admin (for
/// classes, the school and clubs of their school), or the teacher who created the club.
async fn answers_for(
    conn: &mut dyn AsConn,
    actor: &Actor,
    kind: Kind,
    participant: Uuid,
) -> ApiResult<bool> {
    let Some((school, owner)) = participant_school(conn, kind, participant).await? else {
        return Ok(false);
    };
    Ok(match *actor {
        Actor::User {
            role: Role::SchoolAdmin,
            school_id,
            ..
        } => school_id == Some(school),
        Actor::User {
            role: Role::Teacher,
            id,
            ..
        } => kind != Kind::SchoolVsSchool && owner == Some(id),
        _ => false,
    })
}

/// Creates a challenge in the active season and invites its participants; those the creator
/// answers for take part at once.
pub async fn create(
    state: &AppState,
    actor: &Actor,
    req: &CreateChallenge,
) -> ApiResult<Challenge> {
    let Actor::User {
        id: creator,
        role,
        school_id,
    } = *actor
    else {
        return Err(ApiError::Forbidden);
    };
    let allowed = match req.kind {
        ChallengeKind::ClassVsClass | ChallengeKind::ClubVsClub => {
            matches!(role, Role::Teacher | Role::SchoolAdmin)
        }
        ChallengeKind::SchoolVsSchool => matches!(role, Role::ProgrammeAdmin | Role::SchoolAdmin),
    };
    if !allowed {
        return Err(ApiError::Forbidden);
    }
    let title = text_field("title", &req.title, 100)?;
    let mut behaviors = BTreeSet::new();
    for b in &req.behaviors {
        let behavior = state.league.catalogue.get(b).ok_or_else(|| {
            ApiError::validation(
                "behaviors",
                format!("`{b}` is not a behaviour of the catalogue"),
            )
        })?;
        behaviors.insert(behavior.id.clone());
    }
    let participants: BTreeSet<Uuid> = req.participants.iter().copied().collect();
    if participants.len() < 2 || participants.len() > 200 {
        return Err(ApiError::validation(
            "participants",
            "a challenge has 2 to 200 participants",
        ));
    }
    let confirmations = RequiredConfirmations::new(
        req.required_confirmations
            .unwrap_or(state.league.default_confirmations),
    )
    .map_err(|e| ApiError::validation("required_confirmations", e.to_string()))?;
    let window = TimeWindow::new(req.starts_at, req.ends_at)
        .map_err(|_| ApiError::validation("ends_at", "a challenge ends after it starts"))?;
    let kind = match req.kind {
        ChallengeKind::ClassVsClass => Kind::ClassVsClass,
        ChallengeKind::SchoolVsSchool => Kind::SchoolVsSchool,
        ChallengeKind::ClubVsClub => Kind::ClubVsClub,
    };
    let mut tx = state.db.begin().await?;
    let season = require_active_season(&mut tx).await?;
    let (start, end) = season.bounds();
    let season_window = TimeWindow::new(start, end)
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("empty season")))?;
    let mut rules = Rules::new(kind, window, &season_window, behaviors)
        .map_err(|e| {
            ApiError::validation(
                if req.behaviors.is_empty() {
                    "behaviors"
                } else {
                    "starts_at"
                },
                e.to_string(),
            )
        })?
        .with_required_confirmations(confirmations);
    if let Some(scoring) = req.scoring {
        rules = rules.with_scoring(match scoring {
            Scoring::PerCapita => ScoringMode::PerCapita,
            Scoring::Total => ScoringMode::Total,
        });
    }
    if let Some(goal) = &req.goal {
        let behavior = BehaviorId::parse(&goal.behavior)
            .map_err(|e| ApiError::validation("goal.behavior", e.to_string()))?;
        let target = std::num::NonZeroU64::new(goal.quantity)
            .ok_or_else(|| ApiError::validation("goal.quantity", "a goal is at least 1"))?;
        rules = rules
            .with_goal(CollectiveGoal {
                behavior,
                target_quantity: target,
            })
            .map_err(|e| ApiError::validation("goal.behavior", e.to_string()))?;
    }
    let now = OffsetDateTime::now_utc();
    rules
        .publish(now)
        .map_err(|e| ApiError::validation("ends_at", e.to_string()))?;
    // Every participant exists, is of the challenge's kind, and (for class and club battles
    // created by a school's staff) the creator may invite it.
    let mut auto_accept = Vec::new();
    for p in &participants {
        if participant_school(&mut tx, kind, *p).await?.is_none() {
            return Err(ApiError::validation(
                "participants",
                format!(
                    "{p} is not a {}",
                    match kind {
                        Kind::ClassVsClass => "class",
                        Kind::SchoolVsSchool => "school",
                        Kind::ClubVsClub => "club",
                    }
                ),
            ));
        }
        if answers_for(&mut tx, actor, kind, *p).await? {
            auto_accept.push(*p);
        }
    }
    let id = ChallengeId::new();
    query(
        "INSERT INTO challenges (id, season_id, kind, title, behaviors, starts_at, ends_at, scoring, required_confirmations, \
           goal_behavior, goal_quantity, created_by, school_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id)
    .bind(season.id)
    .bind(kind_name(req.kind))
    .bind(&title)
    .bind(TextList(rules.behaviors().iter().map(|b| b.as_str().to_owned()).collect()))
    .bind(req.starts_at)
    .bind(req.ends_at)
    .bind(match rules.scoring() { ScoringMode::Total => "total", ScoringMode::PerCapita => "per_capita" })
    .bind(i16::from(confirmations.get()))
    .bind(req.goal.as_ref().map(|g| g.behavior.clone()))
    .bind(req.goal.as_ref().map(|g| i64::try_from(g.quantity).unwrap_or(i64::MAX)))
    .bind(creator)
    .bind(school_id)
    .execute(&mut tx)
    .await?;
    for p in &participants {
        let accepted = auto_accept.contains(p);
        query(
            "INSERT INTO challenge_participants (challenge_id, participant_id, state, responded_at) \
             VALUES ($1, $2, $3, CASE WHEN $3 = 'accepted' THEN $4 END)",
        )
        .bind(id)
        .bind(p)
        .bind(if accepted { "accepted" } else { "invited" })
        .bind(OffsetDateTime::now_utc())
        .execute(&mut tx)
        .await?;
    }
    tx.commit().await?;
    tracing::info!(challenge.id = %id, "challenge created");
    get(state, actor, id).await
}

/// Whether `actor` may see the challenge.
async fn visible(conn: &mut dyn AsConn, actor: &Actor, row: &Row) -> ApiResult<bool> {
    if actor.role() == Role::ProgrammeAdmin || actor.user_id() == Some(row.created_by) {
        return Ok(true);
    }
    let kind = kind_of(&row.kind);
    let participants: Vec<(Uuid,)> =
        query("SELECT participant_id FROM challenge_participants WHERE challenge_id = $1")
            .bind(row.id)
            .fetch_all(&mut *conn)
            .await?;
    match *actor {
        Actor::Student {
            id,
            class_id,
            school_id,
        } => {
            let mine: Vec<Uuid> = match kind {
                Kind::ClassVsClass => vec![class_id.0],
                Kind::SchoolVsSchool => vec![school_id.0],
                Kind::ClubVsClub => {
                    query("SELECT club_id FROM club_members WHERE student_id = $1")
                        .bind(id)
                        .scalars(&mut *conn)
                        .await?
                }
            };
            Ok(participants.iter().any(|(p,)| mine.contains(p)))
        }
        Actor::Station { .. } => Ok(false),
        Actor::User { school_id, .. } => {
            if row.school_id.is_some() && row.school_id == school_id {
                return Ok(true);
            }
            for (p,) in &participants {
                if let Some((school, _)) = participant_school(conn, kind, *p).await?
                    && Some(school) == school_id
                {
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }
}

/// One challenge, with its participants and goal progress.
pub async fn get(state: &AppState, actor: &Actor, id: ChallengeId) -> ApiResult<Challenge> {
    let mut conn = state.db.acquire().await?;
    let row = fetch(&mut conn, id, false).await?;
    if !visible(&mut conn, actor, &row).await? {
        return Err(ApiError::Forbidden);
    }
    wire(state, &mut conn, &row).await
}

async fn wire(state: &AppState, conn: &mut dyn AsConn, row: &Row) -> ApiResult<Challenge> {
    let rules = row.rules()?;
    let now = OffsetDateTime::now_utc();
    let participants: Vec<(Uuid, String)> =
        query("SELECT participant_id, state FROM challenge_participants WHERE challenge_id = $1 ORDER BY invited_at, participant_id")
            .bind(row.id)
            .fetch_all(&mut *conn)
            .await?;
    let ids: Vec<Uuid> = participants.iter().map(|p| p.0).collect();
    let names = state.league.names.resolve(&state.db, &ids).await?;
    let (goal, goal_progress, goal_percent) = match (&row.goal_behavior, row.goal_quantity) {
        (Some(behavior), Some(quantity)) => {
            let (done,): (i64,) = query(
                "SELECT CAST(COALESCE(sum(s.quantity), 0) AS BIGINT) FROM submission_challenges sc \
                 JOIN submissions s ON s.id = sc.submission_id \
                 JOIN verifications v ON v.submission_id = s.id AND v.outcome = 'verified' \
                 LEFT JOIN revocations r ON r.submission_id = s.id \
                 WHERE sc.challenge_id = $1 AND s.behavior_id = $2 AND r.submission_id IS NULL",
            )
            .bind(row.id)
            .bind(behavior)
            .fetch_one(&mut *conn)
            .await?;
            let done = u64::try_from(done).unwrap_or(0);
            let target = u64::try_from(quantity).unwrap_or(1).max(1);
            let goal = CollectiveGoal {
                behavior: BehaviorId::parse(behavior)
                    .map_err(|e| ApiError::Internal(anyhow::anyhow!("{e}")))?,
                target_quantity: std::num::NonZeroU64::new(target)
                    .unwrap_or(std::num::NonZeroU64::MIN),
            };
            (
                Some(Goal {
                    behavior: behavior.clone(),
                    quantity: target,
                }),
                Some(done),
                Some(goal.progress_percent(done)),
            )
        }
        _ => (None, None, None),
    };
    let board = match row.scoring() {
        Scoring::PerCapita => BoardKey::ChallengePerCapita(row.id),
        Scoring::Total => BoardKey::ChallengeTotal(row.id),
    };
    Ok(Challenge {
        id: row.id,
        season_id: row.season_id,
        kind: wire_kind(kind_of(&row.kind)),
        title: row.title.clone(),
        behaviors: row.behaviors.clone(),
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        ended_early_at: row.ended_early_at,
        status: rules.status_at(now).as_str().to_owned(),
        finalized: row.finalized_at.is_some(),
        scoring: row.scoring(),
        required_confirmations: u8::try_from(row.required_confirmations).unwrap_or(1),
        goal,
        goal_progress,
        goal_percent,
        participants: participants
            .into_iter()
            .map(|(id, state)| Participant {
                id,
                name: names.get(&id).cloned().unwrap_or_default(),
                state,
            })
            .collect(),
        board: board.to_string(),
    })
}

/// Challenges the caller can see in a season (default: the active one), newest first.
pub async fn list(
    state: &AppState,
    actor: &Actor,
    season_id: Option<schema::SeasonId>,
) -> ApiResult<Vec<Challenge>> {
    let season = standings::season_for(state, season_id).await?;
    let mut conn = state.db.acquire().await?;
    let rows: Vec<Row> = query(format!(
        "SELECT {COLUMNS} FROM challenges WHERE season_id = $1 ORDER BY id DESC LIMIT 500"
    ))
    .bind(season.id)
    .fetch_all(&mut conn)
    .await?;
    let mut out = Vec::new();
    for row in rows {
        if visible(&mut conn, actor, &row).await? {
            out.push(wire(state, &mut conn, &row).await?);
        }
    }
    Ok(out)
}

/// Invites more participants (its creator or an admin of its school, before it ends).
pub async fn invite(
    state: &AppState,
    actor: &Actor,
    id: ChallengeId,
    ids: &[Uuid],
) -> ApiResult<Challenge> {
    let mut tx = state.db.begin().await?;
    let row = fetch(&mut tx, id, true).await?;
    may_manage(actor, &row)?;
    let kind = kind_of(&row.kind);
    if matches!(
        row.rules()?.status_at(OffsetDateTime::now_utc()),
        ChallengeStatus::Finished | ChallengeStatus::Cancelled
    ) {
        return Err(ApiError::Conflict(
            "challenge_over",
            "the challenge is over".into(),
        ));
    }
    if ids.is_empty() || ids.len() > 200 {
        return Err(ApiError::validation(
            "participant_ids",
            "name 1 to 200 participants",
        ));
    }
    for p in ids {
        if participant_school(&mut tx, kind, *p).await?.is_none() {
            return Err(ApiError::validation(
                "participant_ids",
                format!("{p} cannot take part in this challenge"),
            ));
        }
        let state_name = if answers_for(&mut tx, actor, kind, *p).await? {
            "accepted"
        } else {
            "invited"
        };
        query(
            "INSERT INTO challenge_participants (challenge_id, participant_id, state) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(p)
        .bind(state_name)
        .execute(&mut tx)
        .await?;
    }
    tx.commit().await?;
    get(state, actor, id).await
}

fn may_manage(actor: &Actor, row: &Row) -> ApiResult<()> {
    let ok = match *actor {
        Actor::User {
            role: Role::ProgrammeAdmin,
            ..
        } => true,
        Actor::User {
            role: Role::SchoolAdmin,
            school_id,
            ..
        } => row.school_id.is_some() && school_id == row.school_id,
        Actor::User { id, .. } => id == row.created_by,
        Actor::Student { .. } | Actor::Station { .. } => false,
    };
    if ok { Ok(()) } else { Err(ApiError::Forbidden) }
}

/// The invited participants' teacher (or school admin) accepts or declines. A class may still
/// join a running challenge: its behaviours count from then on.
pub async fn answer(
    state: &AppState,
    actor: &Actor,
    id: ChallengeId,
    ids: &[Uuid],
    accept: bool,
) -> ApiResult<Challenge> {
    if ids.is_empty() || ids.len() > 200 {
        return Err(ApiError::validation(
            "participant_ids",
            "name 1 to 200 participants",
        ));
    }
    let mut tx = state.db.begin().await?;
    let row = fetch(&mut tx, id, true).await?;
    let kind = kind_of(&row.kind);
    let status = row.rules()?.status_at(OffsetDateTime::now_utc());
    // Answering is open until the challenge is over (the rules close it at the start; here a
    // late class may still join a running battle).
    let answering_status = if status == ChallengeStatus::Active {
        ChallengeStatus::Scheduled
    } else {
        status
    };
    let mut changed = Vec::new();
    for p in ids {
        let current: Option<(String,)> =
            query("SELECT state FROM challenge_participants WHERE challenge_id = $1 AND participant_id = $2")
                .bind(id)
                .bind(p)
                .fetch_optional(&mut tx)
                .await?;
        let Some((current,)) = current else {
            return Err(ApiError::NotFoundWith(
                "not_invited",
                "this participant was not invited to the challenge",
            ));
        };
        if !answers_for(&mut tx, actor, kind, *p).await? {
            return Err(ApiError::Forbidden);
        }
        let from = match current.as_str() {
            "accepted" => InvitationState::Accepted,
            "declined" => InvitationState::Declined,
            _ => InvitationState::Invited,
        };
        let to = if accept {
            from.accept(answering_status)
        } else {
            from.decline(answering_status)
        }
        .map_err(|e| ApiError::Conflict("invitation_closed", e.to_string()))?;
        query("UPDATE challenge_participants SET state = $3, responded_at = $4 WHERE challenge_id = $1 AND participant_id = $2")
            .bind(id)
            .bind(p)
            .bind(if to.takes_part() { "accepted" } else { "declined" })
            .bind(OffsetDateTime::now_utc())
            .execute(&mut tx)
            .await?;
        changed.push(*p);
    }
    tx.commit().await?;
    let challenge = get(state, actor, id).await?;
    events::announce(
        state,
        format!("challenge:{id}"),
        serde_json::json!({"kind": "participants", "challenge": &challenge}),
    )
    .await;
    Ok(challenge)
}

/// An admin (or its creator) ends a challenge before its time; it is finalised at once.
pub async fn end_early(state: &AppState, actor: &Actor, id: ChallengeId) -> ApiResult<Challenge> {
    let mut tx = state.db.begin().await?;
    let row = fetch(&mut tx, id, true).await?;
    may_manage(actor, &row)?;
    let mut rules = row.rules()?;
    let now = OffsetDateTime::now_utc();
    rules
        .end_early(now)
        .map_err(|e| ApiError::Conflict("challenge_not_running", e.to_string()))?;
    query("UPDATE challenges SET ended_early_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    finalize(state, id).await?;
    get(state, actor, id).await
}

/// Records which challenges a new submission counts for (the rules' `admits`), per participant.
#[expect(
    clippy::too_many_arguments,
    reason = "the facts of one submission, passed as they are"
)]
pub async fn link_submission(
    conn: &mut dyn AsConn,
    season: &SeasonInfo,
    submission: SubmissionId,
    student: StudentId,
    class: ClassId,
    school: SchoolId,
    behavior: &BehaviorId,
    occurred_at: OffsetDateTime,
    now: OffsetDateTime,
) -> ApiResult<()> {
    let has_behavior = conn.as_conn().dialect().has_text("c.behaviors", "$2");
    let candidates: Vec<(Uuid,)> = query(format!(
        "SELECT DISTINCT c.id FROM challenges c JOIN challenge_participants p ON p.challenge_id = c.id AND p.state = 'accepted' \
         WHERE c.season_id = $1 AND c.finalized_at IS NULL AND {has_behavior} \
           AND ((c.kind = 'class_vs_class' AND p.participant_id = $3) OR (c.kind = 'school_vs_school' AND p.participant_id = $4) \
             OR (c.kind = 'club_vs_club' AND p.participant_id IN (SELECT club_id FROM club_members WHERE student_id = $5)))",
    ))
    .bind(season.id)
    .bind(behavior.as_str())
    .bind(class)
    .bind(school)
    .bind(student)
    .fetch_all(&mut *conn)
    .await?;
    for (id,) in candidates {
        let row = fetch(conn, ChallengeId(id), false).await?;
        if row.rules()?.admits(behavior, occurred_at, now).is_err() {
            continue;
        }
        query(
            "INSERT INTO submission_challenges (submission_id, challenge_id, participant_id) \
             SELECT $1, $2, p.participant_id FROM challenge_participants p \
             WHERE p.challenge_id = $2 AND p.state = 'accepted' AND (p.participant_id IN ($3, $4) \
               OR p.participant_id IN (SELECT club_id FROM club_members WHERE student_id = $5))",
        )
        .bind(submission)
        .bind(id)
        .bind(class)
        .bind(school)
        .bind(student)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Finalises every challenge whose time is up (run by every node; each challenge once).
pub async fn finalize_due(state: &AppState) -> ApiResult<()> {
    let due: Vec<(ChallengeId,)> = query(
        "SELECT id FROM challenges WHERE finalized_at IS NULL \
           AND (ends_at <= $1 OR (ended_early_at IS NOT NULL AND ended_early_at <= $1)) LIMIT 50",
    )
    .bind(OffsetDateTime::now_utc())
    .fetch_all(&state.db)
    .await?;
    for (id,) in due {
        finalize(state, id).await?;
    }
    Ok(())
}

/// Writes a challenge's final standings once, then drops its live boards and tells subscribers.
pub async fn finalize(state: &AppState, id: ChallengeId) -> ApiResult<()> {
    let mut tx = state.db.begin().await?;
    // Postgres: one node takes it, the others skip it. SQLite: the transaction holds the
    // database's write lock, and `finalized_at IS NULL` is read under it.
    let skip_locked = tx.dialect().pick(" FOR UPDATE SKIP LOCKED", "");
    let row: Option<Row> = query(format!(
        "SELECT {COLUMNS} FROM challenges WHERE id = $1 AND finalized_at IS NULL{skip_locked}"
    ))
    .bind(id)
    .fetch_optional(&mut tx)
    .await?;
    let Some(row) = row else { return Ok(()) };
    let season = season(&mut tx, row.season_id).await?;
    let boards = compute_boards(&mut tx, row.season_id, Some(id)).await?;
    // A challenge with no points yet still gets its (empty) standings: nothing to write.
    write_final(&mut tx, &season, &boards).await?;
    query("UPDATE challenges SET finalized_at = $2 WHERE id = $1")
        .bind(id)
        .bind(OffsetDateTime::now_utc())
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    tracing::info!(challenge.id = %id, "challenge finalised");
    for board in [
        BoardKey::ChallengeTotal(id),
        BoardKey::ChallengePerCapita(id),
    ] {
        if let Err(e) = state.league.boards.drop_board(row.season_id, board).await {
            tracing::warn!(error = %e, "cannot drop a finalised challenge's live board");
        }
        let _ = state
            .league
            .bus
            .publish(&LiveMessage::BoardsChanged {
                season: row.season_id,
                boards: vec![board.to_string()],
            })
            .await;
    }
    let board = match row.scoring() {
        Scoring::PerCapita => BoardKey::ChallengePerCapita(id),
        Scoring::Total => BoardKey::ChallengeTotal(id),
    };
    let standings = standings::read_board(state, &season, board, View::Top(100)).await?;
    let mut conn = state.db.acquire().await?;
    let row = fetch(&mut conn, id, false).await?;
    let challenge = wire(state, &mut conn, &row).await?;
    events::announce(
        state,
        format!("challenge:{id}"),
        serde_json::json!({"kind": "finished", "challenge": challenge, "standings": standings}),
    )
    .await;
    Ok(())
}

/// Whether `actor` may follow a challenge's topic or read its boards.
pub async fn may_follow(state: &AppState, actor: &Actor, id: ChallengeId) -> ApiResult<()> {
    let mut conn = state.db.acquire().await?;
    let row = fetch(&mut conn, id, false).await?;
    if visible(&mut conn, actor, &row).await? {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Finalises every open challenge of a season (at season close).
pub async fn finalize_season(state: &AppState, season: schema::SeasonId) -> ApiResult<()> {
    let open: Vec<(ChallengeId,)> =
        query("SELECT id FROM challenges WHERE season_id = $1 AND finalized_at IS NULL")
            .bind(season)
            .fetch_all(&state.db)
            .await?;
    for (id,) in open {
        finalize(state, id).await?;
    }
    Ok(())
}
