#!/usr/bin/env bash
# The load-test smoke: build the server and the load generator, start the server on a free port
# with a database and a Redis key prefix of its own, create the programme admin, run a few
# hundred WebSocket clients for about ten seconds with the correctness check, then stop the
# server and drop the database. Exits non-zero when anything fails or any check mismatches.
#
#   bash loadtest/smoke.sh                 # debug build (shares CI's test build)
#   SMOKE_RELEASE=1 bash loadtest/smoke.sh # release build
#   SMOKE_BACKEND=sqlite bash loadtest/smoke.sh   # embedded mode: SQLite file, no Redis
#   bash loadtest/smoke.sh --scenario burst --students 30   # extra loadtest flags pass through
#
# SMOKE_BACKEND=postgres (the default) needs Postgres (PG_URL, default
# postgres://postgres@127.0.0.1:5432, trust authentication, `psql` on the PATH) and Redis
# (REDIS_URL, default redis://127.0.0.1:6379). SMOKE_BACKEND=sqlite needs neither: the server
# runs embedded on a SQLite file in a temporary directory (DATABASE_URL and REDIS_URL are
# unset for it), with its boards and live fan-out in the process.
set -euo pipefail
cd "$(dirname "$0")/.."

backend=${SMOKE_BACKEND:-postgres}
case "$backend" in
  postgres | sqlite) ;;
  *) echo "SMOKE_BACKEND must be postgres or sqlite, not '$backend'" >&2; exit 2 ;;
esac
pg_url=${PG_URL:-postgres://postgres@127.0.0.1:5432}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379}
db="cl_smoke_$$"
prefix="smoke$$"
work=$(mktemp -d)
server_pid=""

profile_flag=()
profile_dir=debug
if [ "${SMOKE_RELEASE:-0}" = 1 ]; then
  profile_flag=(--release)
  profile_dir=release
fi
target_dir=${CARGO_TARGET_DIR:-target}

cleanup() {
  status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$server_pid" 2>/dev/null || true
  fi
  if [ "$backend" = postgres ]; then
    psql "$pg_url/postgres" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    if command -v redis-cli >/dev/null 2>&1; then
      redis-cli -u "$redis_url" --scan --pattern "$prefix:*" | xargs -r redis-cli -u "$redis_url" del >/dev/null 2>&1 || true
    fi
  fi
  if [ -n "${SMOKE_SERVER_LOG:-}" ] && [ -f "$work/server.log" ]; then
    cp "$work/server.log" "$SMOKE_SERVER_LOG" || true
  fi
  if [ "$status" != 0 ] && [ -f "$work/server.log" ]; then
    echo "--- last lines of the server log ---" >&2
    tail -n 40 "$work/server.log" >&2 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT INT TERM

echo "== building carbon-league and loadtest (${profile_dir})"
cargo build --locked "${profile_flag[@]}" --bin carbon-league --bin loadtest
bin="$target_dir/$profile_dir"

if [ "$backend" = postgres ]; then
  echo "== database $db, Redis prefix $prefix"
  psql "$pg_url/postgres" -qAtc "CREATE DATABASE $db"
  export DATABASE_URL="$pg_url/$db"
  export REDIS_URL="$redis_url"
  export CARBON_LEAGUE_REDIS__KEY_PREFIX="$prefix"
  loadtest_db="$DATABASE_URL"
else
  # Embedded mode: nothing inherited may point the server at Postgres or Redis.
  unset DATABASE_URL REDIS_URL CARBON_LEAGUE_DATABASE__URL CARBON_LEAGUE_REDIS__URL
  export CARBON_LEAGUE_DATABASE__SQLITE_PATH="$work/league.sqlite3"
  echo "== embedded database $CARBON_LEAGUE_DATABASE__SQLITE_PATH, boards and fan-out in process"
  loadtest_db="sqlite://$CARBON_LEAGUE_DATABASE__SQLITE_PATH"
fi

export BIND_ADDR=127.0.0.1:0
export CARBON_LEAGUE_AUTH__JOIN_ATTEMPTS_PER_MINUTE=1000000
export CARBON_LEAGUE_AUTH__LOGIN_ATTEMPTS_PER_MINUTE=1000000
export CARBON_LEAGUE_LOG__FORMAT=text
export CARBON_LEAGUE_LOG__FILTER=warn,carbon_league=info
export NO_COLOR=1

password=$("$bin/carbon-league" admin bootstrap --username admin | awk '/password:/ {print $2}')
[ -n "$password" ] || { echo "admin bootstrap printed no password" >&2; exit 1; }

"$bin/carbon-league" serve >"$work/server.log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 1 150); do
  addr=$(grep -a 'listening' "$work/server.log" 2>/dev/null | grep -aoE '127\.0\.0\.1:[0-9]+' | head -n 1 || true)
  [ -n "$addr" ] && break
  kill -0 "$server_pid" 2>/dev/null || { echo "the server exited at start-up" >&2; exit 1; }
  sleep 0.2
done
[ -n "$addr" ] || { echo "the server did not report its address" >&2; exit 1; }
echo "== server pid $server_pid on $addr"

status=0
LOADTEST_ADMIN_PASSWORD="$password" "$bin/loadtest" \
  --scenario smoke \
  --server "http://$addr" \
  --database-url "$loadtest_db" \
  --server-pid "$server_pid" \
  --json "${SMOKE_JSON:-$work/smoke.json}" \
  --quiet "$@" || status=$?

if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "the server died during the run" >&2
  status=1
fi
if [ "$status" = 0 ]; then
  echo "== load-test smoke passed"
else
  echo "== load-test smoke FAILED (status $status)" >&2
fi
exit "$status"
