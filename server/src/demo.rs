//! A playable demo school, seeded through the real HTTP API.
//!
//! [`seed`] drives the server's own router in-process (no socket, no base URL), exactly as a
//! client would: it signs in, creates a school, a teacher, two classes of different sizes with
//! roster students, an active season if none is, a class-versus-class challenge between the two
//! classes, and a few teacher-entered (verified at once) submissions so the boards are not
//! empty. Every step first looks for what an earlier run made, so running it again is harmless:
//! it then only reads, and prints the same information.
//!
//! The demo's accounts have fixed, printed passwords (see [`DEMO_PASSWORD`]): seed a demo only
//! where that is acceptable (the zero-setup embedded mode), never into a real deployment.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use game_rules::season::{SchoolTimeZone, season_bounds};
use schema::api::{
    AddStudent, Class, CreateClass, CreateSchool, CreateSeason, CreateUser, LoginRequest,
    LoginResponse, Page, School, Season, SeasonStatus, Student,
};
use schema::league::{
    BulkResult, Challenge, ChallengeKind, CreateChallenge, Goal, Participants, TeacherSubmit,
};
use schema::{ChallengeId, ClassId, ErrorBody, StudentId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use tower::ServiceExt as _;
use uuid::Uuid;

use crate::listener::ClientAddr;
use crate::state::AppState;

/// The demo programme admin's username.
pub const DEMO_ADMIN: &str = "demo.admin";
/// The demo teacher's username; the teacher runs both demo classes.
pub const DEMO_TEACHER: &str = "demo.teacher";
/// The password of both demo accounts: fixed and printed, because this is a demo.
pub const DEMO_PASSWORD: &str = "carbon-league-demo";
/// The demo school's name.
pub const DEMO_SCHOOL: &str = "Demo School";
/// The demo school's county.
pub const DEMO_COUNTY: &str = "Menghai";
/// The demo challenge's title.
pub const DEMO_CHALLENGE: &str = "Sunflowers vs Maples: meatless week";

/// The demo classes: grade, name and roster nicknames (two sizes, so per-capita scoring shows).
const CLASSES: [(i16, &str, &[&str]); 2] = [
    (
        5,
        "Sunflowers",
        &[
            "小明", "小红", "Ada", "Bao", "Chen", "Dai", "Eli", "Fang", "Gao", "Hui", "Jun", "Kai",
        ],
    ),
    (
        5,
        "Maples",
        &["小华", "Lan", "Mei", "Ning", "Ou", "Ping", "Qing"],
    ),
];

/// The behaviours of the demo challenge.
const CHALLENGE_BEHAVIORS: [&str; 2] = ["meatless_meal", "clean_plate"];

/// Verified points to start with, per class (in the order of [`CLASSES`]): for each behaviour,
/// how many roster students (from the top of the roster) did it once.
const SEED_POINTS: [&[(&str, usize)]; 2] = [
    &[("meatless_meal", 9), ("clean_plate", 4)],
    &[("meatless_meal", 7), ("clean_plate", 2)],
];

/// A nickname the printed example joins with (on no demo roster).
const EXAMPLE_NICKNAME: &str = "Xiaoyu";

/// The address the demo's requests come from (handlers that rate-limit by address read it).
const DEMO_CLIENT: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// The largest answer the demo reads.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// What the demo seeded: everything needed to try it, printed by its [`fmt::Display`].
#[derive(Debug, Clone)]
pub struct DemoInfo {
    /// The demo programme admin's username.
    pub admin_username: String,
    /// Its password.
    pub admin_password: String,
    /// The demo teacher's username.
    pub teacher_username: String,
    /// Its password.
    pub teacher_password: String,
    /// The school's name.
    pub school: String,
    /// The school's county.
    pub county: String,
    /// The active season's name.
    pub season: String,
    /// The two classes.
    pub classes: Vec<DemoClass>,
    /// The class-versus-class challenge between them.
    pub challenge_id: ChallengeId,
    /// Its title.
    pub challenge_title: String,
    /// Its board, e.g. `challenge:<id>:per_capita`.
    pub board: String,
}

/// One demo class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoClass {
    /// Its id.
    pub id: ClassId,
    /// Its name.
    pub name: String,
    /// Its grade.
    pub grade: i16,
    /// The code students join it with.
    pub join_code: String,
    /// Students on its roster.
    pub students: i64,
}

impl fmt::Display for DemoInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Demo school ready: {} ({}), season \"{}\".",
            self.school, self.county, self.season
        )?;
        writeln!(f)?;
        writeln!(f, "Sign in as the teacher of both classes:")?;
        writeln!(
            f,
            "  POST /api/v1/auth/login  {{\"username\": \"{}\", \"password\": \"{}\"}}",
            self.teacher_username, self.teacher_password
        )?;
        writeln!(
            f,
            "  and send the token it answers as  Authorization: Bearer <token>"
        )?;
        writeln!(
            f,
            "  (the programme office signs in the same way: {} / {})",
            self.admin_username, self.admin_password
        )?;
        writeln!(f)?;
        writeln!(f, "Classes and their join codes:")?;
        let width = self.classes.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.classes {
            writeln!(
                f,
                "  {:<width$}  grade {}, {:>2} students, join code {}",
                c.name, c.grade, c.students, c.join_code
            )?;
        }
        if let Some(c) = self.classes.first() {
            writeln!(f)?;
            writeln!(
                f,
                "A student joins from a device with a join code and a nickname (no password):"
            )?;
            writeln!(
                f,
                "  POST /api/v1/join  {{\"join_code\": \"{}\", \"nickname\": \"{EXAMPLE_NICKNAME}\"}}",
                c.join_code
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "Challenge \"{}\" (id {}) between the two classes; its board, with the teacher's token:",
            self.challenge_title, self.challenge_id
        )?;
        writeln!(f, "  GET /api/v1/leaderboards/{}", self.board)?;
        writeln!(
            f,
            "  live: subscribe to board:{} on the WebSocket /api/v1/ws",
            self.board
        )?;
        writeln!(f)?;
        write!(f, "Every endpoint, to try in the browser: /api/v1/docs/")
    }
}

/// Seeds the demo school through the HTTP API (see the module documentation), or finds the one
/// an earlier run seeded, and returns what to print.
pub async fn seed(state: &AppState) -> anyhow::Result<DemoInfo> {
    let api = Api {
        router: crate::routes::router(state.clone()),
    };
    crate::admin::create_programme_admin(&state.db, DEMO_ADMIN, DEMO_PASSWORD)
        .await
        .context("creating the demo programme admin")?;
    let mut admin = Admin(None);

    let login = match api.login(DEMO_TEACHER).await? {
        Some(login) => login,
        None => {
            let admin = admin.token(&api).await?;
            let school = ensure_school(&api, admin).await?;
            let reply = api
                .post(
                    &format!("/schools/{}/teachers", school.id),
                    Some(admin),
                    &CreateUser {
                        username: DEMO_TEACHER.into(),
                        display_name: "Demo teacher".into(),
                        password: DEMO_PASSWORD.into(),
                    },
                )
                .await?;
            if reply.status == StatusCode::CONFLICT {
                anyhow::bail!(
                    "an account named {DEMO_TEACHER} exists but does not sign in with the demo \
                     password; remove it or seed the demo into another database"
                );
            }
            reply.expect::<schema::api::User>(StatusCode::CREATED)?;
            api.login(DEMO_TEACHER)
                .await?
                .context("the demo teacher cannot sign in right after being created")?
        }
    };
    let teacher = login.token.token.as_str();
    let school_id = login
        .user
        .school_id
        .context("the demo teacher belongs to no school")?;
    let school: School = api
        .get(&format!("/schools/{school_id}"), Some(teacher))
        .await?
        .expect(StatusCode::OK)?;

    let mut classes = Vec::new();
    let mut rosters = Vec::new();
    let existing: Vec<Class> = api.all_pages("/classes", teacher).await?;
    for (grade, name, nicknames) in CLASSES {
        let (class, roster) =
            ensure_class(&api, teacher, &existing, grade, name, nicknames).await?;
        classes.push(class);
        rosters.push(roster);
    }

    let season = ensure_active_season(&api, teacher, &mut admin).await?;
    let challenge = match find_challenge(&api, teacher, &classes).await? {
        Some(challenge) => challenge,
        None => {
            let challenge = create_challenge(&api, teacher, &season, &classes).await?;
            seed_points(&api, teacher, &challenge, &classes, &rosters).await?;
            challenge
        }
    };
    tracing::info!(challenge.id = %challenge.id, "demo school ready");

    Ok(DemoInfo {
        admin_username: DEMO_ADMIN.into(),
        admin_password: DEMO_PASSWORD.into(),
        teacher_username: DEMO_TEACHER.into(),
        teacher_password: DEMO_PASSWORD.into(),
        school: school.name,
        county: school.county,
        season: season.name,
        classes: classes
            .into_iter()
            .map(|c| DemoClass {
                id: c.id,
                name: c.name,
                grade: c.grade,
                join_code: c.join_code.unwrap_or_default(),
                students: c.student_count,
            })
            .collect(),
        challenge_id: challenge.id,
        challenge_title: challenge.title,
        board: challenge.board,
    })
}

/// The demo programme admin's token, signed in on first use.
struct Admin(Option<String>);

impl Admin {
    async fn token(&mut self, api: &Api) -> anyhow::Result<&str> {
        if self.0.is_none() {
            let login = api.login(DEMO_ADMIN).await?.with_context(|| {
                format!(
                    "{DEMO_ADMIN} does not sign in with the demo password; remove that account \
                     or seed the demo into another database"
                )
            })?;
            self.0 = Some(login.token.token);
        }
        self.0.as_deref().context("no admin token")
    }
}

/// The demo school, created unless it exists.
async fn ensure_school(api: &Api, admin: &str) -> anyhow::Result<School> {
    let reply = api
        .post(
            "/schools",
            Some(admin),
            &CreateSchool {
                name: DEMO_SCHOOL.into(),
                county: DEMO_COUNTY.into(),
                pioneer: true,
            },
        )
        .await?;
    if reply.status != StatusCode::CONFLICT {
        return reply.expect(StatusCode::CREATED);
    }
    let schools: Vec<School> = api.all_pages("/schools", admin).await?;
    schools
        .into_iter()
        .find(|s| s.name == DEMO_SCHOOL && s.county == DEMO_COUNTY)
        .context("the demo school exists but is not listed")
}

/// A demo class with its whole roster (created or completed as needed), re-read afterwards so
/// its size and join code are current.
async fn ensure_class(
    api: &Api,
    teacher: &str,
    existing: &[Class],
    grade: i16,
    name: &str,
    nicknames: &[&str],
) -> anyhow::Result<(Class, Vec<Student>)> {
    let id = match existing.iter().find(|c| c.grade == grade && c.name == name) {
        Some(class) => class.id,
        None => {
            api.post(
                "/classes",
                Some(teacher),
                &CreateClass {
                    grade,
                    name: name.into(),
                },
            )
            .await?
            .expect::<Class>(StatusCode::CREATED)?
            .id
        }
    };
    let path = format!("/classes/{id}/students");
    let mut roster: Vec<Student> = api.all_pages(&path, teacher).await?;
    for nickname in nicknames {
        if roster.iter().any(|s| s.nickname == *nickname) {
            continue;
        }
        let student: Student = api
            .post(
                &path,
                Some(teacher),
                &AddStudent {
                    nickname: (*nickname).into(),
                },
            )
            .await?
            .expect(StatusCode::CREATED)?;
        roster.push(student);
    }
    let class: Class = api
        .get(&format!("/classes/{id}"), Some(teacher))
        .await?
        .expect(StatusCode::OK)?;
    // The seeded students first, in the order of the list, for the seeded points.
    roster.sort_by_key(|s| {
        nicknames
            .iter()
            .position(|n| *n == s.nickname)
            .unwrap_or(usize::MAX)
    });
    Ok((class, roster))
}

/// The active season; when none is, a demo season around today, created and activated.
async fn ensure_active_season(
    api: &Api,
    teacher: &str,
    admin: &mut Admin,
) -> anyhow::Result<Season> {
    if let Some(active) = active_season(api, teacher).await? {
        return Ok(active);
    }
    let admin = admin.token(api).await?;
    let tz = SchoolTimeZone::default();
    let today = tz.school_day(OffsetDateTime::now_utc());
    let season: Season = api
        .post(
            "/seasons",
            Some(admin),
            &CreateSeason {
                name: "Demo season".into(),
                starts_on: today - time::Duration::days(7),
                ends_on: today + time::Duration::days(90),
                timezone: Some(tz.name().into()),
            },
        )
        .await?
        .expect(StatusCode::CREATED)?;
    let reply = api
        .post(
            &format!("/seasons/{}/activate", season.id),
            Some(admin),
            &serde_json::json!({}),
        )
        .await?;
    if reply.status == StatusCode::CONFLICT {
        // Another season became active meanwhile: play in that one.
        return active_season(api, teacher)
            .await?
            .context("a season was activated meanwhile but none is active now");
    }
    reply.expect(StatusCode::OK)
}

async fn active_season(api: &Api, token: &str) -> anyhow::Result<Option<Season>> {
    let seasons: Vec<Season> = api.all_pages("/seasons", token).await?;
    Ok(seasons
        .into_iter()
        .find(|s| s.status == SeasonStatus::Active))
}

/// The demo challenge of the active season, if an earlier run made it and it still runs.
async fn find_challenge(
    api: &Api,
    teacher: &str,
    classes: &[Class],
) -> anyhow::Result<Option<Challenge>> {
    let reply = api.get("/challenges", Some(teacher)).await?;
    if reply.status == StatusCode::CONFLICT {
        return Ok(None);
    }
    let challenges: Vec<Challenge> = reply.expect(StatusCode::OK)?;
    let now = OffsetDateTime::now_utc();
    Ok(challenges.into_iter().find(|c| {
        c.title == DEMO_CHALLENGE
            && c.kind == ChallengeKind::ClassVsClass
            && c.ended_early_at.is_none()
            && c.ends_at > now
            && classes.iter().all(|class| {
                c.participants
                    .iter()
                    .any(|p| p.id == class.id.0 && p.state == "accepted")
            })
    }))
}

/// The class-versus-class challenge between the demo classes, from a few minutes ago (so the
/// seeded points count) for seven days, within the season; both classes accepted.
async fn create_challenge(
    api: &Api,
    teacher: &str,
    season: &Season,
    classes: &[Class],
) -> anyhow::Result<Challenge> {
    let tz = SchoolTimeZone::parse(&season.timezone)
        .map_err(|e| anyhow::anyhow!("the active season's time zone: {e}"))?;
    let (season_start, season_end) = season_bounds(tz, season.starts_on, season.ends_on);
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let starts_at = (now - time::Duration::minutes(5)).max(season_start);
    let ends_at = (now + time::Duration::days(7)).min(season_end);
    if starts_at > now || ends_at <= now + time::Duration::minutes(1) {
        anyhow::bail!(
            "the active season \"{}\" ({} to {}) does not cover today; close it, and the demo \
             creates its own",
            season.name,
            season.starts_on,
            season.ends_on
        );
    }
    let ids: Vec<Uuid> = classes.iter().map(|c| c.id.0).collect();
    let challenge: Challenge = api
        .post(
            "/challenges",
            Some(teacher),
            &CreateChallenge {
                kind: ChallengeKind::ClassVsClass,
                title: DEMO_CHALLENGE.into(),
                behaviors: CHALLENGE_BEHAVIORS.iter().map(|b| (*b).into()).collect(),
                starts_at,
                ends_at,
                scoring: None,
                required_confirmations: None,
                goal: Some(Goal {
                    behavior: "meatless_meal".into(),
                    quantity: 100,
                }),
                participants: ids,
            },
        )
        .await?
        .expect(StatusCode::CREATED)?;
    // The teacher runs both classes, so both take part at once; accept any still invited.
    let invited: Vec<Uuid> = challenge
        .participants
        .iter()
        .filter(|p| p.state != "accepted")
        .map(|p| p.id)
        .collect();
    if invited.is_empty() {
        return Ok(challenge);
    }
    api.post(
        &format!("/challenges/{}/accept", challenge.id),
        Some(teacher),
        &Participants {
            participant_ids: invited,
        },
    )
    .await?
    .expect(StatusCode::OK)
}

/// A few verified points per class, entered by the teacher, inside the challenge.
async fn seed_points(
    api: &Api,
    teacher: &str,
    challenge: &Challenge,
    classes: &[Class],
    rosters: &[Vec<Student>],
) -> anyhow::Result<()> {
    let occurred_at = (OffsetDateTime::now_utc() - time::Duration::minutes(1))
        .max(challenge.starts_at)
        .replace_nanosecond(0)
        .unwrap_or(challenge.starts_at);
    for ((class, roster), points) in classes.iter().zip(rosters).zip(SEED_POINTS) {
        for (behavior, students) in points {
            let student_ids: Vec<StudentId> = roster.iter().take(*students).map(|s| s.id).collect();
            if student_ids.is_empty() {
                continue;
            }
            let result: BulkResult = api
                .post(
                    &format!("/classes/{}/submissions", class.id),
                    Some(teacher),
                    &TeacherSubmit {
                        behavior: (*behavior).into(),
                        quantity: 1,
                        occurred_at,
                        idempotency_key: format!("demo-{}-{behavior}", challenge.id),
                        student_ids: Some(student_ids),
                        note: Some("demo".into()),
                    },
                )
                .await?
                .expect(StatusCode::CREATED)?;
            // A refusal (say, a daily cap already reached by an earlier demo today) leaves the
            // demo playable: say so and go on.
            for refusal in &result.refused {
                tracing::warn!(
                    class = %class.name,
                    behavior,
                    code = %refusal.code,
                    "demo points refused: {}",
                    refusal.message
                );
            }
        }
    }
    Ok(())
}

/// The server's router, called in-process.
struct Api {
    router: Router,
}

/// An answer: its status and body.
struct Reply {
    what: String,
    status: StatusCode,
    body: axum::body::Bytes,
}

impl Reply {
    /// The body as `T`, if the status is `expected`; otherwise an error quoting the answer.
    fn expect<T: DeserializeOwned>(self, expected: StatusCode) -> anyhow::Result<T> {
        if self.status != expected {
            let detail = serde_json::from_slice::<ErrorBody>(&self.body).map_or_else(
                |_| String::from_utf8_lossy(&self.body).into_owned(),
                |e| format!("{}: {}", e.error.code, e.error.message),
            );
            anyhow::bail!("{} answered {}: {detail}", self.what, self.status);
        }
        serde_json::from_slice(&self.body)
            .with_context(|| format!("{} answered an unexpected body", self.what))
    }
}

impl Api {
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Reply> {
        let uri = format!("/api/v1{path}");
        let what = format!("{method} {uri}");
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .extension(ConnectInfo(ClientAddr(DEMO_CLIENT)));
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(bytes) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        let req = req.body(body).with_context(|| format!("building {what}"))?;
        let res = match self.router.clone().oneshot(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        };
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), MAX_ANSWER_BYTES)
            .await
            .with_context(|| format!("reading the answer to {what}"))?;
        Ok(Reply { what, status, body })
    }

    async fn get(&self, path: &str, token: Option<&str>) -> anyhow::Result<Reply> {
        self.send(Method::GET, path, token, None).await
    }

    async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &impl Serialize,
    ) -> anyhow::Result<Reply> {
        let bytes = serde_json::to_vec(body).context("serialising a request body")?;
        self.send(Method::POST, path, token, Some(bytes)).await
    }

    /// Signs a demo account in with the demo password; `None` when the credentials are wrong
    /// (or the account does not exist).
    async fn login(&self, username: &str) -> anyhow::Result<Option<LoginResponse>> {
        let reply = self
            .post(
                "/auth/login",
                None,
                &LoginRequest {
                    username: username.into(),
                    password: DEMO_PASSWORD.into(),
                },
            )
            .await?;
        if reply.status == StatusCode::UNAUTHORIZED {
            return Ok(None);
        }
        reply.expect(StatusCode::OK).map(Some)
    }

    /// Every item of a paged list.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        token: &str,
    ) -> anyhow::Result<Vec<T>> {
        let mut items = Vec::new();
        let mut after: Option<Uuid> = None;
        loop {
            let page_path = match after {
                Some(id) => format!("{path}?limit=200&after={id}"),
                None => format!("{path}?limit=200"),
            };
            let page: Page<T> = self
                .get(&page_path, Some(token))
                .await?
                .expect(StatusCode::OK)?;
            items.extend(page.items);
            match page.next_after {
                Some(next) => after = Some(next),
                None => return Ok(items),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_text_says_how_to_sign_in_join_and_follow_the_challenge() {
        let id = ChallengeId(Uuid::nil());
        let info = DemoInfo {
            admin_username: DEMO_ADMIN.into(),
            admin_password: DEMO_PASSWORD.into(),
            teacher_username: DEMO_TEACHER.into(),
            teacher_password: DEMO_PASSWORD.into(),
            school: DEMO_SCHOOL.into(),
            county: DEMO_COUNTY.into(),
            season: "Demo season".into(),
            classes: vec![
                DemoClass {
                    id: ClassId(Uuid::nil()),
                    name: "Sunflowers".into(),
                    grade: 5,
                    join_code: "ABC-DEF".into(),
                    students: 12,
                },
                DemoClass {
                    id: ClassId(Uuid::nil()),
                    name: "Maples".into(),
                    grade: 5,
                    join_code: "GHJ-KLM".into(),
                    students: 7,
                },
            ],
            challenge_id: id,
            challenge_title: DEMO_CHALLENGE.into(),
            board: format!("challenge:{id}:per_capita"),
        };
        let text = info.to_string();
        for needle in [
            "POST /api/v1/auth/login",
            DEMO_TEACHER,
            DEMO_PASSWORD,
            "POST /api/v1/join",
            "ABC-DEF",
            "GHJ-KLM",
            "/api/v1/docs/",
            "GET /api/v1/leaderboards/challenge:",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        // The example nickname can join either class.
        assert!(
            CLASSES
                .iter()
                .all(|(_, _, roster)| !roster.contains(&EXAMPLE_NICKNAME))
        );
    }

    #[test]
    fn the_demo_classes_differ_in_size_and_their_seeded_points_fit_their_rosters() {
        assert_ne!(CLASSES[0].2.len(), CLASSES[1].2.len());
        for ((_, _, roster), points) in CLASSES.iter().zip(SEED_POINTS) {
            assert!(
                points
                    .iter()
                    .all(|(b, n)| { *n <= roster.len() && CHALLENGE_BEHAVIORS.contains(b) })
            );
        }
    }
}
