//! Verify-to-push latency: when did a subscriber's pushed board first show the points of a
//! verification?
//!
//! Method. Every verification the load test causes (a station submission, or a submission in a
//! teacher's approve batch) is appended, when its request is *sent*, to the log of each entity
//! whose board row it raises: the student (class boards), the class (school and challenge
//! boards) and the school (the province board). An entry carries its points and its send
//! instant. The run's schools are fresh, so an entity's points on a board are exactly the sum
//! of its log's entries that the server has applied.
//!
//! Each client keeps, per topic and entity, a [`Cursor`]: how far into the log its pushes have
//! shown, and the points that covers. When a pushed board shows an entity with `points`, the
//! client walks its cursor forward over the entries whose running sum fits within `points`,
//! recording `now − sent` for each. The first frame that shows an entity (a snapshot, or the
//! entity entering the top N the server pushes) only sets the cursor: the client cannot know
//! when those points became visible.
//!
//! Limits: entries are taken in send order, while the server may commit two concurrent
//! verifications of one class in the other order — the later one is then recorded when the
//! earlier one shows, at most one coalescing period late. A verification the server refuses is
//! marked cancelled and skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

#[derive(Debug, Clone, Copy)]
struct Entry {
    points: i64,
    sent: Instant,
    cancelled: bool,
}

/// One entity's verifications, in send order.
#[derive(Debug, Default)]
pub struct Log {
    entries: Mutex<Vec<Entry>>,
}

/// Where an entry lies, to cancel it.
#[derive(Debug, Clone)]
pub struct Mark {
    logs: Vec<(Arc<Log>, usize)>,
}

/// Every entity's log; built once, read-only afterwards.
#[derive(Debug, Default)]
pub struct Ledger {
    logs: HashMap<Uuid, Arc<Log>>,
}

impl Ledger {
    /// Adds an entity (a student, class or school).
    pub fn add(&mut self, entity: Uuid) {
        self.logs.entry(entity).or_default();
    }

    /// The entity's log, if it is one of the run's.
    pub fn log(&self, entity: &Uuid) -> Option<&Arc<Log>> {
        self.logs.get(entity)
    }

    /// Appends a verification of `points` sent at `sent` to each entity's log.
    pub fn append(&self, entities: &[Uuid], points: i64, sent: Instant) -> Mark {
        let mut logs = Vec::with_capacity(entities.len());
        for e in entities {
            if let Some(log) = self.logs.get(e) {
                let mut entries = log.entries.lock().unwrap_or_else(|e| e.into_inner());
                entries.push(Entry {
                    points,
                    sent,
                    cancelled: false,
                });
                logs.push((log.clone(), entries.len() - 1));
            }
        }
        Mark { logs }
    }
}

impl Mark {
    /// The verification did not happen: skip it everywhere.
    pub fn cancel(&self) {
        for (log, i) in &self.logs {
            let mut entries = log.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = entries.get_mut(*i) {
                e.cancelled = true;
            }
        }
    }
}

/// A client's view of one entity on one topic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cursor {
    next: usize,
    covered: i64,
    /// The topic sequence number of the last frame that showed the entity.
    seen_seq: Option<u64>,
}

impl Cursor {
    /// The entity is shown with `points` in a frame with `seq` (the previous frame on the topic
    /// had `prev_seq`). Calls `sample` with each newly visible verification's latency, unless
    /// this frame only sets the baseline.
    pub fn advance(
        &mut self,
        log: &Log,
        points: i64,
        seq: u64,
        prev_seq: Option<u64>,
        now: Instant,
        mut sample: impl FnMut(Duration),
    ) {
        let record = prev_seq.is_some() && prev_seq == self.seen_seq;
        self.seen_seq = Some(seq);
        let entries = log.entries.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(e) = entries.get(self.next) {
            if e.cancelled {
                self.next += 1;
                continue;
            }
            if self.covered + e.points > points {
                break;
            }
            self.covered += e.points;
            self.next += 1;
            if record {
                sample(now.saturating_duration_since(e.sent));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(ids: &[Uuid]) -> Ledger {
        let mut l = Ledger::default();
        for id in ids {
            l.add(*id);
        }
        l
    }

    #[test]
    fn a_push_records_the_verifications_it_shows_and_no_more() {
        let class = Uuid::new_v4();
        let l = ledger(&[class]);
        let t0 = Instant::now();
        l.append(&[class], 3, t0);
        l.append(&[class], 1, t0);
        l.append(&[class], 16, t0);
        let log = l.log(&class).unwrap();
        let mut c = Cursor::default();
        let mut samples = 0;
        // The snapshot (seq 1) shows 0 points: baseline.
        c.advance(log, 0, 1, None, t0, |_| samples += 1);
        // Event seq 2 shows 4 points: the first two verifications.
        c.advance(log, 4, 2, Some(1), t0 + Duration::from_millis(5), |d| {
            assert_eq!(d, Duration::from_millis(5));
            samples += 1;
        });
        assert_eq!(samples, 2);
        // Event seq 3 still 4 points: nothing new.
        c.advance(log, 4, 3, Some(2), t0, |_| samples += 1);
        assert_eq!(samples, 2);
        c.advance(log, 20, 4, Some(3), t0, |_| samples += 1);
        assert_eq!(samples, 3);
    }

    #[test]
    fn an_entity_entering_the_pushed_rows_only_sets_the_baseline() {
        let s = Uuid::new_v4();
        let l = ledger(&[s]);
        let t0 = Instant::now();
        l.append(&[s], 5, t0);
        let log = l.log(&s).unwrap();
        let mut c = Cursor::default();
        let mut samples = 0;
        // Absent from frames 1..=6; first shown in frame 7.
        c.advance(log, 5, 7, Some(6), t0, |_| samples += 1);
        assert_eq!(samples, 0);
        l.append(&[s], 2, t0);
        c.advance(log, 7, 8, Some(7), t0, |_| samples += 1);
        assert_eq!(samples, 1);
    }

    #[test]
    fn a_cancelled_verification_is_skipped() {
        let s = Uuid::new_v4();
        let l = ledger(&[s]);
        let t0 = Instant::now();
        let log = l.log(&s).unwrap();
        let mut c = Cursor::default();
        c.advance(log, 0, 1, None, t0, |_| {});
        l.append(&[s], 5, t0).cancel();
        l.append(&[s], 2, t0);
        let mut samples = 0;
        c.advance(log, 2, 2, Some(1), t0, |_| samples += 1);
        assert_eq!(samples, 1);
    }
}
