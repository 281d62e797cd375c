//! Leaderboard order: a team's score (per capita or total), the exact Redis sort key that puts
//! the higher score first and, on equal scores, whoever reached it first, and the final
//! standings written when a season or challenge closes.
//!
//! # The sort key
//!
//! A Redis sorted-set score is an IEEE-754 double, exact for integers below 2^53. The key packs
//! both parts of the order into one such integer:
//!
//! ```text
//! key = score * 2^TIME_BITS + (MAX_ELAPSED_SECS - elapsed_secs)
//! ```
//!
//! where `elapsed_secs` is the whole seconds from the leaderboard's epoch (its season's start,
//! the same for every member of one sorted set) to the instant the member reached its score.
//! With [`TIME_BITS`] = 26 the elapsed time covers 2^26 s, about 776 days (more than a season's
//! 400 days), at one-second resolution, and the score may be at most [`MAX_SCORE`] = 2^27 - 1
//! (134,217,727: 134,217 points per member in milli-points per capita). Members that reached the
//! same score in the same second share a key; Redis then orders them by member name, and
//! [`standings`] gives them the same rank.

use std::cmp::Ordering;

use time::{Duration, OffsetDateTime};

/// How a team's points become its leaderboard score.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ScoringMode {
    /// Milli-points per member, so a class of 15 can beat a class of 60. The default.
    #[default]
    PerCapita,
    /// The sum of the members' points.
    Total,
}

impl ScoringMode {
    /// The leaderboard score of a team with `total_points` and `members` members.
    pub fn score(self, total_points: u64, members: u32) -> u64 {
        match self {
            Self::PerCapita => per_capita_milli(total_points, members),
            Self::Total => total_points,
        }
    }
}

/// Milli-points per member: `total_points * 1000 / members`, rounded down; 0 for no members.
/// Exact (computed in 128 bits); saturates at `u64::MAX`, far beyond any real score.
pub fn per_capita_milli(total_points: u64, members: u32) -> u64 {
    if members == 0 {
        return 0;
    }
    let milli = u128::from(total_points) * 1000 / u128::from(members);
    u64::try_from(milli).unwrap_or(u64::MAX)
}

/// Bits of the sort key given to the time of reaching the score.
pub const TIME_BITS: u32 = 26;

/// The latest representable instant, in whole seconds after the epoch (about 776 days).
pub const MAX_ELAPSED_SECS: u64 = (1 << TIME_BITS) - 1;

/// The highest score a sort key can carry: 2^(53 - TIME_BITS) - 1.
pub const MAX_SCORE: u64 = (1 << (53 - TIME_BITS)) - 1;

/// Why a score and instant cannot be encoded, or a key decoded.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum SortKeyError {
    /// The score is above [`MAX_SCORE`].
    #[error("score {0} is above the sort key's maximum of {MAX_SCORE}")]
    ScoreTooLarge(u64),
    /// The instant is before the leaderboard's epoch.
    #[error("the score was reached before the leaderboard's epoch")]
    BeforeEpoch,
    /// The instant is more than [`MAX_ELAPSED_SECS`] after the epoch.
    #[error("the score was reached more than {MAX_ELAPSED_SECS} s after the leaderboard's epoch")]
    TooLongAfterEpoch,
    /// The number is not a key this module made (negative, fractional, too large or NaN).
    #[error("{0} is not a leaderboard sort key")]
    NotAKey(f64),
}

/// The Redis sort key of `score` reached at `reached_at` on a leaderboard whose epoch is `epoch`.
/// Higher keys rank first (`ZREVRANGE`). Sub-second parts of `reached_at` are dropped.
pub fn sort_key(
    score: u64,
    reached_at: OffsetDateTime,
    epoch: OffsetDateTime,
) -> Result<f64, SortKeyError> {
    if score > MAX_SCORE {
        return Err(SortKeyError::ScoreTooLarge(score));
    }
    if reached_at < epoch {
        return Err(SortKeyError::BeforeEpoch);
    }
    let elapsed = u64::try_from((reached_at - epoch).whole_seconds())
        .map_err(|_| SortKeyError::BeforeEpoch)?;
    if elapsed > MAX_ELAPSED_SECS {
        return Err(SortKeyError::TooLongAfterEpoch);
    }
    let key = (score << TIME_BITS) | (MAX_ELAPSED_SECS - elapsed);
    // Exact: key < 2^53, and every integer below 2^53 is a double.
    Ok(key as f64)
}

/// The score and the (whole-second) instant a key was made from, given the same epoch.
pub fn decode_sort_key(
    key: f64,
    epoch: OffsetDateTime,
) -> Result<(u64, OffsetDateTime), SortKeyError> {
    const LIMIT: f64 = (1u64 << 53) as f64;
    if !(0.0..LIMIT).contains(&key) || key.fract() != 0.0 {
        return Err(SortKeyError::NotAKey(key));
    }
    // Exact: checked above to be a non-negative integer below 2^53.
    let bits = key as u64;
    let score = bits >> TIME_BITS;
    let elapsed = MAX_ELAPSED_SECS - (bits & MAX_ELAPSED_SECS);
    let elapsed = i64::try_from(elapsed).map_err(|_| SortKeyError::NotAKey(key))?;
    let reached_at = epoch
        .checked_add(Duration::seconds(elapsed))
        .ok_or(SortKeyError::NotAKey(key))?;
    Ok((score, reached_at))
}

/// One team (or student) on a leaderboard, before ranking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<T> {
    /// Who it is.
    pub id: T,
    /// Its score (already per capita or total, see [`ScoringMode::score`]).
    pub score: u64,
    /// When it reached that score.
    pub reached_at: OffsetDateTime,
}

/// An entry with its rank (1 is first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked<T> {
    /// The rank; entries with the same score reached in the same second share it, and the next
    /// rank skips accordingly (1, 1, 3).
    pub rank: u32,
    /// The entry.
    pub entry: Entry<T>,
}

/// Compares two entries in leaderboard order: higher score first, then earlier (whole-second)
/// arrival, the same order as [`sort_key`].
pub fn leaderboard_order<T>(a: &Entry<T>, b: &Entry<T>) -> Ordering {
    b.score.cmp(&a.score).then_with(|| {
        a.reached_at
            .unix_timestamp()
            .cmp(&b.reached_at.unix_timestamp())
    })
}

/// Final standings: sorted in leaderboard order and ranked. Entries tied in both score and second
/// share a rank and are listed by id, so the result does not depend on the input's order.
pub fn standings<T: Ord>(mut entries: Vec<Entry<T>>) -> Vec<Ranked<T>> {
    entries.sort_by(|a, b| leaderboard_order(a, b).then_with(|| a.id.cmp(&b.id)));
    let mut ranked: Vec<Ranked<T>> = Vec::with_capacity(entries.len());
    for (position, entry) in entries.into_iter().enumerate() {
        let rank = match ranked.last() {
            Some(prev) if leaderboard_order(&prev.entry, &entry) == Ordering::Equal => prev.rank,
            _ => u32::try_from(position + 1).unwrap_or(u32::MAX),
        };
        ranked.push(Ranked { rank, entry });
    }
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const EPOCH: OffsetDateTime = datetime!(2025-02-16 16:00 UTC);

    fn at(secs: u64) -> OffsetDateTime {
        EPOCH + Duration::seconds(i64::try_from(secs).unwrap())
    }

    fn entry(id: &'static str, score: u64, secs: u64) -> Entry<&'static str> {
        Entry {
            id,
            score,
            reached_at: at(secs),
        }
    }

    #[test]
    fn a_class_of_15_with_300_points_beats_a_class_of_60_with_1000_per_capita() {
        let rural = ScoringMode::PerCapita.score(300, 15);
        let city = ScoringMode::PerCapita.score(1_000, 60);
        assert_eq!(rural, 20_000);
        assert_eq!(city, 16_666);
        assert!(rural > city);
        assert!(ScoringMode::Total.score(300, 15) < ScoringMode::Total.score(1_000, 60));
    }

    #[test]
    fn a_team_without_members_scores_zero_per_capita() {
        assert_eq!(per_capita_milli(500, 0), 0);
    }

    #[test]
    fn per_capita_does_not_overflow_on_huge_totals() {
        assert_eq!(per_capita_milli(u64::MAX, 1), u64::MAX);
        assert_eq!(per_capita_milli(u64::MAX, 1000), u64::MAX);
    }

    #[test]
    fn the_key_layout_stays_below_2_to_the_53() {
        let top = (MAX_SCORE << TIME_BITS) | MAX_ELAPSED_SECS;
        assert_eq!(top, (1u64 << 53) - 1);
    }

    #[test]
    fn on_equal_scores_the_earlier_arrival_has_the_higher_key() {
        let first = sort_key(100, at(10), EPOCH).unwrap();
        let second = sort_key(100, at(11), EPOCH).unwrap();
        let higher = sort_key(101, at(1_000_000), EPOCH).unwrap();
        assert!(first > second);
        assert!(higher > first);
    }

    #[test]
    fn sub_second_differences_do_not_separate_keys() {
        let a = sort_key(5, at(10), EPOCH).unwrap();
        let b = sort_key(5, at(10) + Duration::milliseconds(900), EPOCH).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn out_of_range_scores_and_instants_are_refused() {
        assert_eq!(
            sort_key(MAX_SCORE + 1, at(0), EPOCH),
            Err(SortKeyError::ScoreTooLarge(MAX_SCORE + 1))
        );
        assert_eq!(
            sort_key(1, EPOCH - Duration::SECOND, EPOCH),
            Err(SortKeyError::BeforeEpoch)
        );
        assert_eq!(
            sort_key(1, at(MAX_ELAPSED_SECS + 1), EPOCH),
            Err(SortKeyError::TooLongAfterEpoch)
        );
        assert!(sort_key(MAX_SCORE, at(MAX_ELAPSED_SECS), EPOCH).is_ok());
    }

    #[test]
    fn numbers_that_are_not_keys_are_refused() {
        for bad in [-1.0, 0.5, f64::NAN, f64::INFINITY, 9_007_199_254_740_992.0] {
            assert!(decode_sort_key(bad, EPOCH).is_err(), "{bad}");
        }
    }

    #[test]
    fn standings_rank_by_score_then_first_arrival_and_share_exact_ties() {
        let ranked = standings(vec![
            entry("c", 50, 30),
            entry("a", 80, 20),
            entry("d", 50, 10),
            entry("b", 80, 20),
            entry("e", 10, 0),
        ]);
        let got: Vec<_> = ranked.iter().map(|r| (r.rank, r.entry.id)).collect();
        assert_eq!(got, vec![(1, "a"), (1, "b"), (3, "d"), (4, "c"), (5, "e")]);
    }

    #[test]
    fn standings_of_nobody_are_empty() {
        assert!(standings::<u32>(Vec::new()).is_empty());
    }

    proptest! {
        #[test]
        fn decoding_an_encoded_key_gives_back_the_score_and_second(
            score in 0..=MAX_SCORE,
            secs in 0..=MAX_ELAPSED_SECS,
        ) {
            let key = sort_key(score, at(secs), EPOCH).unwrap();
            prop_assert_eq!(decode_sort_key(key, EPOCH), Ok((score, at(secs))));
        }

        #[test]
        fn ordering_by_key_is_ordering_by_score_desc_then_arrival_asc(
            s1 in 0..=MAX_SCORE, t1 in 0..=MAX_ELAPSED_SECS,
            s2 in 0..=MAX_SCORE, t2 in 0..=MAX_ELAPSED_SECS,
        ) {
            let k1 = sort_key(s1, at(t1), EPOCH).unwrap();
            let k2 = sort_key(s2, at(t2), EPOCH).unwrap();
            let expected = s1.cmp(&s2).then(t2.cmp(&t1));
            prop_assert_eq!(k1.partial_cmp(&k2), Some(expected));
        }

        #[test]
        fn near_ties_still_order_correctly(
            s in 1..=MAX_SCORE, t in 1..MAX_ELAPSED_SECS,
        ) {
            let k = sort_key(s, at(t), EPOCH).unwrap();
            prop_assert!(sort_key(s, at(t - 1), EPOCH).unwrap() > k);
            prop_assert!(sort_key(s, at(t + 1), EPOCH).unwrap() < k);
            prop_assert!(sort_key(s - 1, at(0), EPOCH).unwrap() < k);
        }

        #[test]
        fn standings_are_a_ranked_permutation_in_leaderboard_order(
            raw in prop::collection::vec((0u64..20, 0u64..5), 0..40),
        ) {
            let entries: Vec<Entry<usize>> = raw
                .iter()
                .enumerate()
                .map(|(id, &(score, secs))| Entry { id, score, reached_at: at(secs) })
                .collect();
            let ranked = standings(entries.clone());
            prop_assert_eq!(ranked.len(), entries.len());
            let mut ids: Vec<usize> = ranked.iter().map(|r| r.entry.id).collect();
            ids.sort_unstable();
            prop_assert_eq!(ids, (0..entries.len()).collect::<Vec<_>>());
            for (i, pair) in ranked.windows(2).enumerate() {
                let order = leaderboard_order(&pair[0].entry, &pair[1].entry);
                prop_assert_ne!(order, Ordering::Greater);
                if order == Ordering::Equal {
                    prop_assert_eq!(pair[1].rank, pair[0].rank);
                } else {
                    prop_assert_eq!(pair[1].rank as usize, i + 2);
                }
            }
            if let Some(first) = ranked.first() {
                prop_assert_eq!(first.rank, 1);
            }
        }
    }
}
