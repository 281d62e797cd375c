//! The two schemas stay twins: the Postgres migrations and the SQLite migrations of the embedded
//! mode create the same tables with the same columns, so the one set of queries runs on both.
//! Needs Postgres (`DATABASE_URL`, default the local one); a missing Postgres fails the test.

use std::collections::BTreeSet;

use sqlx::{Connection as _, PgConnection};

fn base_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn postgres_columns() -> BTreeSet<(String, String)> {
    let name = format!("cl_parity_{}", uuid::Uuid::new_v4().simple());
    let base = base_url();
    let mut admin = PgConnection::connect(&base)
        .await
        .expect("Postgres must be reachable at DATABASE_URL");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    let url = match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("DATABASE_URL names no database"),
    };
    let columns = async {
        let mut conn = PgConnection::connect(&url).await.expect("connect");
        schema::MIGRATOR.run(&mut conn).await.expect("migrate");
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
        )
        .fetch_all(&mut conn)
        .await
        .expect("columns");
        conn.close().await.expect("close");
        rows.into_iter().collect::<BTreeSet<_>>()
    }
    .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .expect("drop database");
    columns
}

async fn sqlite_columns() -> BTreeSet<(String, String)> {
    let path = std::env::temp_dir().join(format!(
        "carbon-league-parity-{}.sqlite3",
        uuid::Uuid::new_v4().simple()
    ));
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("open");
    schema::SQLITE_MIGRATOR
        .run(&mut conn)
        .await
        .expect("migrate");
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
         WHERE m.type = 'table' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("columns");
    conn.close().await.expect("close");
    let _ = std::fs::remove_file(&path);
    rows.into_iter().collect()
}

#[tokio::test]
async fn the_sqlite_schema_has_exactly_the_tables_and_columns_of_the_postgres_schema() {
    let postgres = postgres_columns().await;
    let sqlite = sqlite_columns().await;
    assert!(
        postgres.len() > 50,
        "the Postgres schema was read: {postgres:?}"
    );
    let only_postgres: Vec<_> = postgres.difference(&sqlite).collect();
    let only_sqlite: Vec<_> = sqlite.difference(&postgres).collect();
    assert!(
        only_postgres.is_empty() && only_sqlite.is_empty(),
        "columns only in Postgres: {only_postgres:?}; only in SQLite: {only_sqlite:?}"
    );
}
