//! End-to-end tests: the real server, in-process on port 0, against the real Postgres and Redis.
#![expect(
    unreachable_pub,
    reason = "helpers are shared by the test modules of this one binary"
)]

mod accounts;
mod clubs_stations;
mod demo;
mod health;
mod helpers;
mod input;
mod league;
mod seasons;
mod ws;
