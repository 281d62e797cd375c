//! HTTP request and response bodies of `/api/v1`.
//!
//! Requests reject unknown fields (`deny_unknown_fields`), so a misspelt field is a 422 naming
//! it rather than a silently ignored value. Instants are RFC 3339 strings; school days are
//! `YYYY-MM-DD` strings.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use utoipa::{IntoParams, ToSchema};

use crate::ids::{ClassId, SchoolId, SeasonId, StudentId, UserId};

time::serde::format_description!(iso_date, Date, "[year]-[month]-[day]");

/// Who an account or a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The provincial programme office: schools and seasons.
    ProgrammeAdmin,
    /// Runs one school: its teachers, classes, clubs and stations.
    SchoolAdmin,
    /// Runs their own classes and their challenges.
    Teacher,
    /// A student, signed in on a device with a join code and a nickname.
    Student,
    /// A station's display, showing its rotating code.
    Station,
}

impl Role {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProgrammeAdmin => "programme_admin",
            Self::SchoolAdmin => "school_admin",
            Self::Teacher => "teacher",
            Self::Student => "student",
            Self::Station => "station",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "programme_admin" => Some(Self::ProgrammeAdmin),
            "school_admin" => Some(Self::SchoolAdmin),
            "teacher" => Some(Self::Teacher),
            "student" => Some(Self::Student),
            "station" => Some(Self::Station),
            _ => None,
        }
    }
}

/// Keyset pagination: `?limit=50&after=<id of the last item seen>`.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// How many items, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// Return the items after this id (the `next_after` of the previous page).
    pub after: Option<uuid::Uuid>,
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items, oldest first.
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<uuid::Uuid>,
}

impl<T> Page<T> {
    /// The same page with every item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_after: self.next_after,
        }
    }
}

/// `POST /auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The account's username (case-insensitive).
    pub username: String,
    /// The account's password.
    pub password: String,
}

/// A bearer token, shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// When the token stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// An adult account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// programme_admin, school_admin or teacher.
    pub role: Role,
    /// The school, for school admins and teachers.
    pub school_id: Option<SchoolId>,
    /// The sign-in name.
    pub username: String,
    /// The name shown to others.
    pub display_name: String,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `POST /auth/login` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// The bearer token.
    #[serde(flatten)]
    pub token: TokenResponse,
    /// Who signed in.
    pub user: User,
}

/// Who the bearer of a token is (`GET /me`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Me {
    /// An adult account.
    User(User),
    /// A student.
    Student(Student),
    /// A station's display.
    Station(StationRef),
}

/// A station display's identity.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StationRef {
    /// The station.
    pub id: crate::ids::StationId,
    /// Its school.
    pub school_id: SchoolId,
}

/// `POST /schools`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSchool {
    /// The school's name, 1 to 100 characters.
    pub name: String,
    /// Its county (县/区), 1 to 100 characters.
    pub county: String,
    /// One of the programme's pioneer schools (default false).
    #[serde(default)]
    pub pioneer: bool,
}

/// A school.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct School {
    /// Its id.
    pub id: SchoolId,
    /// Its name.
    pub name: String,
    /// Its county.
    pub county: String,
    /// One of the pioneer schools aiming at a 15% cut.
    pub pioneer: bool,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `POST /schools/{id}/admins` and `POST /schools/{id}/teachers`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Sign-in name: 3 to 40 characters of ASCII letters, digits, `.`, `_`, `-`; unique.
    pub username: String,
    /// Name shown to others, 1 to 60 characters.
    pub display_name: String,
    /// At least 10 characters.
    pub password: String,
}

/// `POST /classes`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClass {
    /// School grade, 1 to 12.
    pub grade: i16,
    /// The class's name within its grade, 1 to 40 characters (e.g. "3班").
    pub name: String,
}

/// A class. `join_code` is present only for its teacher and the school's admins.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Class {
    /// Its id.
    pub id: ClassId,
    /// Its school.
    pub school_id: SchoolId,
    /// Its teacher.
    pub teacher_id: UserId,
    /// Grade, 1 to 12.
    pub grade: i16,
    /// Name within the grade.
    pub name: String,
    /// The code students join with (teachers and admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_code: Option<String>,
    /// How many students are on the roster.
    pub student_count: i64,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `POST /classes/{id}/join-code`: the new join code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JoinCodeResponse {
    /// The new code; the old one stopped working.
    pub join_code: String,
}

/// `POST /join`: a student joins a class from their device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The class's join code, as read aloud (case and dashes do not matter).
    pub join_code: String,
    /// 1 to 20 characters: letters (Chinese included), digits, spaces, `_`, `-`, `.`.
    pub nickname: String,
}

/// `POST /join` answer: the student's device token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JoinResponse {
    /// The device token.
    #[serde(flatten)]
    pub token: TokenResponse,
    /// The student.
    pub student: Student,
}

/// `POST /classes/{id}/students`: a roster student without a device.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddStudent {
    /// Same rules as when joining.
    pub nickname: String,
}

/// A student on a class roster.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Student {
    /// Its id.
    pub id: StudentId,
    /// Its class.
    pub class_id: ClassId,
    /// The nickname, unique in the class.
    pub nickname: String,
    /// Joined from a device (false: put on the roster by the teacher).
    pub has_device: bool,
    /// When they joined.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `POST /seasons`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSeason {
    /// 1 to 100 characters, e.g. "2026 autumn semester".
    pub name: String,
    /// First school day, `YYYY-MM-DD`.
    #[serde(with = "iso_date")]
    #[schema(value_type = String, format = Date)]
    pub starts_on: Date,
    /// Last school day (inclusive), `YYYY-MM-DD`.
    #[serde(with = "iso_date")]
    #[schema(value_type = String, format = Date)]
    pub ends_on: Date,
    /// The time zone school days are counted in: Asia/Shanghai (default), Asia/Urumqi or UTC.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// A season's life-cycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeasonStatus {
    /// Created, not yet playing.
    Draft,
    /// The one season that scores now.
    Active,
    /// Finished for good.
    Closed,
}

/// A season.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Season {
    /// Its id.
    pub id: SeasonId,
    /// Its name.
    pub name: String,
    /// First school day.
    #[serde(with = "iso_date")]
    #[schema(value_type = String, format = Date)]
    pub starts_on: Date,
    /// Last school day (inclusive).
    #[serde(with = "iso_date")]
    #[schema(value_type = String, format = Date)]
    pub ends_on: Date,
    /// The time zone of its school days.
    pub timezone: String,
    /// draft, active or closed.
    pub status: SeasonStatus,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it was activated.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub activated_at: Option<OffsetDateTime>,
    /// When it was closed.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
}

/// `GET /readyz` answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// The database backend: "postgres" or "sqlite" (the embedded file).
    pub database: String,
    /// "ok" (a 503 names what is down instead).
    pub database_status: String,
    /// "ok" when a Redis carries leaderboards and live events, "in_process" when they live in
    /// this process (no Redis configured).
    pub redis: String,
}
