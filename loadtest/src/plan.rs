//! What each student submits: a behaviour, a date, and whether a station code goes with it —
//! chosen so that no submission breaks a rule the server enforces on purpose.
//!
//! The catalogue caps every behaviour per student and school day (a meatless meal twice a day).
//! A load test that ignored the caps would measure refusals, not the server, so every student
//! carries a [`Budget`]: per behaviour and school day, the units still allowed. Submissions are
//! dated over the last `--backdate-hours` (the server accepts late reports), which multiplies
//! the budget by the number of school days covered. A station code is usable once per student,
//! station and window, so [`StationUse`] remembers the windows already spent.

use std::collections::HashMap;

use rand::Rng;
use rand::RngExt as _;
use time::{Date, Duration, OffsetDateTime, UtcOffset};

/// A behaviour as the load test needs it.
#[derive(Debug, Clone)]
pub struct BehaviorInfo {
    /// Its id.
    pub id: String,
    /// Points per unit.
    pub points_per_unit: i64,
    /// Units per student and school day.
    pub daily_cap: u32,
    /// Whether a station may verify it.
    pub station: bool,
}

impl From<&schema::league::Behavior> for BehaviorInfo {
    fn from(b: &schema::league::Behavior) -> Self {
        Self {
            id: b.id.clone(),
            points_per_unit: i64::from(b.points_per_unit),
            daily_cap: b.daily_cap_per_student,
            station: b.verification.iter().any(|m| m == "station"),
        }
    }
}

/// The UTC offset of a season's time zone, as the server counts school days.
pub fn zone_offset(timezone: &str) -> UtcOffset {
    let hours = match timezone {
        "UTC" => 0,
        "Asia/Urumqi" => 6,
        _ => 8,
    };
    UtcOffset::from_hms(hours, 0, 0).unwrap_or(UtcOffset::UTC)
}

/// A school day's usable instants.
#[derive(Debug, Clone, Copy)]
struct DaySpan {
    start: OffsetDateTime,
    end: OffsetDateTime,
}

/// The school days (clipped to `[earliest, latest)`) submissions may be dated in.
#[derive(Debug, Clone)]
pub struct Calendar {
    days: Vec<DaySpan>,
}

impl Calendar {
    /// Every school day (in `offset`) overlapping `[earliest, latest)`.
    pub fn new(earliest: OffsetDateTime, latest: OffsetDateTime, offset: UtcOffset) -> Self {
        let mut days = Vec::new();
        let mut day: Date = earliest.to_offset(offset).date();
        let last: Date = latest.to_offset(offset).date();
        while day <= last {
            let start = day.midnight().assume_offset(offset);
            let end = start + Duration::DAY;
            let span = DaySpan {
                start: start.max(earliest),
                end: end.min(latest),
            };
            if span.end - span.start >= Duration::seconds(1) {
                days.push(span);
            }
            match day.next_day() {
                Some(d) => day = d,
                None => break,
            }
        }
        Self { days }
    }

    /// How many school days it covers.
    pub fn len(&self) -> usize {
        self.days.len()
    }

    /// Whether it covers no day.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty()
    }
}

/// One behaviour on one day with units left.
#[derive(Debug, Clone, Copy)]
struct Slot {
    behavior: usize,
    day: usize,
    left: u32,
}

/// What one student may still submit.
#[derive(Debug, Clone)]
pub struct Budget {
    slots: Vec<Slot>,
}

/// A planned submission of quantity 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pick {
    /// Index into the catalogue.
    pub behavior: usize,
    /// When it happened.
    pub occurred_at: OffsetDateTime,
}

impl Budget {
    /// The full budget over the calendar.
    pub fn new(catalogue: &[BehaviorInfo], calendar: &Calendar) -> Self {
        let mut slots = Vec::new();
        for (b, info) in catalogue.iter().enumerate() {
            for day in 0..calendar.days.len() {
                if info.daily_cap > 0 {
                    slots.push(Slot {
                        behavior: b,
                        day,
                        left: info.daily_cap,
                    });
                }
            }
        }
        Self { slots }
    }

    /// Units left in total.
    pub fn left(&self) -> u64 {
        self.slots.iter().map(|s| u64::from(s.left)).sum()
    }

    /// Takes one unit: of a station-verifiable behaviour if `station` (None when none is left),
    /// else of any behaviour (None when the budget is spent).
    pub fn take(
        &mut self,
        catalogue: &[BehaviorInfo],
        calendar: &Calendar,
        station: bool,
        rng: &mut impl Rng,
    ) -> Option<Pick> {
        let candidates: Vec<usize> = (0..self.slots.len())
            .filter(|&i| !station || catalogue[self.slots[i].behavior].station)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let i = candidates[rng.random_range(0..candidates.len())];
        let slot = &mut self.slots[i];
        slot.left -= 1;
        let day = calendar.days[slot.day];
        let behavior = slot.behavior;
        if slot.left == 0 {
            self.slots.swap_remove(i);
        }
        let span_ms = (day.end - day.start).whole_milliseconds().max(1);
        let offset = rng.random_range(0..span_ms);
        Some(Pick {
            behavior,
            occurred_at: day.start + Duration::milliseconds(offset as i64),
        })
    }
}

/// The station windows a student already spent, per station.
#[derive(Debug, Clone, Default)]
pub struct StationUse {
    last: HashMap<usize, u64>,
}

impl StationUse {
    /// A station (index) whose current window the student has not used yet, marking it used.
    /// `window_of(i)` is station i's current window index (None: its code is not known yet).
    pub fn take(
        &mut self,
        stations: usize,
        window_of: impl Fn(usize) -> Option<u64>,
    ) -> Option<usize> {
        for i in 0..stations {
            let Some(w) = window_of(i) else {
                continue;
            };
            // The server records the window the code belongs to (the client's), even when it
            // checks it just after the turn, so one use per window index is exact.
            match self.last.get(&i) {
                Some(&used) if used >= w => continue,
                _ => {
                    self.last.insert(i, w);
                    return Some(i);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn catalogue() -> Vec<BehaviorInfo> {
        vec![
            BehaviorInfo {
                id: "meatless_meal".into(),
                points_per_unit: 1,
                daily_cap: 2,
                station: true,
            },
            BehaviorInfo {
                id: "lights_off".into(),
                points_per_unit: 1,
                daily_cap: 3,
                station: false,
            },
        ]
    }

    #[test]
    fn the_calendar_counts_every_school_day_touched() {
        let c = Calendar::new(
            datetime!(2026-03-01 20:00 UTC),
            datetime!(2026-03-03 20:00 UTC),
            zone_offset("Asia/Shanghai"),
        );
        // 04:00 on the 2nd (+8) to 04:00 on the 4th: three school days.
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn a_budget_never_exceeds_a_daily_cap() {
        let cat = catalogue();
        let cal = Calendar::new(
            datetime!(2026-03-01 00:00 UTC),
            datetime!(2026-03-01 10:00 UTC),
            UtcOffset::UTC,
        );
        let mut b = Budget::new(&cat, &cal);
        assert_eq!(b.left(), 5);
        let mut rng = rand::rng();
        let mut per_behavior = [0u32; 2];
        while let Some(p) = b.take(&cat, &cal, false, &mut rng) {
            per_behavior[p.behavior] += 1;
            assert!(p.occurred_at >= datetime!(2026-03-01 00:00 UTC));
            assert!(p.occurred_at < datetime!(2026-03-01 10:00 UTC));
        }
        assert_eq!(per_behavior, [2, 3]);
    }

    #[test]
    fn a_station_pick_is_a_station_behaviour() {
        let cat = catalogue();
        let cal = Calendar::new(
            datetime!(2026-03-01 00:00 UTC),
            datetime!(2026-03-01 10:00 UTC),
            UtcOffset::UTC,
        );
        let mut b = Budget::new(&cat, &cal);
        let mut rng = rand::rng();
        assert_eq!(b.take(&cat, &cal, true, &mut rng).unwrap().behavior, 0);
        assert_eq!(b.take(&cat, &cal, true, &mut rng).unwrap().behavior, 0);
        assert!(b.take(&cat, &cal, true, &mut rng).is_none());
        assert_eq!(b.take(&cat, &cal, false, &mut rng).unwrap().behavior, 1);
    }

    #[test]
    fn a_station_window_is_used_once_per_student() {
        let mut u = StationUse::default();
        assert_eq!(u.take(2, |_| Some(10)), Some(0));
        assert_eq!(u.take(2, |_| Some(10)), Some(1));
        assert_eq!(u.take(2, |_| Some(10)), None);
        assert_eq!(u.take(2, |_| Some(11)), Some(0));
        assert_eq!(u.take(2, |_| None), None);
    }
}
