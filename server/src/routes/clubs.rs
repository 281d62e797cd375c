//! Clubs: groups of students across the classes of one school, with a join code.
//!
//! A teacher, a school admin or a student creates a club in their own school; a student creator
//! is its first member. Students of the same school join with its code, and from then on their
//! season points also count on the club's boards (served by the leaderboards, not here). A club
//! and its members' nicknames are visible to its members and to its school's staff only: minors'
//! nicknames never leave their class, club and school.

use axum::extract::{ConnectInfo, State};

use crate::listener::ClientAddr;
use crate::store::{Conn, query};
use axum::http::StatusCode;
use game_rules::join_code::{self, JoinCode};
use rand::RngExt as _;
use schema::api::{Page, PageQuery, Role};
use schema::league::{Club, ClubMember, CreateClub, JoinClub};
use schema::{ClubId, ErrorBody, SchoolId, StudentId, UserId};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Actor, Principal};
use crate::error::{ApiError, ApiResult, violated_constraint};
use crate::extract::{Json, Path, Query};
use crate::league::events;
use crate::routes::{into_page, page_params, text_field};
use crate::state::{AppState, check_rate};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_club, list_clubs))
        .routes(routes!(join_club))
        .routes(routes!(get_club))
        .routes(routes!(list_members))
}

/// A club as stored, with its member count and whether the caller is a member.
#[derive(sqlx::FromRow)]
struct ClubRow {
    id: ClubId,
    school_id: SchoolId,
    name: String,
    join_code: String,
    member_count: i64,
    /// Whether the calling student is a member (always false for adults).
    is_member: bool,
    created_at: OffsetDateTime,
}

impl ClubRow {
    /// The wire form; the join code only for those who may see it.
    fn into_wire(self, show_code: bool) -> Club {
        Club {
            id: self.id,
            school_id: self.school_id,
            name: self.name,
            join_code: show_code.then_some(self.join_code),
            member_count: self.member_count,
            created_at: self.created_at,
        }
    }
}

/// Columns of [`ClubRow`] for `clubs c`; `$1` is the calling student (or NULL). Removed
/// students stay in `club_members` (their history stays) but no longer count.
macro_rules! club_columns {
    () => {
        "c.id, c.school_id, c.name, c.join_code, c.created_at, \
         (SELECT count(*) FROM club_members m JOIN students s ON s.id = m.student_id \
            WHERE m.club_id = c.id AND s.removed_at IS NULL) AS member_count, \
         EXISTS (SELECT 1 FROM club_members m WHERE m.club_id = c.id AND m.student_id = $1) AS is_member"
    };
}

/// One club, seen by `student` (for `is_member`), or 404.
async fn fetch_club(
    db: impl Into<Conn<'_>>,
    id: ClubId,
    student: Option<StudentId>,
) -> ApiResult<ClubRow> {
    query(concat!(
        "SELECT ",
        club_columns!(),
        " FROM clubs c WHERE c.id = $2"
    ))
    .bind(student)
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(ApiError::NotFound("club"))
}

/// The calling student, if the caller is one.
fn student_of(actor: &Actor) -> Option<StudentId> {
    match *actor {
        Actor::Student { id, .. } => Some(id),
        _ => None,
    }
}

/// Whether `actor` is staff of `school`: one of its school admins or teachers, or the programme
/// office.
fn is_staff_of(actor: &Actor, school: SchoolId) -> bool {
    match *actor {
        Actor::User {
            role: Role::ProgrammeAdmin,
            ..
        } => true,
        Actor::User {
            role: Role::SchoolAdmin | Role::Teacher,
            school_id,
            ..
        } => school_id == Some(school),
        _ => false,
    }
}

/// The club, if the caller may see it (a member, or staff of its school); else 403.
async fn visible_club(state: &AppState, actor: &Actor, id: ClubId) -> ApiResult<ClubRow> {
    let club = fetch_club(&state.db, id, student_of(actor)).await?;
    if club.is_member || is_staff_of(actor, club.school_id) {
        Ok(club)
    } else {
        Err(ApiError::Forbidden)
    }
}

fn new_join_code() -> JoinCode {
    JoinCode::from_random_bytes(rand::rng().random::<[u8; join_code::LEN]>())
}

/// How many times a freshly drawn join code may collide before giving up (31^6 codes make one
/// collision already rare).
const JOIN_CODE_ATTEMPTS: usize = 8;

/// The longest club name, in characters.
const MAX_NAME_CHARS: usize = 40;

/// Puts the student in the club; a second time is a 409 `already_member`.
async fn insert_member(db: impl Into<Conn<'_>>, club: ClubId, student: StudentId) -> ApiResult<()> {
    query("INSERT INTO club_members (club_id, student_id) VALUES ($1, $2)")
        .bind(club)
        .bind(student)
        .execute(db)
        .await
        .map_err(|e| match violated_constraint(&e) {
            Some("club_members_pkey") => ApiError::Conflict(
                "already_member",
                "you are already a member of this club".into(),
            ),
            _ => e.into(),
        })?;
    Ok(())
}

/// After a join has committed: the student's season points join the club's boards. Postgres
/// already holds the membership, and the boards can be rebuilt from it, so a failure here is
/// logged and does not undo the join.
async fn announce_join(state: &AppState, club: ClubId, student: StudentId) {
    let event = match state.db.acquire().await {
        Ok(mut conn) => events::club_joined(&mut conn, club, student).await,
        Err(e) => Err(e.into()),
    };
    match event {
        Ok(Some(event)) => events::apply(state, &[event]).await,
        Ok(None) => {}
        Err(err) => tracing::error!(
            error = %err, club.id = %club, student.id = %student,
            "club boards not updated after a join; rebuild the boards"
        ),
    }
}

/// Creates a club in the caller's school, with a fresh join code. A student creator becomes its
/// first member.
#[utoipa::path(post, path = "/clubs", tag = "clubs", security(("bearer" = [])), request_body = CreateClub, responses(
    (status = 201, body = Club, description = "the club, with its join code"),
    (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "only teachers, school admins and students of a school create clubs"),
    (status = 409, body = ErrorBody, description = "`club_exists`: a club of that name already exists in the school"),
    (status = 422, body = ErrorBody, description = "`name` is empty, longer than 40 characters or holds control characters"),
))]
#[tracing::instrument(skip_all)]
async fn create_club(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<CreateClub>,
) -> ApiResult<(StatusCode, Json<Club>)> {
    let (school_id, by_user, by_student): (SchoolId, Option<UserId>, Option<StudentId>) =
        match principal.actor {
            Actor::User {
                id,
                role: Role::Teacher | Role::SchoolAdmin,
                school_id: Some(school),
            } => (school, Some(id), None),
            Actor::Student { id, school_id, .. } => (school_id, None, Some(id)),
            _ => return Err(ApiError::Forbidden),
        };
    let name = text_field("name", &req.name, MAX_NAME_CHARS)?;
    let id = ClubId::new();
    for _ in 0..JOIN_CODE_ATTEMPTS {
        let code = new_join_code();
        let mut tx = state.db.begin().await?;
        let inserted = query(
            "INSERT INTO clubs (id, school_id, name, join_code, created_by_user, created_by_student) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(school_id)
        .bind(&name)
        .bind(code.as_str())
        .bind(by_user)
        .bind(by_student)
        .execute(&mut tx)
        .await;
        match inserted {
            Ok(_) => {
                if let Some(student) = by_student {
                    insert_member(&mut tx, id, student).await?;
                }
                tx.commit().await?;
                tracing::info!(club.id = %id, school.id = %school_id, "club created");
                if let Some(student) = by_student {
                    announce_join(&state, id, student).await;
                }
                let club = fetch_club(&state.db, id, by_student).await?;
                return Ok((StatusCode::CREATED, Json(club.into_wire(true))));
            }
            // The failed statement aborted the transaction; dropping it rolls it back.
            Err(e) => match violated_constraint(&e) {
                Some("clubs_join_code_key") => continue,
                Some("clubs_school_name_key") => {
                    return Err(ApiError::Conflict(
                        "club_exists",
                        "a club of that name already exists in the school".into(),
                    ));
                }
                _ => return Err(e.into()),
            },
        }
    }
    Err(ApiError::Internal(anyhow::anyhow!(
        "no free club join code after {JOIN_CODE_ATTEMPTS} draws"
    )))
}

/// A student joins a club of their own school with its join code.
///
/// A code of a club of another school answers exactly like a code that does not exist (404
/// `invalid_join_code`): codes are unique across the province, and a 403 would tell a guesser
/// that the code belongs to some other school's club.
#[utoipa::path(post, path = "/clubs/join", tag = "clubs", security(("bearer" = [])), request_body = JoinClub, responses(
    (status = 200, body = Club, description = "the club joined, with its join code"),
    (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "only students join clubs"),
    (status = 404, body = ErrorBody, description = "`invalid_join_code`: no club of the student's school has this code"),
    (status = 409, body = ErrorBody, description = "`already_member`"),
    (status = 422, body = ErrorBody, description = "`join_code` is not a well-formed join code"),
    (status = 429, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn join_club(
    State(state): State<AppState>,
    ConnectInfo(ClientAddr(addr)): ConnectInfo<ClientAddr>,
    principal: Principal,
    Json(req): Json<JoinClub>,
) -> ApiResult<Json<Club>> {
    let Actor::Student {
        id: student,
        school_id,
        ..
    } = principal.actor
    else {
        return Err(ApiError::Forbidden);
    };
    // The class-join limiter: it exists to slow down guessing of join codes, which is what
    // trying club codes from one address would be.
    check_rate(&state.limits.join, &addr.ip())?;
    let code = JoinCode::parse(&req.join_code)
        .map_err(|e| ApiError::validation("join_code", e.to_string()))?;
    let club: Option<(ClubId,)> =
        query("SELECT id FROM clubs WHERE join_code = $1 AND school_id = $2")
            .bind(code.as_str())
            .bind(school_id)
            .fetch_optional(&state.db)
            .await?;
    let Some((club_id,)) = club else {
        return Err(ApiError::NotFoundWith(
            "invalid_join_code",
            "no club of your school has this join code; ask a member for the current one",
        ));
    };
    insert_member(&state.db, club_id, student).await?;
    tracing::info!(club.id = %club_id, student.id = %student, "student joined a club");
    announce_join(&state, club_id, student).await;
    let club = fetch_club(&state.db, club_id, Some(student)).await?;
    Ok(Json(club.into_wire(true)))
}

/// Lists clubs: those of the caller's school (every club for the programme office). Join codes
/// are shown to the school's staff, and to students for the clubs they belong to.
#[utoipa::path(get, path = "/clubs", tag = "clubs", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = Page<Club>), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "station displays and accounts without a school"),
    (status = 422, body = ErrorBody),
))]
async fn list_clubs(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<Club>>> {
    let (limit, after) = page_params(&q)?;
    let actor = principal.actor;
    let school: Option<SchoolId> = match actor {
        Actor::User {
            role: Role::ProgrammeAdmin,
            ..
        } => None,
        Actor::User {
            school_id: Some(school),
            ..
        }
        | Actor::Student {
            school_id: school, ..
        } => Some(school),
        Actor::User {
            school_id: None, ..
        }
        | Actor::Station { .. } => {
            return Err(ApiError::Forbidden);
        }
    };
    let rows: Vec<ClubRow> = query(concat!(
        "SELECT ",
        club_columns!(),
        " FROM clubs c WHERE ($2 IS NULL OR c.school_id = $2) AND ($3 IS NULL OR c.id > $3) \
         ORDER BY c.id LIMIT $4"
    ))
    .bind(student_of(&actor))
    .bind(school)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await?;
    let page = into_page(rows, limit, |r| r.id.0);
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|c| {
                let show_code = c.is_member || is_staff_of(&actor, c.school_id);
                c.into_wire(show_code)
            })
            .collect(),
        next_after: page.next_after,
    }))
}

/// One club, with its join code: for its members and its school's staff.
#[utoipa::path(get, path = "/clubs/{club_id}", tag = "clubs", security(("bearer" = [])),
    params(("club_id" = String, Path, description = "the club's id")), responses(
    (status = 200, body = Club), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "neither a member nor staff of its school"),
    (status = 404, body = ErrorBody),
))]
async fn get_club(
    State(state): State<AppState>,
    principal: Principal,
    Path(club_id): Path<ClubId>,
) -> ApiResult<Json<Club>> {
    let club = visible_club(&state, &principal.actor, club_id).await?;
    Ok(Json(club.into_wire(true)))
}

#[derive(sqlx::FromRow)]
struct MemberRow {
    student_id: StudentId,
    nickname: String,
    joined_at: OffsetDateTime,
}

/// The club's members, by nickname: for its members and its school's staff.
#[utoipa::path(get, path = "/clubs/{club_id}/members", tag = "clubs", security(("bearer" = [])),
    params(("club_id" = String, Path, description = "the club's id"), PageQuery), responses(
    (status = 200, body = Page<ClubMember>), (status = 401, body = ErrorBody),
    (status = 403, body = ErrorBody, description = "neither a member nor staff of its school"),
    (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
))]
async fn list_members(
    State(state): State<AppState>,
    principal: Principal,
    Path(club_id): Path<ClubId>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<ClubMember>>> {
    let (limit, after) = page_params(&q)?;
    visible_club(&state, &principal.actor, club_id).await?;
    let rows: Vec<MemberRow> = query(
        "SELECT m.student_id, s.nickname, m.joined_at FROM club_members m \
         JOIN students s ON s.id = m.student_id \
         WHERE m.club_id = $1 AND s.removed_at IS NULL AND ($2 IS NULL OR m.student_id > $2) \
         ORDER BY m.student_id LIMIT $3",
    )
    .bind(club_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await?;
    let page = into_page(rows, limit, |r| r.student_id.0);
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|r| ClubMember {
                student_id: r.student_id,
                nickname: r.nickname,
                joined_at: r.joined_at,
            })
            .collect(),
        next_after: page.next_after,
    }))
}
