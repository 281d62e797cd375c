//! Challenges: class-versus-class (the heart of the game), school-versus-school or
//! club-versus-club battles inside a season, over a time window, on a chosen set of behaviours,
//! optionally with a collective goal.
//!
//! A challenge's status is derived, never stored on its own: from whether it was published,
//! ended early or cancelled, and from its window and the time `now`:
//!
//! ```text
//! Draft ──publish──▶ Scheduled ──(start)──▶ Active ──(end, or end_early)──▶ Finished
//!   └──────────────────┴──────────────cancel───┴──▶ Cancelled
//! ```
//!
//! Invitations are answered (accepted or declined) before the challenge starts. A behaviour
//! counts for a challenge only while it is active, so the standings written at its close are
//! final.

use std::collections::BTreeSet;
use std::fmt;
use std::num::NonZeroU64;

use time::OffsetDateTime;

use crate::catalogue::BehaviorId;
use crate::ranking::ScoringMode;
use crate::verification::RequiredConfirmations;
use crate::window::{TimeWindow, WindowError};

/// Who competes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeKind {
    /// Classes against classes.
    ClassVsClass,
    /// Schools against schools.
    SchoolVsSchool,
    /// Clubs against clubs.
    ClubVsClub,
}

impl ChallengeKind {
    /// The scoring a new challenge of this kind gets unless chosen otherwise: per capita for every
    /// kind, because schools and clubs differ in size as much as classes do.
    pub fn default_scoring(self) -> ScoringMode {
        match self {
            Self::ClassVsClass | Self::SchoolVsSchool | Self::ClubVsClub => ScoringMode::PerCapita,
        }
    }
}

/// A challenge's status at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeStatus {
    /// Being prepared; invisible to participants.
    Draft,
    /// Published, waiting for its start.
    Scheduled,
    /// Running: behaviours count.
    Active,
    /// Over, at its end time or ended early; standings are final.
    Finished,
    /// Called off; no standings.
    Cancelled,
}

impl ChallengeStatus {
    /// The name stored in the database and sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Scheduled => "scheduled",
            Self::Active => "active",
            Self::Finished => "finished",
            Self::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for ChallengeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition asked of a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeAction {
    /// Make a draft visible and scheduled.
    Publish,
    /// Move its window.
    Reschedule,
    /// Finish an active challenge now.
    EndEarly,
    /// Call it off.
    Cancel,
}

impl fmt::Display for ChallengeAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Publish => "publish",
            Self::Reschedule => "reschedule",
            Self::EndEarly => "end early",
            Self::Cancel => "cancel",
        })
    }
}

/// A refused challenge definition or transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// The action is not allowed in the current status.
    #[error("cannot {action} a challenge that is {from}")]
    IllegalTransition {
        /// The status at the time of the action.
        from: ChallengeStatus,
        /// What was asked.
        action: ChallengeAction,
    },
    /// Publishing or rescheduling into a window that has already ended.
    #[error("the challenge's window has already ended")]
    WindowOver,
    /// The window is not inside the season.
    #[error("a challenge must lie within its season")]
    OutsideSeason,
    /// No behaviours chosen.
    #[error("a challenge needs at least one behaviour")]
    NoBehaviors,
    /// The collective goal's behaviour is not one of the challenge's.
    #[error("the goal's behaviour `{0}` is not part of the challenge")]
    GoalBehaviorNotInChallenge(BehaviorId),
}

/// A collective goal: a target quantity of one behaviour ("1,000 meatless meals this week").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CollectiveGoal {
    /// The behaviour counted.
    pub behavior: BehaviorId,
    /// The target, in the behaviour's unit.
    pub target_quantity: NonZeroU64,
}

impl CollectiveGoal {
    /// Whole percent of the target reached by `done` units, rounded down and capped at 100:
    /// 100 means reached.
    pub fn progress_percent(&self, done: u64) -> u8 {
        let percent = u128::from(done) * 100 / u128::from(self.target_quantity.get());
        u8::try_from(percent.min(100)).unwrap_or(100)
    }

    /// Whether `done` units reach the target.
    pub fn is_reached(&self, done: u64) -> bool {
        done >= self.target_quantity.get()
    }
}

/// The lifecycle facts a challenge's status is derived from; stored as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lifecycle {
    /// When it was published (None: still a draft).
    pub published_at: Option<OffsetDateTime>,
    /// When an admin ended it before its end time.
    pub ended_early_at: Option<OffsetDateTime>,
    /// When it was cancelled.
    pub cancelled_at: Option<OffsetDateTime>,
}

/// A challenge: its validated definition and its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    kind: ChallengeKind,
    scoring: ScoringMode,
    window: TimeWindow,
    behaviors: BTreeSet<BehaviorId>,
    goal: Option<CollectiveGoal>,
    required_confirmations: RequiredConfirmations,
    /// Publication, early end and cancellation; change it through the transition methods. A
    /// server restoring a stored challenge sets it directly.
    pub lifecycle: Lifecycle,
}

impl Challenge {
    /// A new draft challenge of `kind` over `window` (inside `season`) on `behaviors`, with the
    /// kind's default scoring, the default number of peer confirmations and no goal.
    pub fn new(
        kind: ChallengeKind,
        window: TimeWindow,
        season: &TimeWindow,
        behaviors: BTreeSet<BehaviorId>,
    ) -> Result<Self, ChallengeError> {
        if !season.covers(&window) {
            return Err(ChallengeError::OutsideSeason);
        }
        if behaviors.is_empty() {
            return Err(ChallengeError::NoBehaviors);
        }
        Ok(Self {
            kind,
            scoring: kind.default_scoring(),
            window,
            behaviors,
            goal: None,
            required_confirmations: RequiredConfirmations::DEFAULT,
            lifecycle: Lifecycle::default(),
        })
    }

    /// The same challenge scored by `scoring`.
    pub fn with_scoring(mut self, scoring: ScoringMode) -> Self {
        self.scoring = scoring;
        self
    }

    /// The same challenge requiring `n` peer confirmations.
    pub fn with_required_confirmations(mut self, n: RequiredConfirmations) -> Self {
        self.required_confirmations = n;
        self
    }

    /// The same challenge with a collective goal on one of its behaviours.
    pub fn with_goal(mut self, goal: CollectiveGoal) -> Result<Self, ChallengeError> {
        if !self.behaviors.contains(&goal.behavior) {
            return Err(ChallengeError::GoalBehaviorNotInChallenge(goal.behavior));
        }
        self.goal = Some(goal);
        Ok(self)
    }

    /// Who competes.
    pub fn kind(&self) -> ChallengeKind {
        self.kind
    }

    /// How scores are computed.
    pub fn scoring(&self) -> ScoringMode {
        self.scoring
    }

    /// The planned window.
    pub fn window(&self) -> TimeWindow {
        self.window
    }

    /// The behaviours that count.
    pub fn behaviors(&self) -> &BTreeSet<BehaviorId> {
        &self.behaviors
    }

    /// The collective goal, if any.
    pub fn goal(&self) -> Option<&CollectiveGoal> {
        self.goal.as_ref()
    }

    /// Peer confirmations a submission needs in this challenge.
    pub fn required_confirmations(&self) -> RequiredConfirmations {
        self.required_confirmations
    }

    /// When the challenge stops (or stopped) counting: its end, or the early end if sooner.
    pub fn effective_end(&self) -> OffsetDateTime {
        match self.lifecycle.ended_early_at {
            Some(early) if early < self.window.end() => early,
            _ => self.window.end(),
        }
    }

    /// The status at `now`.
    pub fn status_at(&self, now: OffsetDateTime) -> ChallengeStatus {
        if self.lifecycle.cancelled_at.is_some() {
            ChallengeStatus::Cancelled
        } else if self.lifecycle.published_at.is_none() {
            ChallengeStatus::Draft
        } else if now < self.window.start() {
            ChallengeStatus::Scheduled
        } else if now >= self.effective_end() {
            ChallengeStatus::Finished
        } else {
            ChallengeStatus::Active
        }
    }

    /// Publishes a draft whose window has not ended; it becomes scheduled (or active at once, if
    /// its start has passed).
    pub fn publish(&mut self, now: OffsetDateTime) -> Result<(), ChallengeError> {
        self.require(now, ChallengeAction::Publish, &[ChallengeStatus::Draft])?;
        if now >= self.window.end() {
            return Err(ChallengeError::WindowOver);
        }
        self.lifecycle.published_at = Some(now);
        Ok(())
    }

    /// Moves the window of a draft or a challenge that has not started, within the season.
    pub fn reschedule(
        &mut self,
        window: TimeWindow,
        season: &TimeWindow,
        now: OffsetDateTime,
    ) -> Result<(), ChallengeError> {
        self.require(
            now,
            ChallengeAction::Reschedule,
            &[ChallengeStatus::Draft, ChallengeStatus::Scheduled],
        )?;
        if !season.covers(&window) {
            return Err(ChallengeError::OutsideSeason);
        }
        if now >= window.end() {
            return Err(ChallengeError::WindowOver);
        }
        self.window = window;
        Ok(())
    }

    /// Ends an active challenge now; it is finished from `now` on.
    pub fn end_early(&mut self, now: OffsetDateTime) -> Result<(), ChallengeError> {
        self.require(now, ChallengeAction::EndEarly, &[ChallengeStatus::Active])?;
        self.lifecycle.ended_early_at = Some(now);
        Ok(())
    }

    /// Cancels a challenge that has not finished.
    pub fn cancel(&mut self, now: OffsetDateTime) -> Result<(), ChallengeError> {
        self.require(
            now,
            ChallengeAction::Cancel,
            &[
                ChallengeStatus::Draft,
                ChallengeStatus::Scheduled,
                ChallengeStatus::Active,
            ],
        )?;
        self.lifecycle.cancelled_at = Some(now);
        Ok(())
    }

    /// Whether a behaviour that occurred at `occurred_at`, claimed at `now`, counts for this
    /// challenge: the challenge is active at `now`, scores the behaviour, and the behaviour
    /// occurred inside `[start, effective_end)`. Lateness and the season are checked separately
    /// by [`crate::window::check_occurrence`].
    pub fn admits(
        &self,
        behavior: &BehaviorId,
        occurred_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), WindowError> {
        let status = self.status_at(now);
        if status != ChallengeStatus::Active {
            return Err(WindowError::ChallengeNotActive { status });
        }
        if !self.behaviors.contains(behavior) {
            return Err(WindowError::BehaviorNotInChallenge);
        }
        if occurred_at < self.window.start() || occurred_at >= self.effective_end() {
            return Err(WindowError::OutsideChallengeWindow);
        }
        Ok(())
    }

    fn require(
        &self,
        now: OffsetDateTime,
        action: ChallengeAction,
        allowed: &[ChallengeStatus],
    ) -> Result<(), ChallengeError> {
        let from = self.status_at(now);
        if allowed.contains(&from) {
            Ok(())
        } else {
            Err(ChallengeError::IllegalTransition { from, action })
        }
    }
}

/// A participant's answer to an invitation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum InvitationState {
    /// Invited, no answer yet.
    #[default]
    Invited,
    /// Takes part.
    Accepted,
    /// Does not take part.
    Declined,
}

/// A refused answer to an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvitationError {
    /// Only an open invitation can be answered, once.
    #[error("the invitation was already answered")]
    AlreadyAnswered,
    /// Invitations close when the challenge starts (or is cancelled).
    #[error("invitations are closed: the challenge is {0}")]
    Closed(ChallengeStatus),
}

impl InvitationState {
    /// Accepts an open invitation before the challenge starts.
    pub fn accept(self, challenge: ChallengeStatus) -> Result<Self, InvitationError> {
        self.answer(challenge, Self::Accepted)
    }

    /// Declines an open invitation before the challenge starts.
    pub fn decline(self, challenge: ChallengeStatus) -> Result<Self, InvitationError> {
        self.answer(challenge, Self::Declined)
    }

    /// Whether the participant competes. An invitation still open at the start does not.
    pub fn takes_part(self) -> bool {
        self == Self::Accepted
    }

    fn answer(self, challenge: ChallengeStatus, to: Self) -> Result<Self, InvitationError> {
        if !matches!(
            challenge,
            ChallengeStatus::Draft | ChallengeStatus::Scheduled
        ) {
            return Err(InvitationError::Closed(challenge));
        }
        match self {
            Self::Invited => Ok(to),
            Self::Accepted | Self::Declined => Err(InvitationError::AlreadyAnswered),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::Duration;
    use time::macros::datetime;

    const START: OffsetDateTime = datetime!(2025-03-09 16:00 UTC);
    const END: OffsetDateTime = datetime!(2025-03-16 16:00 UTC);

    fn id(s: &str) -> BehaviorId {
        BehaviorId::parse(s).unwrap()
    }

    fn season() -> TimeWindow {
        TimeWindow::new(
            datetime!(2025-02-16 16:00 UTC),
            datetime!(2025-07-10 16:00 UTC),
        )
        .unwrap()
    }

    fn challenge() -> Challenge {
        Challenge::new(
            ChallengeKind::ClassVsClass,
            TimeWindow::new(START, END).unwrap(),
            &season(),
            BTreeSet::from([id("meatless_meal"), id("clean_plate")]),
        )
        .unwrap()
    }

    fn published() -> Challenge {
        let mut c = challenge();
        c.publish(START - Duration::DAY).unwrap();
        c
    }

    #[test]
    fn a_class_battle_is_scored_per_capita_by_default() {
        assert_eq!(challenge().scoring(), ScoringMode::PerCapita);
        assert_eq!(challenge().required_confirmations().get(), 2);
        assert_eq!(
            challenge().with_scoring(ScoringMode::Total).scoring(),
            ScoringMode::Total
        );
    }

    #[test]
    fn a_challenge_must_lie_within_its_season_and_score_something() {
        let late = TimeWindow::new(START, datetime!(2025-08-01 0:00 UTC)).unwrap();
        assert_eq!(
            Challenge::new(
                ChallengeKind::ClassVsClass,
                late,
                &season(),
                BTreeSet::from([id("a")])
            ),
            Err(ChallengeError::OutsideSeason)
        );
        assert_eq!(
            Challenge::new(
                ChallengeKind::ClubVsClub,
                TimeWindow::new(START, END).unwrap(),
                &season(),
                BTreeSet::new()
            ),
            Err(ChallengeError::NoBehaviors)
        );
    }

    #[test]
    fn an_unpublished_challenge_stays_a_draft_even_after_its_start() {
        assert_eq!(
            challenge().status_at(START + Duration::HOUR),
            ChallengeStatus::Draft
        );
    }

    #[test]
    fn a_published_challenge_is_scheduled_then_active_then_finished() {
        let c = published();
        assert_eq!(
            c.status_at(START - Duration::SECOND),
            ChallengeStatus::Scheduled
        );
        assert_eq!(c.status_at(START), ChallengeStatus::Active);
        assert_eq!(c.status_at(END - Duration::SECOND), ChallengeStatus::Active);
        assert_eq!(c.status_at(END), ChallengeStatus::Finished);
    }

    #[test]
    fn publishing_twice_is_an_illegal_transition() {
        let mut c = published();
        assert_eq!(
            c.publish(START - Duration::HOUR),
            Err(ChallengeError::IllegalTransition {
                from: ChallengeStatus::Scheduled,
                action: ChallengeAction::Publish
            })
        );
    }

    #[test]
    fn a_draft_whose_window_is_over_cannot_be_published() {
        assert_eq!(challenge().publish(END), Err(ChallengeError::WindowOver));
    }

    #[test]
    fn a_draft_published_after_its_start_is_active_at_once() {
        let mut c = challenge();
        let now = START + Duration::HOUR;
        c.publish(now).unwrap();
        assert_eq!(c.status_at(now), ChallengeStatus::Active);
    }

    #[test]
    fn ending_early_finishes_an_active_challenge_from_that_moment() {
        let mut c = published();
        let now = START + Duration::DAY;
        c.end_early(now).unwrap();
        assert_eq!(c.effective_end(), now);
        assert_eq!(c.status_at(now), ChallengeStatus::Finished);
        assert_eq!(
            c.end_early(now),
            Err(ChallengeError::IllegalTransition {
                from: ChallengeStatus::Finished,
                action: ChallengeAction::EndEarly
            })
        );
    }

    #[test]
    fn only_an_active_challenge_can_end_early() {
        assert!(matches!(
            published().end_early(START - Duration::HOUR),
            Err(ChallengeError::IllegalTransition {
                from: ChallengeStatus::Scheduled,
                ..
            })
        ));
    }

    #[test]
    fn a_finished_challenge_cannot_be_cancelled_but_a_running_one_can() {
        assert!(published().cancel(END).is_err());
        let mut c = published();
        c.cancel(START + Duration::HOUR).unwrap();
        assert_eq!(
            c.status_at(START + Duration::HOUR),
            ChallengeStatus::Cancelled
        );
        assert_eq!(c.status_at(END + Duration::DAY), ChallengeStatus::Cancelled);
        assert!(c.cancel(START + Duration::DAY).is_err());
        assert!(c.publish(START + Duration::DAY).is_err());
    }

    #[test]
    fn a_challenge_can_be_rescheduled_only_before_it_starts() {
        let later = TimeWindow::new(START + Duration::DAY, END + Duration::DAY).unwrap();
        let mut c = published();
        c.reschedule(later, &season(), START - Duration::HOUR)
            .unwrap();
        assert_eq!(c.window(), later);
        assert!(matches!(
            c.reschedule(later, &season(), START + Duration::days(2)),
            Err(ChallengeError::IllegalTransition {
                from: ChallengeStatus::Active,
                ..
            })
        ));
    }

    #[test]
    fn an_active_challenge_admits_its_behaviours_inside_its_window() {
        let c = published();
        let now = START + Duration::HOUR;
        assert_eq!(c.admits(&id("meatless_meal"), START, now), Ok(()));
        assert_eq!(
            c.admits(&id("lights_off"), now, now),
            Err(WindowError::BehaviorNotInChallenge)
        );
        assert_eq!(
            c.admits(&id("meatless_meal"), START - Duration::SECOND, now),
            Err(WindowError::OutsideChallengeWindow)
        );
    }

    #[test]
    fn a_challenge_that_is_not_active_admits_nothing() {
        let c = published();
        assert_eq!(
            c.admits(
                &id("meatless_meal"),
                END - Duration::HOUR,
                END + Duration::HOUR
            ),
            Err(WindowError::ChallengeNotActive {
                status: ChallengeStatus::Finished
            })
        );
        assert_eq!(
            challenge().admits(&id("meatless_meal"), START, START),
            Err(WindowError::ChallengeNotActive {
                status: ChallengeStatus::Draft
            })
        );
    }

    #[test]
    fn a_goal_must_be_on_one_of_the_challenges_behaviours() {
        let goal = CollectiveGoal {
            behavior: id("lights_off"),
            target_quantity: NonZeroU64::new(10).unwrap(),
        };
        assert_eq!(
            challenge().with_goal(goal),
            Err(ChallengeError::GoalBehaviorNotInChallenge(id("lights_off")))
        );
    }

    #[test]
    fn goal_progress_is_a_whole_percent_capped_at_a_hundred() {
        let goal = CollectiveGoal {
            behavior: id("meatless_meal"),
            target_quantity: NonZeroU64::new(1_000).unwrap(),
        };
        let c = challenge().with_goal(goal.clone()).unwrap();
        assert_eq!(c.goal(), Some(&goal));
        assert_eq!(goal.progress_percent(0), 0);
        assert_eq!(goal.progress_percent(999), 99);
        assert_eq!(goal.progress_percent(1_000), 100);
        assert_eq!(goal.progress_percent(u64::MAX), 100);
        assert!(!goal.is_reached(999));
        assert!(goal.is_reached(1_000));
    }

    #[test]
    fn an_invitation_is_answered_once_before_the_start() {
        let accepted = InvitationState::Invited
            .accept(ChallengeStatus::Scheduled)
            .unwrap();
        assert!(accepted.takes_part());
        assert_eq!(
            accepted.decline(ChallengeStatus::Scheduled),
            Err(InvitationError::AlreadyAnswered)
        );
        assert_eq!(
            InvitationState::Invited.decline(ChallengeStatus::Draft),
            Ok(InvitationState::Declined)
        );
        assert!(!InvitationState::Invited.takes_part());
    }

    #[test]
    fn invitations_close_when_the_challenge_starts() {
        assert_eq!(
            InvitationState::Invited.accept(ChallengeStatus::Active),
            Err(InvitationError::Closed(ChallengeStatus::Active))
        );
        assert_eq!(
            InvitationState::Invited.accept(ChallengeStatus::Cancelled),
            Err(InvitationError::Closed(ChallengeStatus::Cancelled))
        );
    }

    proptest! {
        #[test]
        fn progress_reaches_a_hundred_exactly_when_the_goal_is_reached(
            target in 1u64..=1_000_000, done in 0u64..=2_000_000,
        ) {
            let goal = CollectiveGoal {
                behavior: id("meatless_meal"),
                target_quantity: NonZeroU64::new(target).unwrap(),
            };
            let p = goal.progress_percent(done);
            prop_assert!(p <= 100);
            prop_assert_eq!(p == 100, goal.is_reached(done));
            prop_assert!(u128::from(p) * u128::from(target) <= u128::from(done) * 100);
        }

        #[test]
        fn a_published_challenge_is_active_exactly_inside_its_window(offset_secs in -1_000_000i64..2_000_000) {
            let now = START + Duration::seconds(offset_secs);
            let c = published();
            let inside = TimeWindow::new(START, END).unwrap().contains(now);
            prop_assert_eq!(c.status_at(now) == ChallengeStatus::Active, inside);
        }
    }
}
