//! Time windows and bounded lateness: whether a behaviour that happened at `occurred_at`, reported
//! at `now`, may still be counted.
//!
//! A claim may be a little in the future (clocks on phones drift) but not much, may arrive late
//! but not too late (so seasons and challenges can close for good), and must fall inside the
//! season, and inside the challenge when it is claimed for one. Windows are half-open:
//! `[start, end)`.

use time::{Duration, OffsetDateTime};

use crate::challenge::ChallengeStatus;

/// How far in the future a claim may be, to forgive clock drift: 5 minutes.
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::minutes(5);

/// How late a claim may be reported: 72 hours (a weekend).
pub const DEFAULT_MAX_LATENESS: Duration = Duration::hours(72);

/// A half-open span of time `[start, end)`, never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    start: OffsetDateTime,
    end: OffsetDateTime,
}

/// A window that ends at or before its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a time window must end after it starts")]
pub struct EmptyWindow;

impl TimeWindow {
    /// The window `[start, end)`; `end` must be after `start`.
    pub fn new(start: OffsetDateTime, end: OffsetDateTime) -> Result<Self, EmptyWindow> {
        if start < end {
            Ok(Self { start, end })
        } else {
            Err(EmptyWindow)
        }
    }

    /// The first instant inside the window.
    pub fn start(&self) -> OffsetDateTime {
        self.start
    }

    /// The first instant after the window.
    pub fn end(&self) -> OffsetDateTime {
        self.end
    }

    /// Whether `at` falls inside the window.
    pub fn contains(&self, at: OffsetDateTime) -> bool {
        self.start <= at && at < self.end
    }

    /// Whether `other` lies entirely inside this window.
    pub fn covers(&self, other: &TimeWindow) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

/// How early and how late a claim may be reported. Both are configuration, with defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatenessPolicy {
    /// How far after `now` a claimed `occurred_at` may be (clock drift allowance).
    pub clock_skew: Duration,
    /// How long after the behaviour it may still be reported.
    pub max_lateness: Duration,
}

impl Default for LatenessPolicy {
    fn default() -> Self {
        Self {
            clock_skew: DEFAULT_CLOCK_SKEW,
            max_lateness: DEFAULT_MAX_LATENESS,
        }
    }
}

/// Why a claimed behaviour does not count (for the season, or for a challenge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// `occurred_at` is later than `now` plus the clock-skew allowance.
    #[error("the behaviour is dated {ahead_by} in the future")]
    InTheFuture {
        /// How far past `now` the claim is.
        ahead_by: Duration,
    },
    /// Reported more than the maximum lateness after it happened.
    #[error("reported {late_by} after it happened, more than the {max_lateness} allowed")]
    TooLate {
        /// `now - occurred_at`.
        late_by: Duration,
        /// The policy's limit.
        max_lateness: Duration,
    },
    /// Happened before the season began.
    #[error("the behaviour happened before the season started")]
    BeforeSeasonStart,
    /// Happened at or after the season's end.
    #[error("the behaviour happened after the season ended")]
    AfterSeasonEnd,
    /// Happened outside the challenge's window.
    #[error("the behaviour happened outside the challenge's window")]
    OutsideChallengeWindow,
    /// The challenge does not score this behaviour.
    #[error("this behaviour is not part of the challenge")]
    BehaviorNotInChallenge,
    /// The challenge is not accepting claims now.
    #[error("the challenge is {status}, not active")]
    ChallengeNotActive {
        /// The challenge's status at `now`.
        status: ChallengeStatus,
    },
}

/// Checks the timing of a claim: not in the future (beyond `policy.clock_skew`), not later than
/// `policy.max_lateness`, inside the season, and inside `challenge` when given. Checks run in that
/// order, so the first failing rule is reported.
pub fn check_occurrence(
    occurred_at: OffsetDateTime,
    now: OffsetDateTime,
    policy: &LatenessPolicy,
    season: &TimeWindow,
    challenge: Option<&TimeWindow>,
) -> Result<(), WindowError> {
    let late_by = now - occurred_at;
    if -late_by > policy.clock_skew {
        return Err(WindowError::InTheFuture { ahead_by: -late_by });
    }
    if late_by > policy.max_lateness {
        return Err(WindowError::TooLate {
            late_by,
            max_lateness: policy.max_lateness,
        });
    }
    if occurred_at < season.start {
        return Err(WindowError::BeforeSeasonStart);
    }
    if occurred_at >= season.end {
        return Err(WindowError::AfterSeasonEnd);
    }
    if let Some(window) = challenge
        && !window.contains(occurred_at)
    {
        return Err(WindowError::OutsideChallengeWindow);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn season() -> TimeWindow {
        TimeWindow::new(
            datetime!(2025-02-16 16:00 UTC),
            datetime!(2025-07-10 16:00 UTC),
        )
        .unwrap()
    }

    fn check(occurred_at: OffsetDateTime, now: OffsetDateTime) -> Result<(), WindowError> {
        check_occurrence(
            occurred_at,
            now,
            &LatenessPolicy::default(),
            &season(),
            None,
        )
    }

    const NOW: OffsetDateTime = datetime!(2025-03-10 04:00 UTC);

    #[test]
    fn a_window_must_not_be_empty() {
        let t = datetime!(2025-01-01 0:00 UTC);
        assert_eq!(TimeWindow::new(t, t), Err(EmptyWindow));
    }

    #[test]
    fn a_behaviour_reported_an_hour_later_counts() {
        assert_eq!(check(NOW - Duration::HOUR, NOW), Ok(()));
    }

    #[test]
    fn a_behaviour_dated_a_few_minutes_ahead_is_forgiven_as_clock_drift() {
        assert_eq!(check(NOW + Duration::minutes(5), NOW), Ok(()));
    }

    #[test]
    fn a_behaviour_dated_beyond_the_skew_allowance_is_in_the_future() {
        assert_eq!(
            check(NOW + Duration::minutes(6), NOW),
            Err(WindowError::InTheFuture {
                ahead_by: Duration::minutes(6)
            })
        );
    }

    #[test]
    fn a_behaviour_reported_exactly_at_the_lateness_limit_still_counts() {
        assert_eq!(check(NOW - DEFAULT_MAX_LATENESS, NOW), Ok(()));
    }

    #[test]
    fn a_behaviour_reported_after_the_lateness_limit_is_too_late() {
        let late_by = DEFAULT_MAX_LATENESS + Duration::SECOND;
        assert_eq!(
            check(NOW - late_by, NOW),
            Err(WindowError::TooLate {
                late_by,
                max_lateness: DEFAULT_MAX_LATENESS
            })
        );
    }

    #[test]
    fn a_behaviour_before_the_season_does_not_count() {
        let start = season().start();
        assert_eq!(
            check(start - Duration::SECOND, start + Duration::HOUR),
            Err(WindowError::BeforeSeasonStart)
        );
        assert_eq!(check(start, start + Duration::HOUR), Ok(()));
    }

    #[test]
    fn a_behaviour_at_the_season_end_does_not_count() {
        let end = season().end();
        assert_eq!(check(end, end), Err(WindowError::AfterSeasonEnd));
        assert_eq!(check(end - Duration::SECOND, end), Ok(()));
    }

    #[test]
    fn a_behaviour_outside_the_challenge_window_does_not_count_for_it() {
        let challenge = TimeWindow::new(NOW - Duration::HOUR, NOW + Duration::DAY).unwrap();
        let policy = LatenessPolicy::default();
        let early = NOW - Duration::hours(2);
        assert_eq!(
            check_occurrence(early, NOW, &policy, &season(), Some(&challenge)),
            Err(WindowError::OutsideChallengeWindow)
        );
        assert_eq!(
            check_occurrence(NOW, NOW, &policy, &season(), Some(&challenge)),
            Ok(())
        );
    }

    proptest! {
        #[test]
        fn inside_the_season_a_claim_counts_exactly_when_its_lateness_is_within_bounds(
            late_secs in -1_000i64..400_000,
        ) {
            let occurred_at = NOW - Duration::seconds(late_secs);
            let ok = (-300..=72 * 3600).contains(&late_secs);
            prop_assert_eq!(check(occurred_at, NOW).is_ok(), ok);
        }
    }
}
