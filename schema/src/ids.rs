//! Typed identifiers: a class id can never be passed where a school id is expected.
//!
//! Every id is a UUID v7 (time-ordered, so keyset pagination by id follows creation order),
//! serialised as a plain UUID string and stored as a Postgres `uuid`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            Serialize, Deserialize, ToSchema, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A school.
    SchoolId
);
id_type!(
    /// An adult account: programme admin, school admin or teacher.
    UserId
);
id_type!(
    /// A class.
    ClassId
);
id_type!(
    /// A student, known only by a nickname inside their class.
    StudentId
);
id_type!(
    /// A season of the league.
    SeasonId
);
id_type!(
    /// A club, across classes of one school.
    ClubId
);
id_type!(
    /// A station: a canteen line or a sorting point that shows rotating codes.
    StationId
);
id_type!(
    /// A class-, school- or club-versus challenge.
    ChallengeId
);
id_type!(
    /// A submitted behaviour.
    SubmissionId
);
