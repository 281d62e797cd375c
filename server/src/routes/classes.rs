//! Classes, their join codes and their rosters.
//!
//! A teacher creates classes in their school; each gets a join code that is easy to read aloud
//! and that its teacher can rotate (the old code stops working at once). Students join from a
//! device with the code and a nickname, or the teacher puts them on the roster without one.

use crate::store::{Conn, query};
use axum::extract::State;
use axum::http::StatusCode;
use game_rules::join_code::{self, JoinCode};
use game_rules::nickname::Nickname;
use rand::RngExt as _;
use schema::api::{
    AddStudent, Class, CreateClass, JoinCodeResponse, Page, PageQuery, Role, Student,
};
use schema::{ClassId, ErrorBody, SchoolId, StudentId, UserId};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Actor, Principal};
use crate::error::{ApiError, ApiResult, violated_constraint};
use crate::extract::{Json, Path, Query};
use crate::routes::auth::insert_student;
use crate::routes::{into_page, page_params, text_field};
use crate::state::AppState;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_class, list_classes))
        .routes(routes!(get_class))
        .routes(routes!(rotate_join_code))
        .routes(routes!(add_student, list_students))
        .routes(routes!(remove_student))
}

/// A class as stored, with its roster size.
#[derive(sqlx::FromRow)]
pub(crate) struct ClassRow {
    /// Its id.
    pub(crate) id: ClassId,
    /// Its school.
    pub(crate) school_id: SchoolId,
    /// Its teacher.
    pub(crate) teacher_id: UserId,
    grade: i16,
    name: String,
    join_code: String,
    student_count: i64,
    created_at: OffsetDateTime,
}

impl ClassRow {
    /// The wire form; the join code only for those who manage the class.
    fn into_wire(self, show_code: bool) -> Class {
        Class {
            id: self.id,
            school_id: self.school_id,
            teacher_id: self.teacher_id,
            grade: self.grade,
            name: self.name,
            join_code: show_code.then_some(self.join_code),
            student_count: self.student_count,
            created_at: self.created_at,
        }
    }
}

macro_rules! class_columns {
    () => {
        "c.id, c.school_id, c.teacher_id, c.grade, c.name, c.join_code, c.created_at, \
         (SELECT count(*) FROM students s WHERE s.class_id = c.id AND s.removed_at IS NULL) AS student_count"
    };
}

/// A student as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct StudentRow {
    /// Its id.
    pub(crate) id: StudentId,
    class_id: ClassId,
    nickname: String,
    has_device: bool,
    created_at: OffsetDateTime,
}

impl StudentRow {
    /// The wire form.
    pub(crate) fn into_wire(self) -> Student {
        Student {
            id: self.id,
            class_id: self.class_id,
            nickname: self.nickname,
            has_device: self.has_device,
            created_at: self.created_at,
        }
    }
}

/// One student still on a roster.
pub(crate) async fn fetch_student(
    db: impl Into<Conn<'_>>,
    id: StudentId,
) -> ApiResult<Option<StudentRow>> {
    Ok(query(
        "SELECT id, class_id, nickname, has_device, created_at FROM students WHERE id = $1 AND removed_at IS NULL",
    )
    .bind(id)
    .fetch_optional(db)
    .await?)
}

/// One class, or 404.
pub(crate) async fn fetch_class(db: impl Into<Conn<'_>>, id: ClassId) -> ApiResult<ClassRow> {
    query(concat!(
        "SELECT ",
        class_columns!(),
        " FROM classes c WHERE c.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or(ApiError::NotFound("class"))
}

/// The class, if the caller manages it (its teacher, its school's admin, the programme office).
async fn managed_class(state: &AppState, actor: &Actor, id: ClassId) -> ApiResult<ClassRow> {
    let class = fetch_class(&state.db, id).await?;
    if actor.manages_class(class.school_id, class.teacher_id) {
        Ok(class)
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

/// Creates a class in the teacher's school, with a fresh join code.
#[utoipa::path(post, path = "/classes", tag = "classes", security(("bearer" = [])), request_body = CreateClass, responses(
    (status = 201, body = Class), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody, description = "only teachers create classes"),
    (status = 409, body = ErrorBody, description = "`class_exists`: same grade and name in the school"), (status = 422, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn create_class(
    State(state): State<AppState>,
    principal: Principal,
    Json(req): Json<CreateClass>,
) -> ApiResult<(StatusCode, Json<Class>)> {
    let Actor::User {
        id: teacher_id,
        role: Role::Teacher,
        school_id: Some(school_id),
    } = principal.actor
    else {
        return Err(ApiError::Forbidden);
    };
    if !(1..=12).contains(&req.grade) {
        return Err(ApiError::validation(
            "grade",
            "grade must be between 1 and 12",
        ));
    }
    let name = text_field("name", &req.name, 40)?;
    let id = ClassId::new();
    for _ in 0..JOIN_CODE_ATTEMPTS {
        let code = new_join_code();
        let inserted = query(
            "INSERT INTO classes (id, school_id, teacher_id, grade, name, join_code) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(school_id)
        .bind(teacher_id)
        .bind(req.grade)
        .bind(&name)
        .bind(code.as_str())
        .execute(&state.db)
        .await;
        match inserted {
            Ok(_) => {
                tracing::info!(class.id = %id, "class created");
                let class = fetch_class(&state.db, id).await?;
                return Ok((StatusCode::CREATED, Json(class.into_wire(true))));
            }
            Err(e) => match violated_constraint(&e) {
                Some("classes_join_code_key") => continue,
                Some("classes_school_grade_name_key") => {
                    return Err(ApiError::Conflict(
                        "class_exists",
                        "a class of that grade and name already exists in the school".into(),
                    ));
                }
                _ => return Err(e.into()),
            },
        }
    }
    Err(ApiError::Internal(anyhow::anyhow!(
        "no free join code after {JOIN_CODE_ATTEMPTS} draws"
    )))
}

/// Lists classes: a teacher's own, a school admin's school's, every class for the programme
/// office, and a student's own class.
#[utoipa::path(get, path = "/classes", tag = "classes", security(("bearer" = [])), params(PageQuery), responses(
    (status = 200, body = Page<Class>), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
))]
async fn list_classes(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<Class>>> {
    let (limit, after) = page_params(&q)?;
    let (teacher, school, class): (Option<UserId>, Option<SchoolId>, Option<ClassId>) =
        match principal.actor {
            Actor::User {
                role: Role::ProgrammeAdmin,
                ..
            } => (None, None, None),
            Actor::User {
                role: Role::Teacher,
                id,
                ..
            } => (Some(id), None, None),
            Actor::User { school_id, .. } => (None, school_id, None),
            Actor::Student { class_id, .. } => (None, None, Some(class_id)),
            Actor::Station { .. } => return Err(ApiError::Forbidden),
        };
    let rows: Vec<ClassRow> = query(concat!(
        "SELECT ",
        class_columns!(),
        " FROM classes c WHERE ($1 IS NULL OR c.teacher_id = $1) AND ($2 IS NULL OR c.school_id = $2) \
         AND ($3 IS NULL OR c.id = $3) AND ($4 IS NULL OR c.id > $4) ORDER BY c.id LIMIT $5"
    ))
    .bind(teacher)
    .bind(school)
    .bind(class)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await?;
    let show_code = principal.actor.role() != Role::Student;
    let page = into_page(rows, limit, |r| r.id.0);
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|c| c.into_wire(show_code))
            .collect(),
        next_after: page.next_after,
    }))
}

/// One class: for those who manage it (with its join code) and for its own students.
#[utoipa::path(get, path = "/classes/{class_id}", tag = "classes", security(("bearer" = [])),
    params(("class_id" = String, Path, description = "the class's id")), responses(
    (status = 200, body = Class), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
async fn get_class(
    State(state): State<AppState>,
    principal: Principal,
    Path(class_id): Path<ClassId>,
) -> ApiResult<Json<Class>> {
    let class = fetch_class(&state.db, class_id).await?;
    if principal
        .actor
        .manages_class(class.school_id, class.teacher_id)
    {
        return Ok(Json(class.into_wire(true)));
    }
    match principal.actor {
        Actor::Student { class_id: own, .. } if own == class_id => Ok(Json(class.into_wire(false))),
        _ => Err(ApiError::Forbidden),
    }
}

/// Draws a new join code for the class; the old one stops working at once.
#[utoipa::path(post, path = "/classes/{class_id}/join-code", tag = "classes", security(("bearer" = [])),
    params(("class_id" = String, Path, description = "the class's id")), responses(
    (status = 200, body = JoinCodeResponse), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn rotate_join_code(
    State(state): State<AppState>,
    principal: Principal,
    Path(class_id): Path<ClassId>,
) -> ApiResult<Json<JoinCodeResponse>> {
    managed_class(&state, &principal.actor, class_id).await?;
    for _ in 0..JOIN_CODE_ATTEMPTS {
        let code = new_join_code();
        let updated = query("UPDATE classes SET join_code = $2 WHERE id = $1")
            .bind(class_id)
            .bind(code.as_str())
            .execute(&state.db)
            .await;
        match updated {
            Ok(_) => {
                tracing::info!(class.id = %class_id, "join code rotated");
                return Ok(Json(JoinCodeResponse {
                    join_code: code.to_string(),
                }));
            }
            Err(e) if violated_constraint(&e) == Some("classes_join_code_key") => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Internal(anyhow::anyhow!(
        "no free join code after {JOIN_CODE_ATTEMPTS} draws"
    )))
}

/// Puts a student on the roster without a device (phones are not allowed in many classrooms).
#[utoipa::path(post, path = "/classes/{class_id}/students", tag = "classes", security(("bearer" = [])),
    params(("class_id" = String, Path, description = "the class's id")), request_body = AddStudent, responses(
    (status = 201, body = Student), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody, description = "`nickname_taken`"), (status = 422, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn add_student(
    State(state): State<AppState>,
    principal: Principal,
    Path(class_id): Path<ClassId>,
    Json(req): Json<AddStudent>,
) -> ApiResult<(StatusCode, Json<Student>)> {
    managed_class(&state, &principal.actor, class_id).await?;
    let nickname = Nickname::parse(&req.nickname)
        .map_err(|e| ApiError::validation("nickname", e.to_string()))?;
    let mut conn = state.db.acquire().await?;
    let student = insert_student(&mut conn, class_id, &nickname, false).await?;
    drop(conn);
    tracing::info!(student.id = %student.id, class.id = %class_id, "student added to roster");
    crate::routes::auth::roster_changed(&state, class_id).await;
    Ok((StatusCode::CREATED, Json(student.into_wire())))
}

/// The class roster: for those who manage the class and for its own students.
#[utoipa::path(get, path = "/classes/{class_id}/students", tag = "classes", security(("bearer" = [])),
    params(("class_id" = String, Path, description = "the class's id"), PageQuery), responses(
    (status = 200, body = Page<Student>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
async fn list_students(
    State(state): State<AppState>,
    principal: Principal,
    Path(class_id): Path<ClassId>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<Page<Student>>> {
    let (limit, after) = page_params(&q)?;
    let class = fetch_class(&state.db, class_id).await?;
    let own_student =
        matches!(principal.actor, Actor::Student { class_id: own, .. } if own == class_id);
    if !own_student
        && !principal
            .actor
            .manages_class(class.school_id, class.teacher_id)
    {
        return Err(ApiError::Forbidden);
    }
    let rows: Vec<StudentRow> = query(
        "SELECT id, class_id, nickname, has_device, created_at FROM students \
         WHERE class_id = $1 AND removed_at IS NULL AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
    )
    .bind(class_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.db)
    .await?;
    Ok(Json(
        into_page(rows, limit, |r| r.id.0).map(StudentRow::into_wire),
    ))
}

/// Takes a student off the roster and signs their device out. Their past points stay in the
/// history; the nickname becomes free again.
#[utoipa::path(delete, path = "/classes/{class_id}/students/{student_id}", tag = "classes", security(("bearer" = [])),
    params(("class_id" = String, Path, description = "the class's id"), ("student_id" = String, Path, description = "the student's id")),
    responses(
    (status = 204, description = "removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
))]
#[tracing::instrument(skip_all)]
async fn remove_student(
    State(state): State<AppState>,
    principal: Principal,
    Path((class_id, student_id)): Path<(ClassId, StudentId)>,
) -> ApiResult<StatusCode> {
    managed_class(&state, &principal.actor, class_id).await?;
    let mut tx = state.db.begin().await?;
    let removed = query(
        "UPDATE students SET removed_at = $3 WHERE id = $1 AND class_id = $2 AND removed_at IS NULL",
    )
    .bind(student_id)
    .bind(class_id)
    .bind(time::OffsetDateTime::now_utc())
    .execute(&mut tx)
    .await?;
    if removed.rows_affected() == 0 {
        return Err(ApiError::NotFound("student"));
    }
    query("UPDATE auth_tokens SET revoked_at = $2 WHERE student_id = $1 AND revoked_at IS NULL")
        .bind(student_id)
        .bind(time::OffsetDateTime::now_utc())
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    tracing::info!(student.id = %student_id, class.id = %class_id, "student removed from roster");
    crate::routes::auth::roster_changed(&state, class_id).await;
    Ok(StatusCode::NO_CONTENT)
}
