//! League helpers: an active season, submissions, boards, and a look at the raw Redis state.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Backend, Reply, TestApp, backend};

/// RFC 3339 for an instant.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).expect("format")
}

/// A minute ago.
pub fn just_now() -> String {
    rfc3339(OffsetDateTime::now_utc() - time::Duration::minutes(1))
}

impl TestApp {
    /// Creates and activates a season around today; returns its id.
    pub async fn active_season(&self, admin: &str) -> String {
        let today = OffsetDateTime::now_utc().date();
        let body = self
            .post(
                "/seasons",
                Some(admin),
                json!({
                    "name": "Test season",
                    "starts_on": (today - time::Duration::days(7)).to_string(),
                    "ends_on": (today + time::Duration::days(120)).to_string(),
                }),
            )
            .await
            .expect(201);
        let id = body["id"].as_str().expect("id").to_owned();
        self.post(&format!("/seasons/{id}/activate"), Some(admin), json!({}))
            .await
            .expect(200);
        id
    }

    /// A student submits `quantity` of `behavior` that happened a minute ago.
    pub async fn submit(&self, student: &str, behavior: &str, quantity: u32, key: &str) -> Reply {
        self.post(
            "/submissions",
            Some(student),
            json!({"behavior": behavior, "quantity": quantity, "occurred_at": just_now(), "idempotency_key": key}),
        )
        .await
    }

    /// Approves submissions; returns the approved ones.
    pub async fn approve(&self, teacher: &str, ids: &[&str]) -> Value {
        let body = self
            .post(
                "/submissions/approve",
                Some(teacher),
                json!({"submission_ids": ids}),
            )
            .await
            .expect(200);
        assert_eq!(body["refused"], json!([]), "nothing refused: {body}");
        body
    }

    /// Reads a board (top 100).
    pub async fn board(&self, token: &str, board: &str) -> Value {
        self.get(&format!("/leaderboards/{board}?limit=100"), Some(token))
            .await
            .expect(200)
    }

    /// A Redis connection and every key of this test's prefix.
    async fn prefix_keys(&self) -> (redis::aio::MultiplexedConnection, Vec<String>) {
        let client = redis::Client::open(super::redis_url()).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        let prefix = &self.state.settings.redis.key_prefix;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut conn)
            .await
            .expect("keys");
        (conn, keys)
    }

    /// Every Redis key of this test's prefix with its content: sorted sets as (member, score)
    /// pairs in rank order, hashes as sorted field/value pairs, sets as sorted members.
    pub async fn redis_dump(&self) -> BTreeMap<String, Vec<(String, String)>> {
        let (mut conn, keys) = self.prefix_keys().await;
        let mut out = BTreeMap::new();
        for key in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("type");
            let content: Vec<(String, String)> = match kind.as_str() {
                "zset" => {
                    let rows: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query_async(&mut conn)
                        .await
                        .expect("zrange");
                    rows.into_iter().map(|(m, s)| (m, format!("{s}"))).collect()
                }
                "hash" => {
                    let mut rows: Vec<(String, String)> = redis::cmd("HGETALL")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .expect("hgetall");
                    rows.sort();
                    rows
                }
                "set" => {
                    let mut rows: Vec<String> = redis::cmd("SMEMBERS")
                        .arg(&key)
                        .query_async(&mut conn)
                        .await
                        .expect("smembers");
                    rows.sort();
                    rows.into_iter().map(|m| (m, String::new())).collect()
                }
                _ => continue,
            };
            out.insert(key, content);
        }
        out
    }

    /// Deletes every Redis key of this test's prefix.
    pub async fn empty_redis(&self) {
        let (mut conn, keys) = self.prefix_keys().await;
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("del");
        }
    }

    /// Every live board of this test, with its content, whichever store holds them: on the
    /// Postgres backend the raw Redis keys ([`TestApp::redis_dump`]), on the embedded backend
    /// every board of every season as the in-process store answers it.
    pub async fn boards_dump(&self) -> BTreeMap<String, Vec<(String, String)>> {
        match backend() {
            Backend::Postgres => self.redis_dump().await,
            Backend::Sqlite => {
                let store = &self.state.league.boards;
                let mut out = BTreeMap::new();
                for (season, board) in self.live_boards().await {
                    let info = carbon_league::league::season(&self.db, season)
                        .await
                        .expect("season");
                    let (rows, size) = store
                        .range(season, info.epoch(), board, 0, 1_000_000)
                        .await
                        .expect("range");
                    let mut content = vec![("size".to_owned(), size.to_string())];
                    content.extend(rows.into_iter().map(|r| {
                        (
                            r.member.to_string(),
                            format!("{} {} {} {}", r.rank, r.score, r.points, r.reached_at),
                        )
                    }));
                    out.insert(format!("{season}:{board}"), content);
                }
                out
            }
        }
    }

    /// Empties the live boards, as a Redis flush (or a restart without Redis) would.
    pub async fn empty_boards(&self) {
        match backend() {
            Backend::Postgres => self.empty_redis().await,
            Backend::Sqlite => {
                for (season, board) in self.live_boards().await {
                    self.state
                        .league
                        .boards
                        .drop_board(season, board)
                        .await
                        .expect("drop");
                }
            }
        }
    }

    async fn live_boards(
        &self,
    ) -> Vec<(schema::SeasonId, carbon_league::league::boards::BoardKey)> {
        let seasons: Vec<schema::SeasonId> = carbon_league::store::query("SELECT id FROM seasons")
            .scalars(&self.db)
            .await
            .expect("seasons");
        let mut out = Vec::new();
        for season in seasons {
            for board in self
                .state
                .league
                .boards
                .boards(season)
                .await
                .expect("boards")
            {
                out.push((season, board));
            }
        }
        out
    }
}
