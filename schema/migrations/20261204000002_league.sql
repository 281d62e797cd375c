-- The league: clubs, stations, challenges, submissions with their append-only verification log,
-- and the final standings written when a challenge or a season closes.

CREATE TABLE clubs (
    id                  uuid PRIMARY KEY,
    school_id           uuid NOT NULL REFERENCES schools (id),
    name                text NOT NULL,
    join_code           text NOT NULL,
    created_by_user     uuid REFERENCES users (id),
    created_by_student  uuid REFERENCES students (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT clubs_join_code_key UNIQUE (join_code),
    CONSTRAINT clubs_school_name_key UNIQUE (school_id, name),
    CONSTRAINT clubs_one_creator CHECK (num_nonnulls(created_by_user, created_by_student) = 1)
);

CREATE TABLE club_members (
    club_id     uuid NOT NULL REFERENCES clubs (id),
    student_id  uuid NOT NULL REFERENCES students (id),
    joined_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (club_id, student_id)
);
CREATE INDEX club_members_student_idx ON club_members (student_id);

-- A station (a canteen line, a sorting point) shows a code that rotates every window_secs.
CREATE TABLE stations (
    id           uuid PRIMARY KEY,
    school_id    uuid NOT NULL REFERENCES schools (id),
    name         text NOT NULL,
    behaviors    text[] NOT NULL,
    secret       bytea NOT NULL,
    window_secs  integer NOT NULL DEFAULT 60,
    created_by   uuid NOT NULL REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stations_school_name_key UNIQUE (school_id, name),
    CONSTRAINT stations_window_range CHECK (window_secs BETWEEN 15 AND 3600)
);

-- Station displays sign in with a token of their own.
ALTER TABLE auth_tokens ADD COLUMN station_id uuid REFERENCES stations (id);
ALTER TABLE auth_tokens DROP CONSTRAINT auth_tokens_one_owner;
ALTER TABLE auth_tokens ADD CONSTRAINT auth_tokens_one_owner CHECK (num_nonnulls(user_id, student_id, station_id) = 1);

-- Each station code is usable once per student and station.
CREATE TABLE station_code_uses (
    station_id    uuid NOT NULL REFERENCES stations (id),
    student_id    uuid NOT NULL REFERENCES students (id),
    window_index  bigint NOT NULL,
    used_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (station_id, student_id, window_index)
);

CREATE TABLE challenges (
    id                      uuid PRIMARY KEY,
    season_id               uuid NOT NULL REFERENCES seasons (id),
    kind                    text NOT NULL,
    title                   text NOT NULL,
    behaviors               text[] NOT NULL,
    starts_at               timestamptz NOT NULL,
    ends_at                 timestamptz NOT NULL,
    scoring                 text NOT NULL,
    required_confirmations  smallint NOT NULL,
    goal_behavior           text,
    goal_quantity           bigint,
    created_by              uuid NOT NULL REFERENCES users (id),
    school_id               uuid REFERENCES schools (id),
    created_at              timestamptz NOT NULL DEFAULT now(),
    ended_early_at          timestamptz,
    finalized_at            timestamptz,
    CONSTRAINT challenges_kind_known CHECK (kind IN ('class_vs_class', 'school_vs_school', 'club_vs_club')),
    CONSTRAINT challenges_scoring_known CHECK (scoring IN ('per_capita', 'total')),
    CONSTRAINT challenges_window_ordered CHECK (ends_at > starts_at),
    CONSTRAINT challenges_goal_complete CHECK ((goal_behavior IS NULL) = (goal_quantity IS NULL)),
    CONSTRAINT challenges_confirmations_range CHECK (required_confirmations BETWEEN 1 AND 10)
);
CREATE INDEX challenges_season_idx ON challenges (season_id) WHERE finalized_at IS NULL;

-- A participant is a class, a school or a club, according to the challenge's kind.
CREATE TABLE challenge_participants (
    challenge_id    uuid NOT NULL REFERENCES challenges (id),
    participant_id  uuid NOT NULL,
    state           text NOT NULL,
    invited_at      timestamptz NOT NULL DEFAULT now(),
    responded_at    timestamptz,
    PRIMARY KEY (challenge_id, participant_id),
    CONSTRAINT challenge_participants_state_known CHECK (state IN ('invited', 'accepted', 'declined'))
);
CREATE INDEX challenge_participants_participant_idx ON challenge_participants (participant_id);

-- What a student (or their teacher) reported. Immutable once written: its fate is in
-- verifications and revocations. Points and CO2e are computed at submission time, with the
-- factor version they were computed with, so totals can be recomputed if a factor changes.
CREATE TABLE submissions (
    id                 uuid PRIMARY KEY,
    season_id          uuid NOT NULL REFERENCES seasons (id),
    student_id         uuid NOT NULL REFERENCES students (id),
    class_id           uuid NOT NULL REFERENCES classes (id),
    school_id          uuid NOT NULL REFERENCES schools (id),
    behavior_id        text NOT NULL,
    quantity           integer NOT NULL,
    occurred_at        timestamptz NOT NULL,
    school_day         date NOT NULL,
    points             bigint NOT NULL,
    mg_co2e            bigint NOT NULL,
    factor_version     text NOT NULL,
    submitted_by_user  uuid REFERENCES users (id),
    station_id         uuid REFERENCES stations (id),
    note               text,
    idempotency_scope  uuid NOT NULL,
    idempotency_key    text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT submissions_quantity_positive CHECK (quantity > 0),
    CONSTRAINT submissions_idempotency_key UNIQUE (idempotency_scope, idempotency_key)
);
CREATE INDEX submissions_cap_idx ON submissions (student_id, behavior_id, school_day);
CREATE INDEX submissions_class_idx ON submissions (class_id, id);
CREATE INDEX submissions_season_idx ON submissions (season_id);

-- Which challenges a submission counts for, and for which participant (the student's class,
-- school, or each of their clubs in the challenge), decided when it was submitted.
CREATE TABLE submission_challenges (
    submission_id   uuid NOT NULL REFERENCES submissions (id),
    challenge_id    uuid NOT NULL REFERENCES challenges (id),
    participant_id  uuid NOT NULL,
    PRIMARY KEY (submission_id, challenge_id, participant_id)
);
CREATE INDEX submission_challenges_challenge_idx ON submission_challenges (challenge_id);

-- The verification log, append-only: at most one decision per submission...
CREATE TABLE verifications (
    submission_id    uuid PRIMARY KEY REFERENCES submissions (id),
    outcome          text NOT NULL,
    method           text NOT NULL,
    decided_by_user  uuid REFERENCES users (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT verifications_outcome_known CHECK (outcome IN ('verified', 'rejected')),
    CONSTRAINT verifications_method_known CHECK (method IN ('teacher', 'teacher_entered', 'peer', 'station'))
);
CREATE INDEX verifications_created_idx ON verifications (created_at);

-- ...at most one revocation of a verified submission...
CREATE TABLE revocations (
    submission_id  uuid PRIMARY KEY REFERENCES verifications (submission_id),
    revoked_by     uuid NOT NULL REFERENCES users (id),
    reason         text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- ...and one confirmation vote per classmate.
CREATE TABLE peer_confirmations (
    submission_id  uuid NOT NULL REFERENCES submissions (id),
    student_id     uuid NOT NULL REFERENCES students (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (submission_id, student_id)
);

-- Final standings of every board, written when its challenge or season closes.
CREATE TABLE final_standings (
    board         text NOT NULL,
    season_id     uuid NOT NULL REFERENCES seasons (id),
    challenge_id  uuid REFERENCES challenges (id),
    entity_id     uuid NOT NULL,
    rank          integer NOT NULL,
    score         bigint NOT NULL,
    points        bigint NOT NULL,
    reached_at    timestamptz NOT NULL,
    PRIMARY KEY (board, entity_id)
);
CREATE INDEX final_standings_rank_idx ON final_standings (board, rank);
