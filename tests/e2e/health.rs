//! Probes, the OpenAPI document, and behaviour while a dependency is away.

use std::net::SocketAddr;
use std::time::Duration;

use crate::helpers::proxy::Proxy;
use crate::helpers::{
    Backend, eventually, only_on, redis_url, spawn_app, spawn_with, test_settings,
};

fn redis_addr() -> SocketAddr {
    let url = redis_url();
    let host_port = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379")
        .to_owned();
    host_port
        .parse()
        .expect("REDIS_URL must be redis://IP:PORT for this test")
}

#[tokio::test]
async fn healthz_and_readyz_answer_200_while_everything_is_up() {
    let app = spawn_app().await;
    assert_eq!(app.get_root("/healthz").await.status, 200);
    let ready = app.get_root("/readyz").await.expect(200);
    assert_eq!(ready["database_status"], "ok");
    assert_eq!(ready["database"], crate::helpers::backend().database_name());
    assert_eq!(ready["redis"], crate::helpers::backend().redis_readiness());
    assert_eq!(app.get_root("/metrics").await.status, 200);
}

#[tokio::test]
async fn readyz_is_503_naming_redis_while_redis_is_unreachable_and_recovers_by_itself() {
    if !only_on(Backend::Postgres, "a Redis outage") {
        return;
    }
    let proxy = Proxy::start(redis_addr()).await;
    let (mut settings, db) = test_settings().await;
    settings.redis.url = format!("redis://{}", proxy.addr);
    settings.redis.timeout_ms = 500;
    let app = spawn_with(settings, db).await;
    app.get_root("/readyz").await.expect(200);

    proxy.cut();
    let r = app.get_root("/readyz").await;
    r.expect_error(503, "redis_unavailable");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("redis")
    );
    assert_eq!(
        app.get_root("/healthz").await.status,
        200,
        "the process still lives"
    );

    proxy.restore();
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.get_root("/readyz").await.status == 200
        })
        .await,
        "ready again once Redis is back"
    );
}

#[tokio::test]
async fn requests_needing_postgres_get_503_while_it_is_away_and_succeed_when_it_returns() {
    if !only_on(Backend::Postgres, "a Postgres outage") {
        return;
    }
    let pg: SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let proxy = Proxy::start(pg).await;
    let (mut settings, db_name) = test_settings().await;
    settings.database.url = format!("postgres://postgres@{}/{db_name}", proxy.addr);
    let app = spawn_with(settings, db_name).await;
    let admin = app.programme_admin().await;
    app.get("/seasons", Some(&admin)).await.expect(200);

    proxy.cut();
    let r = app.get("/seasons", Some(&admin)).await;
    r.expect_error(503, "database_unavailable");
    app.get_root("/readyz")
        .await
        .expect_error(503, "postgres_unavailable");

    proxy.restore();
    assert!(
        eventually(Duration::from_secs(10), || async {
            app.get("/seasons", Some(&admin)).await.status == 200
        })
        .await,
        "requests succeed again once Postgres is back"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_api_and_the_docs_page_is_served() {
    let app = spawn_app().await;
    let doc = app.get_root("/api/v1/openapi.json").await.expect(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/auth/login",
        "/api/v1/join",
        "/api/v1/classes/{class_id}/join-code",
        "/api/v1/seasons/{season_id}/activate",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"].get("ErrorBody").is_some());
    let page = app.get_root("/api/v1/docs/").await;
    assert_eq!(page.status, 200);
}
