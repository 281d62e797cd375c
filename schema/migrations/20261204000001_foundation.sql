-- Foundation: schools, accounts, classes with join codes, students, tokens and seasons.
-- Constraint names are part of the contract: the server maps them to 409/422 answers.

CREATE TABLE schools (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    county      text NOT NULL,
    pioneer     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schools_name_county_key UNIQUE (name, county)
);

-- Adults who sign in with a password: the programme office, school admins and teachers.
CREATE TABLE users (
    id             uuid PRIMARY KEY,
    role           text NOT NULL,
    school_id      uuid REFERENCES schools (id),
    username       text NOT NULL,
    display_name   text NOT NULL,
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_role_known CHECK (role IN ('programme_admin', 'school_admin', 'teacher')),
    CONSTRAINT users_school_matches_role CHECK ((role = 'programme_admin') = (school_id IS NULL))
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE INDEX users_school_idx ON users (school_id, id);

CREATE TABLE classes (
    id          uuid PRIMARY KEY,
    school_id   uuid NOT NULL REFERENCES schools (id),
    teacher_id  uuid NOT NULL REFERENCES users (id),
    grade       smallint NOT NULL,
    name        text NOT NULL,
    join_code   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT classes_grade_range CHECK (grade BETWEEN 1 AND 12),
    CONSTRAINT classes_join_code_key UNIQUE (join_code),
    CONSTRAINT classes_school_grade_name_key UNIQUE (school_id, grade, name)
);
CREATE INDEX classes_teacher_idx ON classes (teacher_id, id);
CREATE INDEX classes_school_idx ON classes (school_id, id);

-- Students are known only by a nickname inside their class: no real name, no phone number.
-- A removed student keeps their row (their points stay in the history) but loses their tokens.
CREATE TABLE students (
    id            uuid PRIMARY KEY,
    class_id      uuid NOT NULL REFERENCES classes (id),
    nickname      text NOT NULL,
    nickname_key  text NOT NULL,
    has_device    boolean NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    removed_at    timestamptz
);
CREATE UNIQUE INDEX students_class_nickname_key ON students (class_id, nickname_key) WHERE removed_at IS NULL;
CREATE INDEX students_class_idx ON students (class_id, id);

-- Bearer tokens: only the SHA-256 of the token is stored.
CREATE TABLE auth_tokens (
    token_hash  bytea PRIMARY KEY,
    user_id     uuid REFERENCES users (id),
    student_id  uuid REFERENCES students (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    CONSTRAINT auth_tokens_one_owner CHECK ((user_id IS NULL) <> (student_id IS NULL))
);
CREATE INDEX auth_tokens_user_idx ON auth_tokens (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX auth_tokens_student_idx ON auth_tokens (student_id) WHERE student_id IS NOT NULL;

CREATE TABLE seasons (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    starts_on     date NOT NULL,
    ends_on       date NOT NULL,
    timezone      text NOT NULL,
    status        text NOT NULL DEFAULT 'draft',
    created_at    timestamptz NOT NULL DEFAULT now(),
    activated_at  timestamptz,
    closed_at     timestamptz,
    CONSTRAINT seasons_status_known CHECK (status IN ('draft', 'active', 'closed')),
    CONSTRAINT seasons_days_ordered CHECK (ends_on >= starts_on)
);
-- At most one active season, enforced by the database as well as by the rules.
CREATE UNIQUE INDEX seasons_one_active ON seasons ((true)) WHERE status = 'active';
