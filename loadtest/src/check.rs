//! The correctness check after the run, against the server's database — the source of truth:
//! Postgres, or the embedded SQLite file (see [`connect`]). Its SQL runs on both.
//!
//! 1. Every acknowledged submission is in the database exactly once: a row with the acknowledged id,
//!    the same student and idempotency key, and no other row for that key. Rows the run never
//!    heard back about (a request whose answer was lost) are counted, not failed, as long as
//!    their key is one the run sent.
//! 2. Every submission the run verified (a station ack, an approval) is verified in the
//!    database.
//! 3. Every board of the run's schools — each class, each school, each challenge (total and
//!    per capita) — and the run's schools on the province board, read over the HTTP API
//!    (`GET /leaderboards/{board}`), equal the verified points in the database for the season:
//!    the size, each row's points and score, and the ranking order.

use std::collections::{BTreeMap, HashMap, HashSet};

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use carbon_league::settings::DatabaseSettings;
use carbon_league::store::{Db, IdList, query};
use schema::league::Board;
use schema::{SeasonId, StudentId, SubmissionId};
use uuid::Uuid;

use crate::api::Api;
use crate::client::Acked;
use crate::world::World;

/// What the check found.
#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    /// Acknowledged submissions checked.
    pub acknowledged: usize,
    /// Rows in the database for the run's students.
    pub rows: usize,
    /// Rows whose answer the run never received (sent, committed, answer lost).
    pub unacknowledged_rows: usize,
    /// Verifications checked.
    pub verified: usize,
    /// Boards compared.
    pub boards: usize,
    /// Board rows compared.
    pub board_rows: usize,
    /// Every mismatch, in words (at most 50 kept).
    pub mismatches: Vec<String>,
    /// How many mismatches in all.
    pub mismatch_count: usize,
}

impl CheckReport {
    fn mismatch(&mut self, what: String) {
        self.mismatch_count += 1;
        if self.mismatches.len() < 50 {
            self.mismatches.push(what);
        }
    }

    /// Whether everything matched.
    pub fn passed(&self) -> bool {
        self.mismatch_count == 0
    }
}

/// Opens the server's database for the season look-up and the check: a `postgres://` URL (a
/// small pool, as before), or `sqlite://PATH`, the embedded server's file, opened beside the
/// running server (WAL lets a reader in while it writes). The file must exist already: the
/// server creates it.
pub async fn connect(url: &str) -> anyhow::Result<Db> {
    let url = url.trim();
    if let Some(path) = url.strip_prefix("sqlite://") {
        anyhow::ensure!(
            Path::new(path).is_file(),
            "--database-url {url}: no such file (start the server on it first)"
        );
        let settings = DatabaseSettings {
            url: url.to_owned(),
            sqlite_path: String::new(),
            max_connections: 4,
            min_connections: 0,
            acquire_timeout_ms: 30_000,
            // SQLite's busy timeout: how long a statement waits for a lock it needs.
            statement_timeout_ms: 30_000,
        };
        return Db::connect(&settings)
            .await
            .with_context(|| format!("open the embedded database {path}"));
    }
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await?;
    Ok(Db::Postgres(pool))
}

/// Runs the check.
pub async fn run(
    db: &Db,
    api: &Api,
    world: &World,
    acked: &[Acked],
    verified: &[SubmissionId],
) -> anyhow::Result<CheckReport> {
    let mut r = CheckReport {
        acknowledged: acked.len(),
        verified: verified.len(),
        ..CheckReport::default()
    };
    let students: IdList = world
        .schools
        .iter()
        .flat_map(|s| &s.classes)
        .flat_map(|c| &c.students)
        .map(|s| s.id.0)
        .collect();

    let dialect = db.dialect();

    // 1. Exactly once.
    let rows: Vec<(SubmissionId, StudentId, String)> = query(format!(
        "SELECT id, student_id, idempotency_key FROM submissions WHERE {}",
        dialect.in_ids("student_id", "$1")
    ))
    .bind(students)
    .fetch_all(db)
    .await?;
    r.rows = rows.len();
    let mut by_key: HashMap<(StudentId, &str), Vec<SubmissionId>> = HashMap::new();
    for (id, student, key) in &rows {
        by_key
            .entry((*student, key.as_str()))
            .or_default()
            .push(*id);
    }
    let mut acked_keys = HashSet::new();
    for a in acked {
        acked_keys.insert((a.student, a.key.as_str()));
        match by_key.get(&(a.student, a.key.as_str())) {
            None => r.mismatch(format!(
                "submission {} (key {}) was acknowledged but is not in the database",
                a.id, a.key
            )),
            Some(ids) if ids.len() > 1 => r.mismatch(format!(
                "key {} of student {} is stored {} times",
                a.key,
                a.student,
                ids.len()
            )),
            Some(ids) if ids[0] != a.id => r.mismatch(format!(
                "key {} was acknowledged as {} but is stored as {}",
                a.key, a.id, ids[0]
            )),
            Some(_) => {}
        }
    }
    for (student, key) in by_key.keys() {
        if !acked_keys.contains(&(*student, *key)) {
            if key.starts_with("lt-") {
                r.unacknowledged_rows += 1;
            } else {
                r.mismatch(format!(
                    "student {student} has a submission with key {key} the run never sent"
                ));
            }
        }
    }

    // 2. Verified.
    let ids: IdList = verified.iter().map(|v| v.0).collect();
    let n: i64 = query(format!(
        "SELECT count(*) FROM verifications WHERE {} AND outcome = 'verified'",
        dialect.in_ids("submission_id", "$1")
    ))
    .bind(ids)
    .scalar(db)
    .await?;
    let unique: HashSet<&SubmissionId> = verified.iter().collect();
    if usize::try_from(n).unwrap_or(0) != unique.len() {
        r.mismatch(format!(
            "{} submissions were verified over the API, {n} of them are verified in the database",
            unique.len()
        ));
    }

    // 3. Boards.
    let season = world.season;
    for school in &world.schools {
        let expected = school_points(db, season, school.id.0).await?;
        let mut boards = vec![(
            format!("school:{}", school.id),
            expected.classes.clone(),
            Some(&expected.class_sizes),
        )];
        for class in &school.classes {
            let students: BTreeMap<Uuid, i64> = expected
                .students
                .iter()
                .filter(|(_, (c, _))| *c == class.id.0)
                .map(|(s, (_, p))| (*s, *p))
                .collect();
            boards.push((format!("class:{}", class.id), students, None));
        }
        if let Some(ch) = school.challenge {
            let totals = challenge_points(db, ch.0).await?;
            boards.push((format!("challenge:{ch}:total"), totals.clone(), None));
            boards.push((
                format!("challenge:{ch}:per_capita"),
                totals,
                Some(&expected.class_sizes),
            ));
        }
        for (name, points, sizes) in boards {
            let board: Board = api
                .get(
                    &format!("/leaderboards/{name}?limit=100"),
                    Some(&world.admin_token),
                )
                .await?;
            compare(&mut r, &name, &board, &points, sizes, true);
        }
    }
    // The province board holds other runs' schools too (and other shards still at work):
    // compare only this process's schools that are on it.
    let province: Board = api
        .get("/leaderboards/province?limit=100", Some(&world.admin_token))
        .await?;
    let mut ours: BTreeMap<Uuid, i64> = BTreeMap::new();
    let mut sizes: BTreeMap<Uuid, i64> = BTreeMap::new();
    for school in &world.schools {
        let e = school_points(db, season, school.id.0).await?;
        if e.has_verification {
            ours.insert(school.id.0, e.classes.values().sum());
        }
        sizes.insert(school.id.0, e.class_sizes.values().sum());
    }
    let mine = Board {
        entries: province
            .entries
            .iter()
            .filter(|e| ours.contains_key(&e.id))
            .cloned()
            .collect(),
        ..province.clone()
    };
    let shown: BTreeMap<Uuid, i64> = ours
        .iter()
        .filter(|(id, _)| mine.entries.iter().any(|e| e.id == **id))
        .map(|(k, v)| (*k, *v))
        .collect();
    compare(&mut r, "province", &mine, &shown, Some(&sizes), false);
    Ok(r)
}

struct SchoolPoints {
    /// Student → (class, points), students with a verification only.
    students: BTreeMap<Uuid, (Uuid, i64)>,
    /// Class → points, classes with a verification only.
    classes: BTreeMap<Uuid, i64>,
    /// Class → students on the roster.
    class_sizes: BTreeMap<Uuid, i64>,
    has_verification: bool,
}

/// Verified, unrevoked points per student of a school in the season.
async fn school_points(db: &Db, season: SeasonId, school: Uuid) -> anyhow::Result<SchoolPoints> {
    let rows: Vec<(Uuid, Uuid, i64)> = query(
        "SELECT s.student_id, s.class_id, \
           CAST(COALESCE(sum(s.points) FILTER (WHERE r.submission_id IS NULL), 0) AS BIGINT) \
         FROM submissions s JOIN verifications v ON v.submission_id = s.id AND v.outcome = 'verified' \
         LEFT JOIN revocations r ON r.submission_id = s.id \
         WHERE s.season_id = $1 AND s.school_id = $2 GROUP BY s.student_id, s.class_id",
    )
    .bind(season)
    .bind(school)
    .fetch_all(db)
    .await?;
    let mut students = BTreeMap::new();
    let mut classes: BTreeMap<Uuid, i64> = BTreeMap::new();
    for (student, class, points) in &rows {
        students.insert(*student, (*class, *points));
        *classes.entry(*class).or_default() += points;
    }
    let sizes: Vec<(Uuid, i64)> = query(
        "SELECT c.id, count(x.id) FILTER (WHERE x.removed_at IS NULL) FROM classes c \
         LEFT JOIN students x ON x.class_id = c.id WHERE c.school_id = $1 GROUP BY c.id",
    )
    .bind(school)
    .fetch_all(db)
    .await?;
    Ok(SchoolPoints {
        has_verification: !rows.is_empty(),
        students,
        classes,
        class_sizes: sizes.into_iter().collect(),
    })
}

/// Verified, unrevoked points per participant of a challenge.
async fn challenge_points(db: &Db, challenge: Uuid) -> anyhow::Result<BTreeMap<Uuid, i64>> {
    let rows: Vec<(Uuid, i64)> = query(
        "SELECT sc.participant_id, \
           CAST(COALESCE(sum(s.points) FILTER (WHERE r.submission_id IS NULL), 0) AS BIGINT) \
         FROM submission_challenges sc JOIN submissions s ON s.id = sc.submission_id \
         JOIN verifications v ON v.submission_id = s.id AND v.outcome = 'verified' \
         LEFT JOIN revocations r ON r.submission_id = s.id \
         WHERE sc.challenge_id = $1 GROUP BY sc.participant_id",
    )
    .bind(challenge)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Compares a board with the expected points (and, for per-capita boards, team sizes).
fn compare(
    r: &mut CheckReport,
    name: &str,
    board: &Board,
    expected: &BTreeMap<Uuid, i64>,
    sizes: Option<&BTreeMap<Uuid, i64>>,
    whole: bool,
) {
    r.boards += 1;
    if whole && board.size != expected.len() as u64 {
        r.mismatch(format!(
            "{name}: {} members on the board, {} with verified points in the database",
            board.size,
            expected.len()
        ));
    }
    if whole && expected.len() <= 100 && board.entries.len() != expected.len() {
        r.mismatch(format!(
            "{name}: {} rows shown, {} expected",
            board.entries.len(),
            expected.len()
        ));
    }
    let mut last_score = u64::MAX;
    for e in &board.entries {
        r.board_rows += 1;
        match expected.get(&e.id) {
            None => r.mismatch(format!(
                "{name}: {} is on the board but has no verified points",
                e.id
            )),
            Some(p) if *p != e.points => r.mismatch(format!(
                "{name}: {} has {} points on the board, {p} in the database",
                e.id, e.points
            )),
            Some(p) => {
                let want = match sizes {
                    Some(sizes) => {
                        let n = sizes.get(&e.id).copied().unwrap_or(0);
                        if n > 0 {
                            u64::try_from(p.max(&0) * 1000 / n).unwrap_or(0)
                        } else {
                            0
                        }
                    }
                    None => u64::try_from(*p.max(&0)).unwrap_or(0),
                };
                if want != e.score {
                    r.mismatch(format!(
                        "{name}: {} has score {} on the board, {want} expected",
                        e.id, e.score
                    ));
                }
            }
        }
        if e.score > last_score {
            r.mismatch(format!("{name}: rows out of order at rank {}", e.rank));
        }
        last_score = e.score;
    }
}
