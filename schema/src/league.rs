//! HTTP bodies of the league: the behaviour catalogue, submissions and their verification,
//! challenges, clubs, stations and leaderboards.
//!
//! The WebSocket carries the same bodies (see [`crate::ws`]): a `submit` over the socket answers
//! the same [`Submission`] as `POST /submissions`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::ids::{
    ChallengeId, ClassId, ClubId, SchoolId, SeasonId, StationId, StudentId, SubmissionId,
};

/// A behaviour of the catalogue (`config/behaviors.toml`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Behavior {
    /// Stable id, e.g. `meatless_meal`.
    pub id: String,
    /// Chinese name.
    pub name_zh: String,
    /// English name.
    pub name_en: String,
    /// The unit quantities are counted in: meal, kg, item, km, kwh, sheet, m3.
    pub unit: String,
    /// Milligrams of CO2e avoided per unit.
    pub mg_co2e_per_unit: u64,
    /// Points per unit.
    pub points_per_unit: u32,
    /// Largest quantity in one submission.
    pub max_quantity_per_submission: u32,
    /// Most units a student may score per school day.
    pub daily_cap_per_student: u32,
    /// Accepted verification methods besides the teacher: `peer`, `station`, `teacher`.
    pub verification: Vec<String>,
    /// Where the emission factor comes from.
    pub factor_source: String,
    /// The factor's version, recorded on every submission scored with it.
    pub factor_version: String,
}

/// `POST /submissions` (a student) and the WebSocket `submit`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBehavior {
    /// A behaviour id from `GET /behaviors`.
    pub behavior: String,
    /// How many units, 1 to the behaviour's `max_quantity_per_submission`.
    pub quantity: u32,
    /// When it happened (RFC 3339). Late reports are accepted within the configured lateness.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// A key the client makes up once per behaviour and reuses on every retry (1 to 100
    /// characters): a retry returns the first answer and never counts twice.
    pub idempotency_key: String,
    /// The 6-digit code shown by a station of the student's school: verifies at once.
    #[serde(default)]
    pub station_code: Option<String>,
    /// Which station shows the code (optional: the code is tried on every station of the school
    /// that accepts the behaviour).
    #[serde(default)]
    pub station_id: Option<StationId>,
    /// A short note for the teacher, at most 200 characters.
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /classes/{class_id}/submissions`: a teacher enters a behaviour for roster students —
/// one, some, or the whole class at once ("32 of 35 ate the meatless lunch").
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeacherSubmit {
    /// A behaviour id.
    pub behavior: String,
    /// Units per student.
    pub quantity: u32,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// One key per entry (each student's part is keyed `<key>/<student id>`).
    pub idempotency_key: String,
    /// The students; absent means the whole current roster.
    #[serde(default)]
    pub student_ids: Option<Vec<StudentId>>,
    /// A short note, at most 200 characters.
    #[serde(default)]
    pub note: Option<String>,
}

/// Where a submission stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubmissionStatus {
    /// Waiting for the teacher or for classmates.
    Pending,
    /// Counted.
    Verified,
    /// Refused by the teacher; never counted.
    Rejected,
    /// Was counted, taken back by the teacher: its points came off every board.
    Revoked,
}

/// A submitted behaviour.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Submission {
    /// Its id.
    pub id: SubmissionId,
    /// The season it scores in.
    pub season_id: SeasonId,
    /// The student.
    pub student_id: StudentId,
    /// Their nickname.
    pub nickname: String,
    /// Their class.
    pub class_id: ClassId,
    /// The behaviour.
    pub behavior: String,
    /// Units.
    pub quantity: u32,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// Points it is worth once verified.
    pub points: i64,
    /// Milligrams of CO2e avoided.
    pub mg_co2e: i64,
    /// The emission factor's version it was scored with.
    pub factor_version: String,
    /// Where it stands.
    pub status: SubmissionStatus,
    /// How it was verified (or rejected): teacher, teacher_entered, peer, station.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Classmates' confirmations so far.
    pub confirmations: i64,
    /// Confirmations needed for peer verification.
    pub required_confirmations: i64,
    /// Challenges it counts for.
    pub challenge_ids: Vec<ChallengeId>,
    /// The student's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When it was submitted.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One refused student of a teacher's bulk entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Refusal {
    /// The student (or submission) refused.
    pub id: Uuid,
    /// The error code, as in the error envelope.
    pub code: String,
    /// Why.
    pub message: String,
}

/// The answer to a bulk entry or a bulk decision: what was done and what was refused.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BulkResult {
    /// Submissions created or decided.
    pub done: Vec<Submission>,
    /// Entries refused, with their reason.
    pub refused: Vec<Refusal>,
}

/// `POST /submissions/approve` and `/reject` (and their WebSocket twins).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decide {
    /// 1 to 500 submissions of classes the caller teaches.
    pub submission_ids: Vec<SubmissionId>,
}

/// `POST /submissions/{id}/revoke`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    /// Why, at most 200 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

/// What competes in a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeKind {
    /// Classes against classes (a teacher or a school admin creates it).
    ClassVsClass,
    /// Schools against schools (the programme office or a school admin).
    SchoolVsSchool,
    /// Clubs against clubs (a teacher or a school admin).
    ClubVsClub,
}

/// How a challenge ranks its participants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scoring {
    /// Points per member (the default): a class of 15 can beat a class of 60.
    PerCapita,
    /// Total points.
    Total,
}

/// A collective goal, e.g. 1,000 meatless meals this week.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Goal {
    /// The behaviour counted (one of the challenge's).
    pub behavior: String,
    /// The target quantity, in the behaviour's unit.
    pub quantity: u64,
}

/// `POST /challenges`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateChallenge {
    /// What competes.
    pub kind: ChallengeKind,
    /// 1 to 100 characters.
    pub title: String,
    /// The behaviours that count (ids from `GET /behaviors`).
    pub behaviors: Vec<String>,
    /// Start, inside the active season.
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    /// End, inside the active season.
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    /// Default: per capita.
    #[serde(default)]
    pub scoring: Option<Scoring>,
    /// Classmates' confirmations needed for peer verification, 1 to 10 (default 2).
    #[serde(default)]
    pub required_confirmations: Option<u8>,
    /// An optional collective goal.
    #[serde(default)]
    pub goal: Option<Goal>,
    /// Classes, schools or clubs (by kind) to invite. Those the creator runs take part at once.
    pub participants: Vec<Uuid>,
}

/// `POST /challenges/{id}/invite`, `/accept` and `/decline`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Participants {
    /// Class, school or club ids.
    pub participant_ids: Vec<Uuid>,
}

/// A challenge participant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Participant {
    /// The class, school or club.
    pub id: Uuid,
    /// Its display name.
    pub name: String,
    /// invited, accepted or declined.
    pub state: String,
}

/// A challenge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Challenge {
    /// Its id.
    pub id: ChallengeId,
    /// Its season.
    pub season_id: SeasonId,
    /// What competes.
    pub kind: ChallengeKind,
    /// Title.
    pub title: String,
    /// Behaviours that count.
    pub behaviors: Vec<String>,
    /// Start.
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    /// End (the planned one).
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    /// When an admin ended it early.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ended_early_at: Option<OffsetDateTime>,
    /// scheduled, active or finished.
    pub status: String,
    /// Whether its final standings are written.
    pub finalized: bool,
    /// Ranking.
    pub scoring: Scoring,
    /// Peer confirmations needed.
    pub required_confirmations: u8,
    /// The collective goal, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<Goal>,
    /// Progress to the goal: quantity verified so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal_progress: Option<u64>,
    /// Progress in whole percent (0 to 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal_percent: Option<u8>,
    /// Participants.
    pub participants: Vec<Participant>,
    /// The board to follow: `challenge:<id>:per_capita` or `challenge:<id>:total`.
    pub board: String,
}

/// `POST /clubs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClub {
    /// 1 to 40 characters, unique in the school.
    pub name: String,
}

/// `POST /clubs/join`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinClub {
    /// The club's join code.
    pub join_code: String,
}

/// A club.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Club {
    /// Its id.
    pub id: ClubId,
    /// Its school.
    pub school_id: SchoolId,
    /// Its name.
    pub name: String,
    /// Its join code (for its members and the school's staff).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_code: Option<String>,
    /// Members.
    pub member_count: i64,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A member of a club, as its members and its school's staff see it: a nickname, never more.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ClubMember {
    /// The student.
    pub student_id: StudentId,
    /// Their nickname.
    pub nickname: String,
    /// When they joined the club.
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
}

/// `POST /stations`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStation {
    /// 1 to 60 characters, unique in the school (e.g. "Canteen line 2").
    pub name: String,
    /// Behaviours it verifies; each must accept station verification.
    pub behaviors: Vec<String>,
    /// Code rotation period in seconds, 15 to 3600 (default 60).
    #[serde(default)]
    pub window_secs: Option<u32>,
}

/// A station.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Station {
    /// Its id.
    pub id: StationId,
    /// Its school.
    pub school_id: SchoolId,
    /// Its name.
    pub name: String,
    /// Behaviours it verifies.
    pub behaviors: Vec<String>,
    /// Code rotation period, seconds.
    pub window_secs: u32,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A station's current code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StationCode {
    /// The station.
    pub station_id: StationId,
    /// Six digits.
    pub code: String,
    /// The window it belongs to.
    pub window_index: u64,
    /// When the next code replaces it (the current one is still accepted for one more window).
    #[serde(with = "time::serde::rfc3339")]
    pub next_at: OffsetDateTime,
}

/// One row of a leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BoardEntry {
    /// 1-based rank; ties go to whoever reached the score first.
    pub rank: u64,
    /// The student, class, school or club.
    pub id: Uuid,
    /// Its display name (a nickname only inside its class).
    pub name: String,
    /// The ranked score: total points, or thousandths of a point per member for per-capita boards.
    pub score: u64,
    /// Total verified points.
    pub points: i64,
    /// When it reached its score.
    #[serde(with = "time::serde::rfc3339")]
    pub reached_at: OffsetDateTime,
}

/// A leaderboard view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Board {
    /// The board, e.g. `class:<id>`, `school:<id>`, `province`, `challenge:<id>:per_capita`,
    /// `club:<id>`, `school:<id>:clubs`.
    pub board: String,
    /// The season.
    pub season_id: SeasonId,
    /// `total` or `per_capita` (score is then thousandths of a point per member).
    pub scoring: Scoring,
    /// True when these are the final standings kept in Postgres.
    pub r#final: bool,
    /// Entities on the board.
    pub size: u64,
    /// The requested rows: the top, or the rows around an entity.
    pub entries: Vec<BoardEntry>,
}
