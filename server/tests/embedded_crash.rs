//! Durability of the embedded mode, with the real binary: `carbon-league serve --demo` on a
//! SQLite file, students scoring in the demo's class-versus-class challenge, then `kill -9` while
//! submissions are in flight. After a restart on the same file, every submission the server
//! acknowledged is there and every leaderboard is exactly what it was.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// A `carbon-league serve` process on `db`.
struct Served {
    child: Child,
    base: String,
}

async fn serve(db: &Path, demo: bool) -> Served {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_carbon-league"));
    cmd.arg("serve");
    if demo {
        cmd.arg("--demo");
    }
    cmd.env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("CARBON_LEAGUE_DATABASE__SQLITE_PATH", db)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("CARBON_LEAGUE_AUTH__JOIN_ATTEMPTS_PER_MINUTE", "100000")
        .env("CARBON_LEAGUE_LOG__FORMAT", "text")
        .env("CARBON_LEAGUE_LOG__FILTER", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("start carbon-league");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read the log") {
            if line.contains("listening")
                && let Some(at) = line.find("127.0.0.1:")
            {
                let addr: String = line[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                    .collect();
                return addr;
            }
        }
        panic!("carbon-league exited before it listened");
    })
    .await
    .expect("carbon-league listens within a minute");
    // Keep draining the log so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let base = format!("http://{addr}/api/v1");
    let http = reqwest::Client::new();
    // The demo is seeded before requests are served: ready means seeded.
    for _ in 0..600 {
        if let Ok(r) = http.get(format!("http://{addr}/readyz")).send().await
            && r.status() == 200
        {
            return Served { child, base };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("carbon-league never became ready");
}

async fn call(
    http: &reqwest::Client,
    method: &str,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = match method {
        "GET" => http.get(url),
        _ => http.post(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Every leaderboard the test follows, as (member, points, rank) rows.
async fn boards(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    names: &[String],
) -> BTreeMap<String, Vec<(String, i64, u64)>> {
    let mut out = BTreeMap::new();
    for name in names {
        let (status, body) = call(
            http,
            "GET",
            format!("{base}/leaderboards/{name}?limit=100"),
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{name}: {body}");
        let rows = body["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap_or_default().to_owned(),
                    e["points"].as_i64().unwrap_or_default(),
                    e["rank"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        out.insert(name.clone(), rows);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_embedded_server_restarts_with_every_acknowledged_submission_and_the_same_boards()
{
    let dir = std::env::temp_dir().join(format!(
        "carbon-league-crash-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let _cleanup = RemoveOnDrop(dir.clone());
    let db = dir.join("league.sqlite3");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");

    let mut server = serve(&db, true).await;
    let base = server.base.clone();
    let (status, login) = call(
        &http,
        "POST",
        format!("{base}/auth/login"),
        None,
        Some(json!({"username": carbon_league::demo::DEMO_TEACHER, "password": carbon_league::demo::DEMO_PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let teacher = login["token"].as_str().expect("token").to_owned();
    let (_, classes) = call(
        &http,
        "GET",
        format!("{base}/classes"),
        Some(&teacher),
        None,
    )
    .await;
    let classes: Vec<(String, String)> = classes["items"]
        .as_array()
        .expect("classes")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().expect("id").to_owned(),
                c["join_code"].as_str().expect("join code").to_owned(),
            )
        })
        .collect();
    assert_eq!(classes.len(), 2, "the demo has two classes");
    let (_, challenges) = call(
        &http,
        "GET",
        format!("{base}/challenges"),
        Some(&teacher),
        None,
    )
    .await;
    let challenge = challenges
        .as_array()
        .expect("challenges")
        .iter()
        .find(|c| c["title"] == carbon_league::demo::DEMO_CHALLENGE)
        .expect("the demo's challenge")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let mut followed: Vec<String> = classes
        .iter()
        .map(|(id, _)| format!("class:{id}"))
        .collect();
    followed.push(format!("challenge:{challenge}:per_capita"));
    followed.push(format!("challenge:{challenge}:total"));

    // Students of both classes join and score; the teacher approves: acknowledged, verified.
    let mut students = Vec::new();
    for (i, (_, code)) in classes.iter().enumerate() {
        for n in 0..4 {
            let (status, joined) = call(
                &http,
                "POST",
                format!("{base}/join"),
                None,
                Some(json!({"join_code": code, "nickname": format!("Crash{i}x{n}")})),
            )
            .await;
            assert_eq!(status, 201, "{joined}");
            students.push(joined["token"].as_str().expect("token").to_owned());
        }
    }
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("now");
    let mut acknowledged = Vec::new();
    for (i, token) in students.iter().enumerate() {
        let (status, body) = call(
            &http,
            "POST",
            format!("{base}/submissions"),
            Some(token),
            Some(json!({"behavior": "meatless_meal", "quantity": 1, "occurred_at": now, "idempotency_key": format!("a{i}")})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        acknowledged.push(body["id"].as_str().expect("id").to_owned());
    }
    let (status, body) = call(
        &http,
        "POST",
        format!("{base}/submissions/approve"),
        Some(&teacher),
        Some(json!({"submission_ids": acknowledged})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let before = boards(&http, &base, &teacher, &followed).await;
    assert!(
        before.values().all(|rows| !rows.is_empty()),
        "every followed board has points: {before:?}"
    );

    // More submissions in flight (they wait for a teacher, so they do not move the boards),
    // and the process is killed without warning in the middle of them.
    let mut inflight = tokio::task::JoinSet::new();
    for round in 0..100 {
        for (i, token) in students.iter().enumerate() {
            let (http, base, token, now) = (http.clone(), base.clone(), token.clone(), now.clone());
            inflight.spawn(async move {
                let res = http
                    .post(format!("{base}/submissions"))
                    .bearer_auth(&token)
                    .json(&json!({"behavior": "walk_or_cycle", "quantity": 1, "occurred_at": now, "idempotency_key": format!("b{round}x{i}")}))
                    .send()
                    .await
                    .ok()?;
                if res.status() != 201 {
                    return None;
                }
                let body: Value = res.json().await.ok()?;
                body["id"].as_str().map(str::to_owned)
            });
        }
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    server.child.start_kill().expect("kill -9");
    server.child.wait().await.expect("the server died");
    let (mut acked_in_flight, mut cut_off) = (0, 0);
    while let Some(r) = inflight.join_next().await {
        match r.expect("task") {
            Some(id) => {
                acknowledged.push(id);
                acked_in_flight += 1;
            }
            None => cut_off += 1,
        }
    }
    eprintln!("in flight at the kill: {acked_in_flight} acknowledged, {cut_off} cut off");
    assert!(
        acked_in_flight > 0,
        "some submissions were acknowledged before the kill"
    );
    assert!(
        cut_off > 0,
        "the kill came while submissions were still in flight"
    );

    let server = serve(&db, false).await;
    let base = server.base.clone();
    for id in &acknowledged {
        let (status, body) = call(
            &http,
            "GET",
            format!("{base}/submissions/{id}"),
            Some(&teacher),
            None,
        )
        .await;
        assert_eq!(status, 200, "acknowledged submission {id} survived: {body}");
    }
    let after = boards(&http, &base, &teacher, &followed).await;
    assert_eq!(
        before, after,
        "the boards are rebuilt exactly from the database"
    );
    drop(server);
}

/// Removes the test's directory however the test ends.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
