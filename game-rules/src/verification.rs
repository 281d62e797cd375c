//! The verification state of a submission, and peer confirmation.
//!
//! A behaviour scores only once verified:
//!
//! ```text
//! Pending ──verify──▶ Verified ──revoke──▶ Revoked
//!    └────reject───▶ Rejected
//! ```
//!
//! Station-coded and teacher-entered submissions are verified as they are created
//! (`Pending.verify(..)` at once). Peer confirmation verifies a submission when the required
//! number of classmates, never the submitter, have each confirmed it once.

use std::fmt;

use crate::catalogue::{Behavior, BehaviorId, VerificationMethod};

/// Who or what verified a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifiedBy {
    /// A teacher approved it from the moderation queue.
    Teacher,
    /// A teacher entered it for the student.
    TeacherEntered,
    /// Enough classmates confirmed it.
    Peers,
    /// It came with a valid station code.
    Station,
}

impl VerifiedBy {
    /// The catalogue method this way of verifying needs.
    pub fn method(self) -> VerificationMethod {
        match self {
            Self::Teacher | Self::TeacherEntered => VerificationMethod::Teacher,
            Self::Peers => VerificationMethod::Peer,
            Self::Station => VerificationMethod::Station,
        }
    }
}

/// The verification state of one submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VerificationState {
    /// Waiting for a teacher, classmates or nothing more.
    #[default]
    Pending,
    /// Counts for the scores.
    Verified(VerifiedBy),
    /// Refused; never counted.
    Rejected,
    /// Was verified, then revoked: its points are taken back.
    Revoked,
}

/// A transition asked of a [`VerificationState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VerificationAction {
    /// Verify it.
    Verify,
    /// Reject it.
    Reject,
    /// Revoke it.
    Revoke,
}

impl fmt::Display for VerificationAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Verify => "verify",
            Self::Reject => "reject",
            Self::Revoke => "revoke",
        })
    }
}

/// How a transition changes the scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScoreEffect {
    /// Add the submission's points.
    Add,
    /// Take the submission's points back.
    Remove,
    /// Nothing changes.
    None,
}

/// A refused verification transition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerificationError {
    /// The transition does not start from this state.
    #[error("cannot {action} a submission that is {from}")]
    IllegalTransition {
        /// The current state's name.
        from: &'static str,
        /// What was asked.
        action: VerificationAction,
    },
    /// The catalogue does not accept this way of verifying the behaviour.
    #[error("`{behavior}` cannot be verified by {method}")]
    MethodNotAccepted {
        /// The behaviour.
        behavior: BehaviorId,
        /// The refused method.
        method: VerificationMethod,
    },
}

impl VerificationState {
    /// The state's stored name: `pending`, `verified`, `rejected` or `revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified(_) => "verified",
            Self::Rejected => "rejected",
            Self::Revoked => "revoked",
        }
    }

    /// Whether the submission's points count now.
    pub fn counts(self) -> bool {
        matches!(self, Self::Verified(_))
    }

    /// Verifies a pending submission of `behavior` by `by`, if the catalogue accepts that method.
    pub fn verify(self, by: VerifiedBy, behavior: &Behavior) -> Result<Self, VerificationError> {
        if self != Self::Pending {
            return Err(self.illegal(VerificationAction::Verify));
        }
        if !behavior.accepts(by.method()) {
            return Err(VerificationError::MethodNotAccepted {
                behavior: behavior.id.clone(),
                method: by.method(),
            });
        }
        Ok(Self::Verified(by))
    }

    /// Rejects a pending submission.
    pub fn reject(self) -> Result<Self, VerificationError> {
        match self {
            Self::Pending => Ok(Self::Rejected),
            _ => Err(self.illegal(VerificationAction::Reject)),
        }
    }

    /// Revokes a verified submission.
    pub fn revoke(self) -> Result<Self, VerificationError> {
        match self {
            Self::Verified(_) => Ok(Self::Revoked),
            _ => Err(self.illegal(VerificationAction::Revoke)),
        }
    }

    /// What moving from `self` to `next` does to the scores.
    pub fn score_effect(self, next: Self) -> ScoreEffect {
        match (self.counts(), next.counts()) {
            (false, true) => ScoreEffect::Add,
            (true, false) => ScoreEffect::Remove,
            _ => ScoreEffect::None,
        }
    }

    fn illegal(self, action: VerificationAction) -> VerificationError {
        VerificationError::IllegalTransition {
            from: self.as_str(),
            action,
        }
    }
}

/// How many classmates must confirm a submission: 1 to 10, 2 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct RequiredConfirmations(u8);

/// A confirmation count outside 1..=10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "required confirmations must be between {min} and {max}, got {0}",
    min = RequiredConfirmations::MIN,
    max = RequiredConfirmations::MAX
)]
pub struct InvalidRequiredConfirmations(pub u8);

impl RequiredConfirmations {
    /// The fewest allowed.
    pub const MIN: u8 = 1;
    /// The most allowed.
    pub const MAX: u8 = 10;
    /// The default: two classmates.
    pub const DEFAULT: Self = Self(2);

    /// A count in `MIN..=MAX`.
    pub fn new(n: u8) -> Result<Self, InvalidRequiredConfirmations> {
        if (Self::MIN..=Self::MAX).contains(&n) {
            Ok(Self(n))
        } else {
            Err(InvalidRequiredConfirmations(n))
        }
    }

    /// The count.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl Default for RequiredConfirmations {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u8> for RequiredConfirmations {
    type Error = InvalidRequiredConfirmations;

    fn try_from(n: u8) -> Result<Self, Self::Error> {
        Self::new(n)
    }
}

impl From<RequiredConfirmations> for u8 {
    fn from(n: RequiredConfirmations) -> Self {
        n.0
    }
}

/// A peer confirmation that was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confirmed {
    /// Confirmations including this one.
    pub count: usize,
    /// Whether this confirmation reached the threshold: verify the submission now.
    pub now_verified: bool,
}

/// Why a peer confirmation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// Nobody confirms their own behaviour.
    #[error("you cannot confirm your own behaviour")]
    SelfConfirmation,
    /// Only classmates of the submitter may confirm.
    #[error("only classmates can confirm this behaviour")]
    NotAClassmate,
    /// One vote per classmate.
    #[error("you have already confirmed this behaviour")]
    AlreadyConfirmed,
    /// The behaviour does not accept peer confirmation.
    #[error("this behaviour cannot be confirmed by classmates")]
    PeersNotAccepted,
    /// The submission is no longer waiting for confirmation.
    #[error("this submission is already {0}")]
    NotPending(&'static str),
}

/// Records `confirmer`'s confirmation of a submission by `submitter`, given who already confirmed
/// it (`existing`), whether the confirmer is in the submitter's class, the submission's state, and
/// whether its behaviour accepts peers (`Behavior::accepts(VerificationMethod::Peer)`).
pub fn confirm<Id: PartialEq>(
    submitter: &Id,
    confirmer: &Id,
    confirmer_is_classmate: bool,
    existing: &[Id],
    state: VerificationState,
    peers_accepted: bool,
    required: RequiredConfirmations,
) -> Result<Confirmed, PeerError> {
    if !peers_accepted {
        return Err(PeerError::PeersNotAccepted);
    }
    if submitter == confirmer {
        return Err(PeerError::SelfConfirmation);
    }
    if !confirmer_is_classmate {
        return Err(PeerError::NotAClassmate);
    }
    if existing.contains(confirmer) {
        return Err(PeerError::AlreadyConfirmed);
    }
    if state != VerificationState::Pending {
        return Err(PeerError::NotPending(state.as_str()));
    }
    let count = existing.len() + 1;
    Ok(Confirmed {
        count,
        now_verified: count >= usize::from(required.get()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Unit;
    use proptest::prelude::*;

    fn behavior(methods: &[VerificationMethod]) -> Behavior {
        Behavior {
            id: BehaviorId::parse("meatless_meal").unwrap(),
            name_zh: "素食餐".into(),
            name_en: "Meatless meal".into(),
            unit: Unit::Meal,
            mg_co2e_per_unit: 100_000,
            points_per_unit: 1,
            max_quantity_per_submission: 1,
            daily_cap_per_student: 2,
            verification: methods.to_vec(),
            factor_source: "OWID".into(),
            factor_version: "owid-2018-older".into(),
        }
    }

    const PENDING: VerificationState = VerificationState::Pending;

    fn two() -> RequiredConfirmations {
        RequiredConfirmations::DEFAULT
    }

    #[test]
    fn a_teacher_approval_verifies_a_pending_submission_and_adds_its_points() {
        let next = PENDING
            .verify(VerifiedBy::Teacher, &behavior(&[VerificationMethod::Peer]))
            .unwrap();
        assert_eq!(next, VerificationState::Verified(VerifiedBy::Teacher));
        assert_eq!(PENDING.score_effect(next), ScoreEffect::Add);
    }

    #[test]
    fn a_station_cannot_verify_a_behaviour_without_stations() {
        assert_eq!(
            PENDING.verify(VerifiedBy::Station, &behavior(&[VerificationMethod::Peer])),
            Err(VerificationError::MethodNotAccepted {
                behavior: BehaviorId::parse("meatless_meal").unwrap(),
                method: VerificationMethod::Station,
            })
        );
    }

    #[test]
    fn revoking_a_verified_submission_takes_its_points_back() {
        let verified = VerificationState::Verified(VerifiedBy::Peers);
        let revoked = verified.revoke().unwrap();
        assert_eq!(revoked, VerificationState::Revoked);
        assert_eq!(verified.score_effect(revoked), ScoreEffect::Remove);
    }

    #[test]
    fn rejecting_a_pending_submission_changes_no_score() {
        let rejected = PENDING.reject().unwrap();
        assert_eq!(rejected, VerificationState::Rejected);
        assert_eq!(PENDING.score_effect(rejected), ScoreEffect::None);
    }

    #[test]
    fn illegal_transitions_are_refused_naming_the_state_and_action() {
        let b = behavior(&[VerificationMethod::Station]);
        let verified = VerificationState::Verified(VerifiedBy::Station);
        assert_eq!(
            verified
                .verify(VerifiedBy::Teacher, &b)
                .unwrap_err()
                .to_string(),
            "cannot verify a submission that is verified"
        );
        assert!(verified.reject().is_err());
        assert!(PENDING.revoke().is_err());
        assert!(VerificationState::Rejected.revoke().is_err());
        assert!(
            VerificationState::Rejected
                .verify(VerifiedBy::Teacher, &b)
                .is_err()
        );
        assert!(
            VerificationState::Revoked
                .verify(VerifiedBy::Teacher, &b)
                .is_err()
        );
        assert!(VerificationState::Revoked.revoke().is_err());
    }

    #[test]
    fn the_first_of_two_confirmations_does_not_yet_verify() {
        assert_eq!(
            confirm(&1, &2, true, &[], PENDING, true, two()),
            Ok(Confirmed {
                count: 1,
                now_verified: false
            })
        );
    }

    #[test]
    fn the_second_confirmation_verifies() {
        assert_eq!(
            confirm(&1, &3, true, &[2], PENDING, true, two()),
            Ok(Confirmed {
                count: 2,
                now_verified: true
            })
        );
    }

    #[test]
    fn nobody_confirms_their_own_behaviour() {
        assert_eq!(
            confirm(&1, &1, true, &[], PENDING, true, two()),
            Err(PeerError::SelfConfirmation)
        );
    }

    #[test]
    fn a_second_confirmation_by_the_same_classmate_is_refused() {
        assert_eq!(
            confirm(&1, &2, true, &[2], PENDING, true, two()),
            Err(PeerError::AlreadyConfirmed)
        );
    }

    #[test]
    fn a_student_from_another_class_cannot_confirm() {
        assert_eq!(
            confirm(&1, &9, false, &[], PENDING, true, two()),
            Err(PeerError::NotAClassmate)
        );
    }

    #[test]
    fn a_behaviour_without_peer_verification_cannot_be_confirmed() {
        assert_eq!(
            confirm(&1, &2, true, &[], PENDING, false, two()),
            Err(PeerError::PeersNotAccepted)
        );
    }

    #[test]
    fn a_rejected_submission_cannot_be_confirmed() {
        assert_eq!(
            confirm(&1, &2, true, &[], VerificationState::Rejected, true, two()),
            Err(PeerError::NotPending("rejected"))
        );
    }

    #[test]
    fn required_confirmations_are_between_one_and_ten() {
        assert!(RequiredConfirmations::new(0).is_err());
        assert_eq!(RequiredConfirmations::new(1).unwrap().get(), 1);
        assert_eq!(RequiredConfirmations::new(10).unwrap().get(), 10);
        assert!(RequiredConfirmations::new(11).is_err());
        assert_eq!(RequiredConfirmations::default().get(), 2);
    }

    proptest! {
        #[test]
        fn exactly_the_nth_distinct_classmate_verifies(n in 1u8..=10, voters in 1usize..=15) {
            let required = RequiredConfirmations::new(n).unwrap();
            let mut existing: Vec<usize> = Vec::new();
            let mut state = PENDING;
            for confirmer in 1..=voters {
                match confirm(&0, &confirmer, true, &existing, state, true, required) {
                    Ok(c) => {
                        prop_assert_eq!(c.now_verified, confirmer == usize::from(n));
                        existing.push(confirmer);
                        if c.now_verified {
                            state = VerificationState::Verified(VerifiedBy::Peers);
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(e, PeerError::NotPending("verified"));
                        prop_assert!(confirmer > usize::from(n));
                    }
                }
            }
            prop_assert_eq!(state.counts(), voters >= usize::from(n));
        }
    }
}
