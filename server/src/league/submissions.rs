//! Submissions and their verification: the service behind `POST /submissions`, the teacher's
//! entries, peer confirmation, approval, rejection and revocation — over HTTP and WebSocket alike.
//!
//! Every write happens in one Postgres transaction that holds a per-student advisory lock, so
//! daily caps and idempotency keys hold under concurrent retries. The client hears "ok" only after
//! the commit; the boards are updated and the change announced afterwards.

use std::collections::BTreeSet;

use crate::store::{AsConn, IdList, query};
use game_rules::catalogue::{Behavior, VerificationMethod};
use game_rules::scoring::{ScoringError, score_submission};
use game_rules::station::{StationCodeError, StationSecret};
use game_rules::verification::{PeerError, RequiredConfirmations, VerificationState, VerifiedBy};
use game_rules::window::{TimeWindow, WindowError, check_occurrence};
use schema::api::Role;
use schema::league::{
    BulkResult, Refusal, Submission, SubmissionStatus, SubmitBehavior, TeacherSubmit,
};
use schema::{ChallengeId, ClassId, SchoolId, StationId, StudentId, SubmissionId, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::Actor;
use crate::error::{ApiError, ApiResult};
use crate::league::boards::PointsEvent;
use crate::league::{SeasonInfo, challenges, events, require_active_season};
use crate::state::AppState;

/// The most submissions one approve, reject or bulk entry may carry.
pub const MAX_BATCH: usize = 500;

#[derive(sqlx::FromRow)]
struct SubmissionRow {
    id: SubmissionId,
    season_id: schema::SeasonId,
    student_id: StudentId,
    nickname: String,
    class_id: ClassId,
    behavior_id: String,
    quantity: i32,
    occurred_at: OffsetDateTime,
    points: i64,
    mg_co2e: i64,
    factor_version: String,
    note: Option<String>,
    created_at: OffsetDateTime,
    outcome: Option<String>,
    method: Option<String>,
    revoked: bool,
    confirmations: i64,
    required: i64,
    #[sqlx(try_from = "IdList")]
    challenge_ids: Vec<Uuid>,
}

impl SubmissionRow {
    fn into_wire(self) -> Submission {
        let status = match (self.outcome.as_deref(), self.revoked) {
            (_, true) => SubmissionStatus::Revoked,
            (Some("verified"), _) => SubmissionStatus::Verified,
            (Some(_), _) => SubmissionStatus::Rejected,
            (None, _) => SubmissionStatus::Pending,
        };
        Submission {
            id: self.id,
            season_id: self.season_id,
            student_id: self.student_id,
            nickname: self.nickname,
            class_id: self.class_id,
            behavior: self.behavior_id,
            quantity: u32::try_from(self.quantity).unwrap_or(0),
            occurred_at: self.occurred_at,
            points: self.points,
            mg_co2e: self.mg_co2e,
            factor_version: self.factor_version,
            status,
            method: self.method,
            confirmations: self.confirmations,
            required_confirmations: self.required,
            challenge_ids: self.challenge_ids.into_iter().map(ChallengeId).collect(),
            note: self.note,
            created_at: self.created_at,
        }
    }
}

/// Loads submissions in the wire form, in the order of `ids`.
pub async fn load(
    conn: &mut dyn AsConn,
    default_required: u8,
    ids: &[SubmissionId],
) -> ApiResult<Vec<Submission>> {
    let dialect = conn.as_conn().dialect();
    let rows: Vec<SubmissionRow> = query(format!(
        "SELECT s.id, s.season_id, s.student_id, st.nickname, s.class_id, s.behavior_id, s.quantity, s.occurred_at, \
           s.points, s.mg_co2e, s.factor_version, s.note, s.created_at, v.outcome, v.method, \
           (r.submission_id IS NOT NULL) AS revoked, \
           (SELECT count(*) FROM peer_confirmations pc WHERE pc.submission_id = s.id) AS confirmations, \
           CAST(COALESCE((SELECT max(c.required_confirmations) FROM submission_challenges sc \
              JOIN challenges c ON c.id = sc.challenge_id WHERE sc.submission_id = s.id), $2) AS BIGINT) AS required, \
           {challenge_ids} AS challenge_ids \
         FROM submissions s JOIN students st ON st.id = s.student_id \
         LEFT JOIN verifications v ON v.submission_id = s.id \
         LEFT JOIN revocations r ON r.submission_id = s.id \
         WHERE {in_ids}",
        challenge_ids = dialect.pick(
            "ARRAY(SELECT DISTINCT sc.challenge_id FROM submission_challenges sc WHERE sc.submission_id = s.id)",
            "(SELECT json_group_array(DISTINCT lower(hex(sc.challenge_id))) FROM submission_challenges sc WHERE sc.submission_id = s.id)",
        ),
        in_ids = dialect.in_ids("s.id", "$1"),
    ))
    .bind(ids.iter().copied().collect::<IdList>())
    .bind(i16::from(default_required))
    .fetch_all(&mut *conn)
    .await?;
    let mut by_id: std::collections::HashMap<SubmissionId, Submission> =
        rows.into_iter().map(|r| (r.id, r.into_wire())).collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

async fn load_one(
    state: &AppState,
    conn: &mut dyn AsConn,
    id: SubmissionId,
) -> ApiResult<Submission> {
    load(conn, state.league.default_confirmations, &[id])
        .await?
        .pop()
        .ok_or(ApiError::NotFound("submission"))
}

/// Who a submission is entered for and by.
struct Entry<'a> {
    student: StudentId,
    class: ClassId,
    school: SchoolId,
    behavior: &'a Behavior,
    quantity: u32,
    occurred_at: OffsetDateTime,
    scope: Uuid,
    key: String,
    station_code: Option<&'a str>,
    station_id: Option<StationId>,
    note: Option<&'a str>,
    entered_by: Option<UserId>,
}

/// What writing one entry produced.
enum Written {
    /// Created now; with the board event if it was verified at once.
    Created(SubmissionId, Option<PointsEvent>),
    /// The idempotency key was used before: the first submission.
    Replayed(SubmissionId),
}

fn key_field(key: &str) -> ApiResult<String> {
    let key = key.trim();
    if key.is_empty() || key.chars().count() > 100 || key.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "idempotency_key",
            "idempotency_key must be 1 to 100 characters",
        ));
    }
    Ok(key.to_owned())
}

fn note_field(note: Option<&str>) -> ApiResult<Option<&str>> {
    match note.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) if n.chars().count() > 200 => Err(ApiError::validation(
            "note",
            "note has at most 200 characters",
        )),
        Some(n) if n.chars().any(char::is_control) => Err(ApiError::validation(
            "note",
            "note must not contain control characters",
        )),
        other => Ok(other),
    }
}

fn behavior<'a>(state: &'a AppState, id: &str) -> ApiResult<&'a Behavior> {
    state.league.catalogue.get(id).ok_or_else(|| {
        ApiError::Refused(
            "unknown_behavior",
            format!("`{id}` is not a behaviour of the catalogue (GET /behaviors)"),
        )
    })
}

fn window_error(e: WindowError) -> ApiError {
    let code = match e {
        WindowError::InTheFuture { .. } => "in_the_future",
        WindowError::TooLate { .. } => "too_late",
        WindowError::BeforeSeasonStart | WindowError::AfterSeasonEnd => "outside_season",
        WindowError::OutsideChallengeWindow | WindowError::ChallengeNotActive { .. } => {
            "outside_window"
        }
        WindowError::BehaviorNotInChallenge => "behavior_not_in_challenge",
    };
    ApiError::Refused(code, e.to_string())
}

fn scoring_error(e: ScoringError) -> ApiError {
    let code = match e {
        ScoringError::DailyCapReached { .. } => "over_daily_cap",
        ScoringError::ZeroQuantity | ScoringError::OverSubmissionMax { .. } => {
            "quantity_out_of_range"
        }
        ScoringError::Overflow => "quantity_out_of_range",
    };
    ApiError::Refused(code, e.to_string())
}

async fn lock_student(conn: &mut dyn AsConn, student: StudentId) -> ApiResult<()> {
    crate::store::lock(conn, crate::store::lock_key(student.0, 7), false).await?;
    Ok(())
}

async fn existing(
    conn: &mut dyn AsConn,
    scope: Uuid,
    key: &str,
) -> ApiResult<Option<SubmissionId>> {
    Ok(
        query("SELECT id FROM submissions WHERE idempotency_scope = $1 AND idempotency_key = $2")
            .bind(scope)
            .bind(key)
            .scalar_optional(&mut *conn)
            .await?,
    )
}

/// Writes one entry in the caller's transaction: every rule is checked before anything is
/// stored, so a refusal stores nothing.
async fn write_entry(
    state: &AppState,
    conn: &mut dyn AsConn,
    season: &SeasonInfo,
    e: &Entry<'_>,
    locked: bool,
) -> ApiResult<Written> {
    // The student's lock serialises their caps and keys; the caller may hold it already.
    if !locked {
        lock_student(conn, e.student).await?;
        if let Some(id) = existing(conn, e.scope, &e.key).await? {
            return Ok(Written::Replayed(id));
        }
    }
    let now = OffsetDateTime::now_utc();
    let (start, end) = season.bounds();
    let season_window = TimeWindow::new(start, end)
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("empty season")))?;
    check_occurrence(
        e.occurred_at,
        now,
        &state.league.lateness,
        &season_window,
        None,
    )
    .map_err(window_error)?;
    let day = season.timezone.0.school_day(e.occurred_at);
    let (counted,): (i64,) = query(
        "SELECT CAST(COALESCE(sum(s.quantity), 0) AS BIGINT) FROM submissions s \
         LEFT JOIN verifications v ON v.submission_id = s.id LEFT JOIN revocations r ON r.submission_id = s.id \
         WHERE s.student_id = $1 AND s.behavior_id = $2 AND s.school_day = $3 \
           AND (v.outcome IS NULL OR v.outcome = 'verified') AND r.submission_id IS NULL",
    )
    .bind(e.student)
    .bind(e.behavior.id.as_str())
    .bind(day)
    .fetch_one(&mut *conn)
    .await?;
    let accepted = score_submission(
        e.behavior,
        e.quantity,
        u32::try_from(counted).unwrap_or(u32::MAX),
    )
    .map_err(scoring_error)?;

    let station = match e.station_code {
        Some(_) => Some(check_station_code(conn, e, now).await?),
        None => None,
    };
    let id = SubmissionId::new();
    query(
        "INSERT INTO submissions (id, season_id, student_id, class_id, school_id, behavior_id, quantity, occurred_at, \
           school_day, points, mg_co2e, factor_version, submitted_by_user, station_id, note, idempotency_scope, idempotency_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(id)
    .bind(season.id)
    .bind(e.student)
    .bind(e.class)
    .bind(e.school)
    .bind(e.behavior.id.as_str())
    .bind(i32::try_from(e.quantity).unwrap_or(i32::MAX))
    .bind(e.occurred_at)
    .bind(day)
    .bind(i64::try_from(accepted.award.points).unwrap_or(i64::MAX))
    .bind(i64::try_from(accepted.award.mg_co2e).unwrap_or(i64::MAX))
    .bind(&e.behavior.factor_version)
    .bind(e.entered_by)
    .bind(station.map(|(s, _)| s))
    .bind(e.note)
    .bind(e.scope)
    .bind(&e.key)
    .execute(&mut *conn)
    .await?;
    challenges::link_submission(
        conn,
        season,
        id,
        e.student,
        e.class,
        e.school,
        &e.behavior.id,
        e.occurred_at,
        now,
    )
    .await?;
    let verified_by = match (e.entered_by, station) {
        (Some(_), _) => Some(VerifiedBy::TeacherEntered),
        (None, Some(_)) => Some(VerifiedBy::Station),
        (None, None) => None,
    };
    let event = match verified_by {
        Some(by) => Some(verify(conn, id, by, e.entered_by, e.behavior).await?),
        None => None,
    };
    Ok(Written::Created(id, event))
}

/// Checks a station code for the entry's student and behaviour, and spends it.
async fn check_station_code(
    conn: &mut dyn AsConn,
    e: &Entry<'_>,
    now: OffsetDateTime,
) -> ApiResult<(StationId, u64)> {
    let code = e.station_code.unwrap_or_default();
    if !e
        .behavior
        .verification
        .contains(&VerificationMethod::Station)
    {
        return Err(ApiError::Refused(
            "station_not_accepted",
            format!("`{}` cannot be verified by a station", e.behavior.id),
        ));
    }
    let has_behavior = conn.as_conn().dialect().has_text("behaviors", "$2");
    let stations: Vec<(StationId, Vec<u8>, i32)> = query(format!(
        "SELECT id, secret, window_secs FROM stations \
         WHERE school_id = $1 AND {has_behavior} AND ($3 IS NULL OR id = $3) ORDER BY id",
    ))
    .bind(e.school)
    .bind(e.behavior.id.as_str())
    .bind(e.station_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut malformed = false;
    for (station, secret, window_secs) in stations {
        let Ok(secret) = StationSecret::new(secret) else {
            continue;
        };
        let window = std::num::NonZeroU32::new(u32::try_from(window_secs).unwrap_or(60))
            .unwrap_or(game_rules::station::DEFAULT_WINDOW_SECS);
        match game_rules::station::verify(&secret, code, now, window) {
            Ok(index) => {
                let used = query(
                    "INSERT INTO station_code_uses (station_id, student_id, window_index) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(station)
                .bind(e.student)
                .bind(i64::try_from(index.0).unwrap_or(i64::MAX))
                .execute(&mut *conn)
                .await?;
                if used.rows_affected() == 0 {
                    return Err(ApiError::Refused(
                        "station_code_used",
                        "this station code was already used by this student; wait for the next one"
                            .into(),
                    ));
                }
                return Ok((station, index.0));
            }
            Err(StationCodeError::Malformed) => malformed = true,
            Err(_) => {}
        }
    }
    if malformed {
        return Err(ApiError::validation(
            "station_code",
            "a station code is exactly 6 digits",
        ));
    }
    Err(ApiError::Refused(
        "invalid_station_code",
        "the station code is wrong or expired; read the station's current code".into(),
    ))
}

/// Records a verification and returns the board event for it.
async fn verify(
    conn: &mut dyn AsConn,
    id: SubmissionId,
    by: VerifiedBy,
    user: Option<UserId>,
    behavior: &Behavior,
) -> ApiResult<PointsEvent> {
    VerificationState::Pending
        .verify(by, behavior)
        .map_err(|e| ApiError::Refused("method_not_accepted", e.to_string()))?;
    let (at,): (OffsetDateTime,) = query(
        "INSERT INTO verifications (submission_id, outcome, method, decided_by_user) VALUES ($1, 'verified', $2, $3) \
         RETURNING created_at",
    )
    .bind(id)
    .bind(method_name(by))
    .bind(user)
    .fetch_one(&mut *conn)
    .await?;
    events::points_event(conn, id, 1, at).await
}

fn method_name(by: VerifiedBy) -> &'static str {
    match by {
        VerifiedBy::Teacher => "teacher",
        VerifiedBy::TeacherEntered => "teacher_entered",
        VerifiedBy::Peers => "peer",
        VerifiedBy::Station => "station",
    }
}

/// After commit: boards, then the moderation queue's live view.
async fn after_commit(
    state: &AppState,
    events: Vec<PointsEvent>,
    changed: &[Submission],
    kind: &str,
) {
    events::apply(state, &events).await;
    for s in changed {
        let data = serde_json::json!({ "kind": kind, "submission": s });
        events::announce(state, format!("moderation:{}", s.class_id), data).await;
    }
}

/// A student reports a behaviour. Returns the submission and whether it is a replay of an
/// earlier request with the same idempotency key.
pub async fn submit(
    state: &AppState,
    actor: &Actor,
    req: &SubmitBehavior,
) -> ApiResult<(Submission, bool)> {
    let Actor::Student {
        id: student,
        class_id,
        school_id,
    } = *actor
    else {
        return Err(ApiError::Forbidden);
    };
    let key = key_field(&req.idempotency_key)?;
    let note = note_field(req.note.as_deref())?;
    let behavior = behavior(state, &req.behavior)?;
    let mut tx = state.db.begin().await?;
    lock_student(&mut tx, student).await?;
    // A replay answers even after the season closed or the rules changed.
    if let Some(id) = existing(&mut tx, student.0, &key).await? {
        let s = load_one(state, &mut tx, id).await?;
        return Ok((s, true));
    }
    let season = require_active_season(&mut tx).await?;
    let entry = Entry {
        student,
        class: class_id,
        school: school_id,
        behavior,
        quantity: req.quantity,
        occurred_at: req.occurred_at,
        scope: student.0,
        key,
        station_code: req.station_code.as_deref(),
        station_id: req.station_id,
        note,
        entered_by: None,
    };
    let written = write_entry(state, &mut tx, &season, &entry, true).await?;
    let (id, event, replayed) = match written {
        Written::Created(id, event) => (id, event, false),
        Written::Replayed(id) => (id, None, true),
    };
    let submission = load_one(state, &mut tx, id).await?;
    tx.commit().await?;
    if !replayed {
        let kind = if event.is_some() {
            "verified"
        } else {
            "submitted"
        };
        after_commit(
            state,
            event.into_iter().collect(),
            std::slice::from_ref(&submission),
            kind,
        )
        .await;
    }
    Ok((submission, replayed))
}

/// The class's school and teacher, if the caller manages it (its teacher or its school's admin).
async fn managed_class(
    conn: &mut dyn AsConn,
    actor: &Actor,
    class: ClassId,
) -> ApiResult<SchoolId> {
    let row: Option<(SchoolId, UserId)> =
        query("SELECT school_id, teacher_id FROM classes WHERE id = $1")
            .bind(class)
            .fetch_optional(&mut *conn)
            .await?;
    let (school, teacher) = row.ok_or(ApiError::NotFound("class"))?;
    let allowed = match *actor {
        Actor::User {
            role: Role::Teacher,
            id,
            ..
        } => id == teacher,
        Actor::User {
            role: Role::SchoolAdmin,
            school_id,
            ..
        } => school_id == Some(school),
        _ => false,
    };
    if allowed {
        Ok(school)
    } else {
        Err(ApiError::Forbidden)
    }
}

/// A teacher enters a behaviour for roster students (verified at once, as teacher-entered).
pub async fn teacher_submit(
    state: &AppState,
    actor: &Actor,
    class: ClassId,
    req: &TeacherSubmit,
) -> ApiResult<BulkResult> {
    let user = actor.user_id().ok_or(ApiError::Forbidden)?;
    let key = key_field(&req.idempotency_key)?;
    let note = note_field(req.note.as_deref())?;
    let behavior = behavior(state, &req.behavior)?;
    let mut tx = state.db.begin().await?;
    let school = managed_class(&mut tx, actor, class).await?;
    let roster: Vec<(StudentId,)> =
        query("SELECT id FROM students WHERE class_id = $1 AND removed_at IS NULL ORDER BY id")
            .bind(class)
            .fetch_all(&mut tx)
            .await?;
    let roster: BTreeSet<StudentId> = roster.into_iter().map(|r| r.0).collect();
    let wanted: BTreeSet<StudentId> = match &req.student_ids {
        Some(ids) => ids.iter().copied().collect(),
        None => roster.clone(),
    };
    if wanted.is_empty() || wanted.len() > MAX_BATCH {
        return Err(ApiError::validation(
            "student_ids",
            format!("name 1 to {MAX_BATCH} students"),
        ));
    }
    let season = require_active_season(&mut tx).await?;
    let mut created = Vec::new();
    let mut events = Vec::new();
    let mut refused = Vec::new();
    for student in wanted {
        if !roster.contains(&student) {
            refused.push(Refusal {
                id: student.0,
                code: "not_on_roster".into(),
                message: "this student is not on the class roster".into(),
            });
            continue;
        }
        let entry = Entry {
            student,
            class,
            school,
            behavior,
            quantity: req.quantity,
            occurred_at: req.occurred_at,
            scope: user.0,
            key: format!("{key}/{student}"),
            station_code: None,
            station_id: None,
            note,
            entered_by: Some(user),
        };
        match write_entry(state, &mut tx, &season, &entry, false).await {
            Ok(Written::Created(id, event)) => {
                created.push((id, true));
                events.extend(event);
            }
            Ok(Written::Replayed(id)) => created.push((id, false)),
            Err(e @ (ApiError::Refused(..) | ApiError::Validation { .. })) => {
                refused.push(Refusal {
                    id: student.0,
                    code: e.code().into(),
                    message: e.to_string(),
                })
            }
            Err(e) => return Err(e),
        }
    }
    let ids: Vec<SubmissionId> = created.iter().map(|(id, _)| *id).collect();
    let done = load(&mut tx, state.league.default_confirmations, &ids).await?;
    tx.commit().await?;
    after_commit(state, events, &[], "verified").await;
    Ok(BulkResult { done, refused })
}

#[derive(sqlx::FromRow)]
struct Facts {
    student_id: StudentId,
    class_id: ClassId,
    behavior_id: String,
    season_active: bool,
    outcome: Option<String>,
    revoked: bool,
}

async fn facts(conn: &mut dyn AsConn, id: SubmissionId, lock: bool) -> ApiResult<Facts> {
    if lock {
        crate::store::lock(conn, crate::league::SEASON_LOCK, true).await?;
    }
    // Postgres locks the submission's row; SQLite's transaction already holds the write lock,
    // so nothing else can change it.
    let lock = if lock {
        conn.as_conn().dialect().pick(" FOR UPDATE OF s", "")
    } else {
        ""
    };
    let sql = format!(
        "SELECT s.student_id, s.class_id, s.behavior_id, (se.status = 'active') AS season_active, v.outcome, \
           (r.submission_id IS NOT NULL) AS revoked \
         FROM submissions s JOIN seasons se ON se.id = s.season_id \
         LEFT JOIN verifications v ON v.submission_id = s.id LEFT JOIN revocations r ON r.submission_id = s.id \
         WHERE s.id = $1{lock}"
    );
    query(sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(ApiError::NotFound("submission"))
}

fn state_of(f: &Facts) -> VerificationState {
    match (f.outcome.as_deref(), f.revoked) {
        (_, true) => VerificationState::Revoked,
        (Some("verified"), _) => VerificationState::Verified(VerifiedBy::Teacher),
        (Some(_), _) => VerificationState::Rejected,
        (None, _) => VerificationState::Pending,
    }
}

fn season_closed() -> ApiError {
    ApiError::Conflict(
        "season_closed",
        "the submission's season is closed: its points are final".into(),
    )
}

/// The teacher approves (or rejects) pending submissions, one or many.
pub async fn decide(
    state: &AppState,
    actor: &Actor,
    ids: &[SubmissionId],
    approve: bool,
) -> ApiResult<BulkResult> {
    let user = actor.user_id().ok_or(ApiError::Forbidden)?;
    if ids.is_empty() || ids.len() > MAX_BATCH {
        return Err(ApiError::validation(
            "submission_ids",
            format!("name 1 to {MAX_BATCH} submissions"),
        ));
    }
    let mut tx = state.db.begin().await?;
    let mut done_ids = Vec::new();
    let mut events = Vec::new();
    let mut refused = Vec::new();
    let unique: BTreeSet<SubmissionId> = ids.iter().copied().collect();
    for id in unique {
        let outcome = decide_one(state, &mut tx, actor, user, id, approve).await;
        match outcome {
            Ok(event) => {
                done_ids.push(id);
                events.extend(event);
            }
            Err(e) if e.status().is_client_error() => refused.push(Refusal {
                id: id.0,
                code: e.code().into(),
                message: e.to_string(),
            }),
            Err(e) => return Err(e),
        }
    }
    let done = load(&mut tx, state.league.default_confirmations, &done_ids).await?;
    tx.commit().await?;
    after_commit(
        state,
        events,
        &done,
        if approve { "verified" } else { "rejected" },
    )
    .await;
    Ok(BulkResult { done, refused })
}

async fn decide_one(
    state: &AppState,
    conn: &mut dyn AsConn,
    actor: &Actor,
    user: UserId,
    id: SubmissionId,
    approve: bool,
) -> ApiResult<Option<PointsEvent>> {
    let f = facts(conn, id, true).await?;
    managed_class(conn, actor, f.class_id).await?;
    if !f.season_active {
        return Err(season_closed());
    }
    let current = state_of(&f);
    if approve {
        let behavior = behavior(state, &f.behavior_id)?;
        current
            .verify(VerifiedBy::Teacher, behavior)
            .map_err(|e| ApiError::Conflict("not_pending", e.to_string()))?;
        Ok(Some(
            verify(conn, id, VerifiedBy::Teacher, Some(user), behavior).await?,
        ))
    } else {
        current
            .reject()
            .map_err(|e| ApiError::Conflict("not_pending", e.to_string()))?;
        query(
            "INSERT INTO verifications (submission_id, outcome, method, decided_by_user) VALUES ($1, 'rejected', 'teacher', $2)",
        )
        .bind(id)
        .bind(user)
        .execute(&mut *conn)
        .await?;
        Ok(None)
    }
}

/// A classmate confirms a pending submission; enough confirmations verify it.
pub async fn confirm(state: &AppState, actor: &Actor, id: SubmissionId) -> ApiResult<Submission> {
    let Actor::Student {
        id: confirmer,
        class_id,
        ..
    } = *actor
    else {
        return Err(ApiError::Forbidden);
    };
    let mut tx = state.db.begin().await?;
    let f = facts(&mut tx, id, true).await?;
    if !f.season_active {
        return Err(season_closed());
    }
    let behavior = behavior(state, &f.behavior_id)?;
    let existing: Vec<(StudentId,)> =
        query("SELECT student_id FROM peer_confirmations WHERE submission_id = $1")
            .bind(id)
            .fetch_all(&mut tx)
            .await?;
    let existing: Vec<StudentId> = existing.into_iter().map(|r| r.0).collect();
    let (required,): (i64,) = query(
        "SELECT CAST(COALESCE((SELECT max(c.required_confirmations) FROM submission_challenges sc \
           JOIN challenges c ON c.id = sc.challenge_id WHERE sc.submission_id = $1), $2) AS BIGINT)",
    )
    .bind(id)
    .bind(i16::from(state.league.default_confirmations))
    .fetch_one(&mut tx)
    .await?;
    let required =
        RequiredConfirmations::new(u8::try_from(required).unwrap_or(10)).unwrap_or_default();
    let confirmed = game_rules::verification::confirm(
        &f.student_id,
        &confirmer,
        f.class_id == class_id,
        &existing,
        state_of(&f),
        behavior.verification.contains(&VerificationMethod::Peer),
        required,
    )
    .map_err(|e| {
        let code = match e {
            PeerError::SelfConfirmation => "self_confirmation",
            PeerError::NotAClassmate => return ApiError::Forbidden,
            PeerError::AlreadyConfirmed => "already_confirmed",
            PeerError::PeersNotAccepted => "peer_not_accepted",
            PeerError::NotPending(_) => "not_pending",
        };
        ApiError::Conflict(code, e.to_string())
    })?;
    query("INSERT INTO peer_confirmations (submission_id, student_id) VALUES ($1, $2)")
        .bind(id)
        .bind(confirmer)
        .execute(&mut tx)
        .await?;
    let event = if confirmed.now_verified {
        Some(verify(&mut tx, id, VerifiedBy::Peers, None, behavior).await?)
    } else {
        None
    };
    let submission = load_one(state, &mut tx, id).await?;
    tx.commit().await?;
    let kind = if event.is_some() {
        "verified"
    } else {
        "confirmed"
    };
    after_commit(
        state,
        event.into_iter().collect(),
        std::slice::from_ref(&submission),
        kind,
    )
    .await;
    Ok(submission)
}

/// The teacher takes back a verified submission: its points come off every board.
pub async fn revoke(
    state: &AppState,
    actor: &Actor,
    id: SubmissionId,
    reason: Option<&str>,
) -> ApiResult<Submission> {
    let user = actor.user_id().ok_or(ApiError::Forbidden)?;
    let reason = note_field(reason)
        .map_err(|_| ApiError::validation("reason", "reason has at most 200 characters"))?;
    let mut tx = state.db.begin().await?;
    let f = facts(&mut tx, id, true).await?;
    managed_class(&mut tx, actor, f.class_id).await?;
    if !f.season_active {
        return Err(season_closed());
    }
    state_of(&f)
        .revoke()
        .map_err(|e| ApiError::Conflict("not_verified", e.to_string()))?;
    let (at,): (OffsetDateTime,) = query(
        "INSERT INTO revocations (submission_id, revoked_by, reason) VALUES ($1, $2, $3) RETURNING created_at",
    )
    .bind(id)
    .bind(user)
    .bind(reason)
    .fetch_one(&mut tx)
    .await?;
    let event = events::points_event(&mut tx, id, -1, at).await?;
    let submission = load_one(state, &mut tx, id).await?;
    tx.commit().await?;
    after_commit(
        state,
        vec![event],
        std::slice::from_ref(&submission),
        "revoked",
    )
    .await;
    Ok(submission)
}

/// One submission: for its student, their classmates (to confirm it) and its class's staff.
pub async fn get(state: &AppState, actor: &Actor, id: SubmissionId) -> ApiResult<Submission> {
    let mut conn = state.db.acquire().await?;
    let f = facts(&mut conn, id, false).await?;
    let allowed = match *actor {
        Actor::Student { class_id, .. } => class_id == f.class_id,
        _ => managed_class(&mut conn, actor, f.class_id).await.is_ok(),
    };
    if !allowed {
        return Err(ApiError::Forbidden);
    }
    load_one(state, &mut conn, id).await
}

/// Pending submissions of a class, oldest first (its teacher and school admin).
pub async fn moderation_queue(
    state: &AppState,
    actor: &Actor,
    class: ClassId,
    limit: i64,
    after: Option<Uuid>,
) -> ApiResult<schema::api::Page<Submission>> {
    let mut conn = state.db.acquire().await?;
    managed_class(&mut conn, actor, class).await?;
    let ids: Vec<(SubmissionId,)> = query(
        "SELECT s.id FROM submissions s LEFT JOIN verifications v ON v.submission_id = s.id \
         WHERE s.class_id = $1 AND v.submission_id IS NULL AND ($2 IS NULL OR s.id > $2) \
         ORDER BY s.id LIMIT $3",
    )
    .bind(class)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&mut conn)
    .await?;
    let ids: Vec<SubmissionId> = ids.into_iter().map(|r| r.0).collect();
    let items = load(&mut conn, state.league.default_confirmations, &ids).await?;
    Ok(crate::routes::into_page(items, limit, |s| s.id.0))
}

/// A student's own submissions, newest first.
pub async fn mine(state: &AppState, actor: &Actor, limit: i64) -> ApiResult<Vec<Submission>> {
    let Actor::Student { id, .. } = *actor else {
        return Err(ApiError::Forbidden);
    };
    let mut conn = state.db.acquire().await?;
    let ids: Vec<(SubmissionId,)> =
        query("SELECT id FROM submissions WHERE student_id = $1 ORDER BY id DESC LIMIT $2")
            .bind(id)
            .bind(limit)
            .fetch_all(&mut conn)
            .await?;
    let ids: Vec<SubmissionId> = ids.into_iter().map(|r| r.0).collect();
    load(&mut conn, state.league.default_confirmations, &ids).await
}

/// Whether the caller may follow a class's moderation queue.
pub async fn may_moderate(state: &AppState, actor: &Actor, class: ClassId) -> ApiResult<()> {
    let mut conn = state.db.acquire().await?;
    managed_class(&mut conn, actor, class).await.map(|_| ())
}
