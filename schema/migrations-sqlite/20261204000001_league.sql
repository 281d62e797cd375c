-- The embedded (SQLite) schema: the same tables, columns and constraint names as the Postgres
-- migrations in ../migrations, in SQLite's types:
--   ids          BLOB (16 bytes)
--   instants     TEXT, UTC, one fixed width ('2026-12-04T19:16:42.123456Z'), so text order is
--                time order; defaults produce the same width
--   days         TEXT ('2026-12-04')
--   lists        TEXT holding a JSON array
--   booleans     BOOLEAN (0 or 1)
-- Keep it in step with the Postgres schema: a change there needs its twin here.

CREATE TABLE schools (
    id          BLOB PRIMARY KEY,
    name        TEXT NOT NULL,
    county      TEXT NOT NULL,
    pioneer     BOOLEAN NOT NULL DEFAULT 0,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    CONSTRAINT schools_name_county_key UNIQUE (name, county)
);

CREATE TABLE users (
    id             BLOB PRIMARY KEY,
    role           TEXT NOT NULL,
    school_id      BLOB REFERENCES schools (id),
    username       TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    CONSTRAINT users_role_known CHECK (role IN ('programme_admin', 'school_admin', 'teacher')),
    CONSTRAINT users_school_matches_role CHECK ((role = 'programme_admin') = (school_id IS NULL))
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE INDEX users_school_idx ON users (school_id, id);

CREATE TABLE classes (
    id          BLOB PRIMARY KEY,
    school_id   BLOB NOT NULL REFERENCES schools (id),
    teacher_id  BLOB NOT NULL REFERENCES users (id),
    grade       INTEGER NOT NULL,
    name        TEXT NOT NULL,
    join_code   TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    CONSTRAINT classes_grade_range CHECK (grade BETWEEN 1 AND 12),
    CONSTRAINT classes_join_code_key UNIQUE (join_code),
    CONSTRAINT classes_school_grade_name_key UNIQUE (school_id, grade, name)
);
CREATE INDEX classes_teacher_idx ON classes (teacher_id, id);
CREATE INDEX classes_school_idx ON classes (school_id, id);

CREATE TABLE students (
    id            BLOB PRIMARY KEY,
    class_id      BLOB NOT NULL REFERENCES classes (id),
    nickname      TEXT NOT NULL,
    nickname_key  TEXT NOT NULL,
    has_device    BOOLEAN NOT NULL,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    removed_at    TEXT
);
CREATE UNIQUE INDEX students_class_nickname_key ON students (class_id, nickname_key) WHERE removed_at IS NULL;
CREATE INDEX students_class_idx ON students (class_id, id);

CREATE TABLE seasons (
    id            BLOB PRIMARY KEY,
    name          TEXT NOT NULL,
    starts_on     TEXT NOT NULL,
    ends_on       TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'draft',
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    activated_at  TEXT,
    closed_at     TEXT,
    CONSTRAINT seasons_status_known CHECK (status IN ('draft', 'active', 'closed')),
    CONSTRAINT seasons_days_ordered CHECK (ends_on >= starts_on)
);
-- At most one active season (SQLite reports a violation as "seasons.status").
CREATE UNIQUE INDEX seasons_one_active ON seasons (status) WHERE status = 'active';

CREATE TABLE clubs (
    id                  BLOB PRIMARY KEY,
    school_id           BLOB NOT NULL REFERENCES schools (id),
    name                TEXT NOT NULL,
    join_code           TEXT NOT NULL,
    created_by_user     BLOB REFERENCES users (id),
    created_by_student  BLOB REFERENCES students (id),
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    CONSTRAINT clubs_join_code_key UNIQUE (join_code),
    CONSTRAINT clubs_school_name_key UNIQUE (school_id, name),
    CONSTRAINT clubs_one_creator CHECK ((created_by_user IS NOT NULL) + (created_by_student IS NOT NULL) = 1)
);

CREATE TABLE club_members (
    club_id     BLOB NOT NULL REFERENCES clubs (id),
    student_id  BLOB NOT NULL REFERENCES students (id),
    joined_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    PRIMARY KEY (club_id, student_id)
);
CREATE INDEX club_members_student_idx ON club_members (student_id);

CREATE TABLE stations (
    id           BLOB PRIMARY KEY,
    school_id    BLOB NOT NULL REFERENCES schools (id),
    name         TEXT NOT NULL,
    behaviors    TEXT NOT NULL,
    secret       BLOB NOT NULL,
    window_secs  INTEGER NOT NULL DEFAULT 60,
    created_by   BLOB NOT NULL REFERENCES users (id),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    CONSTRAINT stations_school_name_key UNIQUE (school_id, name),
    CONSTRAINT stations_window_range CHECK (window_secs BETWEEN 15 AND 3600)
);

-- Bearer tokens (only their SHA-256), owned by a user, a student or a station display.
CREATE TABLE auth_tokens (
    token_hash  BLOB PRIMARY KEY,
    user_id     BLOB REFERENCES users (id),
    student_id  BLOB REFERENCES students (id),
    station_id  BLOB REFERENCES stations (id),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT,
    CONSTRAINT auth_tokens_one_owner CHECK ((user_id IS NOT NULL) + (student_id IS NOT NULL) + (station_id IS NOT NULL) = 1)
);
CREATE INDEX auth_tokens_user_idx ON auth_tokens (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX auth_tokens_student_idx ON auth_tokens (student_id) WHERE student_id IS NOT NULL;

CREATE TABLE station_code_uses (
    station_id    BLOB NOT NULL REFERENCES stations (id),
    student_id    BLOB NOT NULL REFERENCES students (id),
    window_index  INTEGER NOT NULL,
    used_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    PRIMARY KEY (station_id, student_id, window_index)
);

CREATE TABLE challenges (
    id                      BLOB PRIMARY KEY,
    season_id               BLOB NOT NULL REFERENCES seasons (id),
    kind                    TEXT NOT NULL,
    title                   TEXT NOT NULL,
    behaviors               TEXT NOT NULL,
    starts_at               TEXT NOT NULL,
    ends_at                 TEXT NOT NULL,
    scoring                 TEXT NOT NULL,
    required_confirmations  INTEGER NOT NULL,
    goal_behavior           TEXT,
    goal_quantity           INTEGER,
    created_by              BLOB NOT NULL REFERENCES users (id),
    school_id               BLOB REFERENCES schools (id),
    created_at              TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    ended_early_at          TEXT,
    finalized_at            TEXT,
    CONSTRAINT challenges_kind_known CHECK (kind IN ('class_vs_class', 'school_vs_school', 'club_vs_club')),
    CONSTRAINT challenges_scoring_known CHECK (scoring IN ('per_capita', 'total')),
    CONSTRAINT challenges_window_ordered CHECK (ends_at > starts_at),
    CONSTRAINT challenges_goal_complete CHECK ((goal_behavior IS NULL) = (goal_quantity IS NULL)),
    CONSTRAINT challenges_confirmations_range CHECK (required_confirmations BETWEEN 1 AND 10)
);
CREATE INDEX challenges_season_idx ON challenges (season_id) WHERE finalized_at IS NULL;

CREATE TABLE challenge_participants (
    challenge_id    BLOB NOT NULL REFERENCES challenges (id),
    participant_id  BLOB NOT NULL,
    state           TEXT NOT NULL,
    invited_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    responded_at    TEXT,
    PRIMARY KEY (challenge_id, participant_id),
    CONSTRAINT challenge_participants_state_known CHECK (state IN ('invited', 'accepted', 'declined'))
);
CREATE INDEX challenge_participants_participant_idx ON challenge_participants (participant_id);

CREATE TABLE submissions (
    id                 BLOB PRIMARY KEY,
    season_id          BLOB NOT NULL REFERENCES seasons (id),
    student_id         BLOB NOT NULL REFERENCES students (id),
    class_id           BLOB NOT NULL REFERENCES classes (id),
    school_id          BLOB NOT NULL REFERENCES schools (id),
    behavior_id        TEXT NOT NULL,
    quantity           INTEGER NOT NULL,
    occurred_at        TEXT NOT NULL,
    school_day         TEXT NOT NULL,
    points             INTEGER NOT NULL,
    mg_co2e            INTEGER NOT NULL,
    factor_version     TEXT NOT NULL,
    submitted_by_user  BLOB REFERENCES users (id),
    station_id         BLOB REFERENCES stations (id),
    note               TEXT,
    idempotency_scope  BLOB NOT NULL,
    idempotency_key    TEXT NOT NULL,
    created_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    CONSTRAINT submissions_quantity_positive CHECK (quantity > 0),
    CONSTRAINT submissions_idempotency_key UNIQUE (idempotency_scope, idempotency_key)
);
CREATE INDEX submissions_cap_idx ON submissions (student_id, behavior_id, school_day);
CREATE INDEX submissions_class_idx ON submissions (class_id, id);
CREATE INDEX submissions_season_idx ON submissions (season_id);

CREATE TABLE submission_challenges (
    submission_id   BLOB NOT NULL REFERENCES submissions (id),
    challenge_id    BLOB NOT NULL REFERENCES challenges (id),
    participant_id  BLOB NOT NULL,
    PRIMARY KEY (submission_id, challenge_id, participant_id)
);
CREATE INDEX submission_challenges_challenge_idx ON submission_challenges (challenge_id);

CREATE TABLE verifications (
    submission_id    BLOB PRIMARY KEY REFERENCES submissions (id),
    outcome          TEXT NOT NULL,
    method           TEXT NOT NULL,
    decided_by_user  BLOB REFERENCES users (id),
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    CONSTRAINT verifications_outcome_known CHECK (outcome IN ('verified', 'rejected')),
    CONSTRAINT verifications_method_known CHECK (method IN ('teacher', 'teacher_entered', 'peer', 'station'))
);
CREATE INDEX verifications_created_idx ON verifications (created_at);

CREATE TABLE revocations (
    submission_id  BLOB PRIMARY KEY REFERENCES verifications (submission_id),
    revoked_by     BLOB NOT NULL REFERENCES users (id),
    reason         TEXT,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);

CREATE TABLE peer_confirmations (
    submission_id  BLOB NOT NULL REFERENCES submissions (id),
    student_id     BLOB NOT NULL REFERENCES students (id),
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')),
    PRIMARY KEY (submission_id, student_id)
);

CREATE TABLE final_standings (
    board         TEXT NOT NULL,
    season_id     BLOB NOT NULL REFERENCES seasons (id),
    challenge_id  BLOB REFERENCES challenges (id),
    entity_id     BLOB NOT NULL,
    rank          INTEGER NOT NULL,
    score         INTEGER NOT NULL,
    points        INTEGER NOT NULL,
    reached_at    TEXT NOT NULL,
    PRIMARY KEY (board, entity_id)
);
CREATE INDEX final_standings_rank_idx ON final_standings (board, rank);
