//! Seasons: the league's time-bounded competitions, and the rules of their life cycle.
//!
//! A season is created as a draft, activated by the programme admin (at most one active season
//! at a time), and closed. Closing a closed season is harmless; a closed season never reopens.
//! A season runs from its first school day to its last, inclusive, in the programme's school
//! time zone (Asia/Shanghai by default).

use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// The life-cycle state of a season.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeasonStatus {
    /// Created, not yet playing.
    Draft,
    /// The one season that scores now.
    Active,
    /// Finished for good; its standings are kept.
    Closed,
}

impl SeasonStatus {
    /// The name stored in the database and sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Active => "active",
            Self::Closed => "closed",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "draft" => Some(Self::Draft),
            "active" => Some(Self::Active),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// A refused season transition or definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeasonError {
    /// Another season is active; close it first.
    #[error("another season is already active; close it first")]
    AnotherActive,
    /// A closed season cannot be activated again.
    #[error("a closed season cannot be activated again")]
    AlreadyClosed,
    /// The last day comes before the first.
    #[error("a season must end on or after the day it starts")]
    EndsBeforeStart,
    /// The season is longer than [`MAX_DAYS`].
    #[error("a season lasts at most {MAX_DAYS} days")]
    TooLong,
    /// The time zone is not one the programme supports.
    #[error("unknown school time zone; supported: {}", SchoolTimeZone::NAMES.join(", "))]
    UnknownTimeZone,
}

/// The longest season, in days (a school year with its holidays).
pub const MAX_DAYS: i64 = 400;

/// What a transition does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The status changes to the given one.
    To(SeasonStatus),
    /// Nothing to do: the season is already there (closing twice).
    Unchanged,
}

/// Activates a season. `another_active` says whether a different season is active now.
pub fn activate(current: SeasonStatus, another_active: bool) -> Result<Transition, SeasonError> {
    match current {
        SeasonStatus::Active => Ok(Transition::Unchanged),
        SeasonStatus::Closed => Err(SeasonError::AlreadyClosed),
        SeasonStatus::Draft if another_active => Err(SeasonError::AnotherActive),
        SeasonStatus::Draft => Ok(Transition::To(SeasonStatus::Active)),
    }
}

/// Closes a season: from draft (cancelled before it began) or active; closing twice is harmless.
pub fn close(current: SeasonStatus) -> Transition {
    match current {
        SeasonStatus::Closed => Transition::Unchanged,
        SeasonStatus::Draft | SeasonStatus::Active => Transition::To(SeasonStatus::Closed),
    }
}

/// Checks a season's first and last school day.
pub fn validate_days(starts_on: Date, ends_on: Date) -> Result<(), SeasonError> {
    if ends_on < starts_on {
        return Err(SeasonError::EndsBeforeStart);
    }
    if (ends_on - starts_on).whole_days() >= MAX_DAYS {
        return Err(SeasonError::TooLong);
    }
    Ok(())
}

/// The time zones school days may be counted in. China keeps one offset all year (no daylight
/// saving), so a fixed offset per zone is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchoolTimeZone {
    /// China Standard Time, UTC+08:00: the default.
    #[default]
    AsiaShanghai,
    /// Xinjiang time, UTC+06:00, kept by some schools in the far west.
    AsiaUrumqi,
    /// UTC, for tests and international pilots.
    Utc,
}

impl SchoolTimeZone {
    /// Every supported IANA name.
    pub const NAMES: [&'static str; 3] = ["Asia/Shanghai", "Asia/Urumqi", "UTC"];

    /// Parses an IANA name.
    pub fn parse(name: &str) -> Result<Self, SeasonError> {
        match name {
            "Asia/Shanghai" => Ok(Self::AsiaShanghai),
            "Asia/Urumqi" => Ok(Self::AsiaUrumqi),
            "UTC" | "Etc/UTC" => Ok(Self::Utc),
            _ => Err(SeasonError::UnknownTimeZone),
        }
    }

    /// The IANA name.
    pub fn name(self) -> &'static str {
        match self {
            Self::AsiaShanghai => "Asia/Shanghai",
            Self::AsiaUrumqi => "Asia/Urumqi",
            Self::Utc => "UTC",
        }
    }

    /// The zone's offset from UTC.
    pub fn offset(self) -> UtcOffset {
        let hours = match self {
            Self::AsiaShanghai => 8,
            Self::AsiaUrumqi => 6,
            Self::Utc => 0,
        };
        UtcOffset::from_hms(hours, 0, 0).unwrap_or(UtcOffset::UTC)
    }

    /// The school day an instant falls on.
    pub fn school_day(self, at: OffsetDateTime) -> Date {
        at.to_offset(self.offset()).date()
    }

    /// The instant a school day begins (local midnight).
    pub fn day_start(self, day: Date) -> OffsetDateTime {
        PrimitiveDateTime::new(day, Time::MIDNIGHT).assume_offset(self.offset())
    }
}

/// The half-open interval of instants `[start, end)` a season covers: from local midnight of its
/// first day to local midnight after its last day.
pub fn season_bounds(
    tz: SchoolTimeZone,
    starts_on: Date,
    ends_on: Date,
) -> (OffsetDateTime, OffsetDateTime) {
    let end = ends_on.next_day().map_or_else(
        || tz.day_start(ends_on) + time::Duration::DAY,
        |d| tz.day_start(d),
    );
    (tz.day_start(starts_on), end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn a_draft_season_becomes_active_when_no_other_is() {
        assert_eq!(
            activate(SeasonStatus::Draft, false),
            Ok(Transition::To(SeasonStatus::Active))
        );
    }

    #[test]
    fn a_second_active_season_is_refused() {
        assert_eq!(
            activate(SeasonStatus::Draft, true),
            Err(SeasonError::AnotherActive)
        );
    }

    #[test]
    fn a_closed_season_never_reopens() {
        assert_eq!(
            activate(SeasonStatus::Closed, false),
            Err(SeasonError::AlreadyClosed)
        );
    }

    #[test]
    fn closing_twice_is_harmless() {
        assert_eq!(
            close(SeasonStatus::Active),
            Transition::To(SeasonStatus::Closed)
        );
        assert_eq!(close(SeasonStatus::Closed), Transition::Unchanged);
    }

    #[test]
    fn a_season_ending_before_it_starts_is_refused() {
        assert_eq!(
            validate_days(date!(2026 - 09 - 01), date!(2026 - 08 - 31)),
            Err(SeasonError::EndsBeforeStart)
        );
        assert_eq!(
            validate_days(date!(2026 - 09 - 01), date!(2026 - 09 - 01)),
            Ok(())
        );
        assert_eq!(
            validate_days(date!(2026 - 09 - 01), date!(2028 - 09 - 01)),
            Err(SeasonError::TooLong)
        );
    }

    #[test]
    fn the_school_day_follows_shanghai_time_by_default() {
        let tz = SchoolTimeZone::default();
        // 16:30 UTC is 00:30 the next day in Shanghai.
        assert_eq!(
            tz.school_day(datetime!(2026-09-01 16:30 UTC)),
            date!(2026 - 09 - 02)
        );
        assert_eq!(
            tz.school_day(datetime!(2026-09-01 15:59 UTC)),
            date!(2026 - 09 - 01)
        );
    }

    #[test]
    fn a_season_covers_its_last_day_up_to_local_midnight() {
        let (start, end) = season_bounds(
            SchoolTimeZone::AsiaShanghai,
            date!(2026 - 09 - 01),
            date!(2027 - 01 - 15),
        );
        assert_eq!(start, datetime!(2026-08-31 16:00 UTC));
        assert_eq!(end, datetime!(2027-01-15 16:00 UTC));
    }

    #[test]
    fn unknown_time_zones_are_refused_and_known_ones_round_trip() {
        assert_eq!(
            SchoolTimeZone::parse("Europe/Paris"),
            Err(SeasonError::UnknownTimeZone)
        );
        for name in SchoolTimeZone::NAMES {
            assert_eq!(SchoolTimeZone::parse(name).unwrap().name(), name);
        }
    }

    #[test]
    fn status_names_round_trip() {
        for s in [
            SeasonStatus::Draft,
            SeasonStatus::Active,
            SeasonStatus::Closed,
        ] {
            assert_eq!(SeasonStatus::parse(s.as_str()), Some(s));
        }
    }
}
