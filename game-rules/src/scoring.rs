//! Points and CO2e for one submission of a behaviour, in exact integers, and the per-student
//! daily cap counted in the school's local day.
//!
//! A submission that would take a student past the day's cap is refused whole rather than
//! trimmed: the student sees exactly what is left and can resubmit that, and a quantity that was
//! counted is always the quantity that was claimed.

use time::{Date, Duration, OffsetDateTime, UtcOffset, macros::offset};

use crate::catalogue::{Behavior, BehaviorId};

/// The programme's default school offset: Asia/Shanghai, UTC+08:00 all year (no daylight saving).
pub const DEFAULT_SCHOOL_OFFSET: UtcOffset = offset!(+8);

/// What a quantity of a behaviour is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Award {
    /// Whole points.
    pub points: u64,
    /// Milligrams of CO2e avoided.
    pub mg_co2e: u64,
}

/// A submission that fits under the day's cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// What it is worth.
    pub award: Award,
    /// Units the student may still score for this behaviour on this school day, after this one.
    pub remaining_today: u32,
}

/// Why a submission cannot be scored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoringError {
    /// A quantity of zero.
    #[error("the quantity must be at least 1")]
    ZeroQuantity,
    /// More than one submission may carry.
    #[error("at most {max} per submission for `{behavior}`, got {requested}")]
    OverSubmissionMax {
        /// The behaviour.
        behavior: BehaviorId,
        /// Its `max_quantity_per_submission`.
        max: u32,
        /// The quantity submitted.
        requested: u32,
    },
    /// The submission would pass the student's daily cap; nothing of it is counted.
    #[error(
        "daily cap of {cap} for `{behavior}` reached: {remaining} left today, {requested} submitted"
    )]
    DailyCapReached {
        /// The behaviour.
        behavior: BehaviorId,
        /// Its `daily_cap_per_student`.
        cap: u32,
        /// Units the student may still score today (possibly 0).
        remaining: u32,
        /// The quantity submitted.
        requested: u32,
    },
    /// The arithmetic does not fit in 64 bits (never with a validated catalogue).
    #[error("the award overflows")]
    Overflow,
}

/// Points and CO2e of `quantity` units of `behavior`, checking the quantity against the
/// per-submission maximum.
pub fn award(behavior: &Behavior, quantity: u32) -> Result<Award, ScoringError> {
    if quantity == 0 {
        return Err(ScoringError::ZeroQuantity);
    }
    if quantity > behavior.max_quantity_per_submission {
        return Err(ScoringError::OverSubmissionMax {
            behavior: behavior.id.clone(),
            max: behavior.max_quantity_per_submission,
            requested: quantity,
        });
    }
    let q = u64::from(quantity);
    Ok(Award {
        points: q
            .checked_mul(u64::from(behavior.points_per_unit))
            .ok_or(ScoringError::Overflow)?,
        mg_co2e: q
            .checked_mul(behavior.mg_co2e_per_unit)
            .ok_or(ScoringError::Overflow)?,
    })
}

/// Scores a submission of `quantity` units, given the units of this behaviour already counted
/// for the student on the same school day (`counted_today`, see [`school_day`] and
/// [`school_day_bounds`]). The server should count pending as well as verified submissions, so
/// that a queue of pending claims cannot pass the cap.
pub fn score_submission(
    behavior: &Behavior,
    quantity: u32,
    counted_today: u32,
) -> Result<Accepted, ScoringError> {
    let award = award(behavior, quantity)?;
    let remaining = behavior.daily_cap_per_student.saturating_sub(counted_today);
    if quantity > remaining {
        return Err(ScoringError::DailyCapReached {
            behavior: behavior.id.clone(),
            cap: behavior.daily_cap_per_student,
            remaining,
            requested: quantity,
        });
    }
    Ok(Accepted {
        award,
        remaining_today: remaining - quantity,
    })
}

/// The school-local calendar day on which `at` falls.
pub fn school_day(at: OffsetDateTime, offset: UtcOffset) -> Date {
    at.to_offset(offset).date()
}

/// The instants of a school-local day, as a half-open range `[start, end)`: local midnight to the
/// next local midnight. Use it to count what a student already scored that day.
pub fn school_day_bounds(day: Date, offset: UtcOffset) -> (OffsetDateTime, OffsetDateTime) {
    let start = day.midnight().assume_offset(offset);
    (start, start.saturating_add(Duration::DAY))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{Unit, VerificationMethod};
    use proptest::prelude::*;
    use time::macros::{date, datetime};

    fn lights_off() -> Behavior {
        Behavior {
            id: BehaviorId::parse("lights_off").unwrap(),
            name_zh: "随手关灯".into(),
            name_en: "Lights off".into(),
            unit: Unit::Kwh,
            mg_co2e_per_unit: 107_300,
            points_per_unit: 1,
            max_quantity_per_submission: 5,
            daily_cap_per_student: 8,
            verification: vec![VerificationMethod::Teacher],
            factor_source: "MEE 2022".into(),
            factor_version: "mee-2022-yunnan".into(),
        }
    }

    #[test]
    fn three_kilowatt_hours_earn_three_points_and_321_9_grams() {
        assert_eq!(
            award(&lights_off(), 3),
            Ok(Award {
                points: 3,
                mg_co2e: 321_900
            })
        );
    }

    #[test]
    fn a_zero_quantity_is_refused() {
        assert_eq!(award(&lights_off(), 0), Err(ScoringError::ZeroQuantity));
    }

    #[test]
    fn more_than_the_submission_maximum_is_refused() {
        assert!(matches!(
            award(&lights_off(), 6),
            Err(ScoringError::OverSubmissionMax {
                max: 5,
                requested: 6,
                ..
            })
        ));
    }

    #[test]
    fn a_submission_that_exactly_reaches_the_cap_is_accepted_with_nothing_left() {
        let accepted = score_submission(&lights_off(), 3, 5).unwrap();
        assert_eq!(accepted.remaining_today, 0);
        assert_eq!(accepted.award.points, 3);
    }

    #[test]
    fn a_submission_partly_over_the_cap_is_refused_whole_saying_what_remains() {
        assert!(matches!(
            score_submission(&lights_off(), 4, 5),
            Err(ScoringError::DailyCapReached {
                cap: 8,
                remaining: 3,
                requested: 4,
                ..
            })
        ));
    }

    #[test]
    fn an_overflowing_factor_is_an_error_not_a_wrap() {
        let mut b = lights_off();
        b.mg_co2e_per_unit = u64::MAX;
        assert_eq!(award(&b, 2), Err(ScoringError::Overflow));
    }

    #[test]
    fn half_past_midnight_in_kunming_is_the_next_school_day_though_still_yesterday_in_utc() {
        let at = datetime!(2025-03-09 16:30 UTC);
        assert_eq!(school_day(at, DEFAULT_SCHOOL_OFFSET), date!(2025 - 03 - 10));
        assert_eq!(school_day(at, UtcOffset::UTC), date!(2025 - 03 - 09));
    }

    #[test]
    fn a_school_day_starts_at_local_midnight() {
        let (start, end) = school_day_bounds(date!(2025 - 03 - 10), DEFAULT_SCHOOL_OFFSET);
        assert_eq!(start, datetime!(2025-03-09 16:00 UTC));
        assert_eq!(end, datetime!(2025-03-10 16:00 UTC));
    }

    fn any_behavior() -> impl Strategy<Value = Behavior> {
        (1u64..=10_000_000, 1u32..=1_000, 1u32..=100, 0u32..=100).prop_map(
            |(mg, points, max, extra)| Behavior {
                mg_co2e_per_unit: mg,
                points_per_unit: points,
                max_quantity_per_submission: max,
                daily_cap_per_student: max + extra,
                ..lights_off()
            },
        )
    }

    proptest! {
        #[test]
        fn an_award_is_quantity_times_the_per_unit_values(b in any_behavior(), q in 1u32..=100) {
            prop_assume!(q <= b.max_quantity_per_submission);
            let a = award(&b, q).unwrap();
            prop_assert_eq!(a.points, u64::from(q) * u64::from(b.points_per_unit));
            prop_assert_eq!(a.mg_co2e, u64::from(q) * b.mg_co2e_per_unit);
        }

        #[test]
        fn awards_add_up_whether_split_or_not(b in any_behavior(), q1 in 1u32..=50, q2 in 1u32..=50) {
            prop_assume!(q1 + q2 <= b.max_quantity_per_submission);
            let whole = award(&b, q1 + q2).unwrap();
            let (a1, a2) = (award(&b, q1).unwrap(), award(&b, q2).unwrap());
            prop_assert_eq!(whole.points, a1.points + a2.points);
            prop_assert_eq!(whole.mg_co2e, a1.mg_co2e + a2.mg_co2e);
        }

        #[test]
        fn the_cap_accepts_exactly_what_fits(b in any_behavior(), q in 1u32..=100, counted in 0u32..=250) {
            prop_assume!(q <= b.max_quantity_per_submission);
            match score_submission(&b, q, counted) {
                Ok(accepted) => {
                    prop_assert!(counted + q <= b.daily_cap_per_student);
                    prop_assert_eq!(accepted.remaining_today, b.daily_cap_per_student - counted - q);
                }
                Err(ScoringError::DailyCapReached { remaining, .. }) => {
                    prop_assert!(counted + q > b.daily_cap_per_student);
                    prop_assert_eq!(remaining, b.daily_cap_per_student.saturating_sub(counted));
                }
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }

        #[test]
        fn an_instant_lies_within_the_bounds_of_its_school_day(
            secs in 0i64..4_102_444_800,
            offset_hours in -12i8..=14,
        ) {
            let at = OffsetDateTime::from_unix_timestamp(secs).unwrap();
            let offset = UtcOffset::from_hms(offset_hours, 0, 0).unwrap();
            let (start, end) = school_day_bounds(school_day(at, offset), offset);
            prop_assert!(start <= at && at < end);
        }
    }
}
