//! Where the sink is in each (topic, partition): the next offset it will
//! write, learnt from ClickHouse rather than from the consumer group.
//!
//! A committed Kafka offset can lag what ClickHouse holds (a crash between
//! insert and commit) or, after a rebalance, be someone else's. So the first
//! record of each partition after an assignment is checked against the
//! highest offset `events` holds: if it is not the very next one, the
//! consumer seeks there. Records below the cursor are dropped. Pure: the
//! sink does the reading and seeking.

use std::collections::HashMap;

/// What to do with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Write it.
    Keep,
    /// Already stored (or about to be re-read): skip it.
    Drop,
    /// Nothing known about its partition yet: look up what ClickHouse holds
    /// and call [`Cursors::resolve`].
    Resolve,
}

/// Where to move the consumer after a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// The record is the next one: write it.
    Keep,
    /// Drop the record and seek to this offset.
    SeekTo(i64),
    /// ClickHouse holds nothing of the partition: drop the record and read
    /// the partition from its first record.
    SeekToStart,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    At(i64),
    /// After seeking to the start, whatever comes first is next.
    First,
}

/// The cursors of the assigned partitions; bounded by the assignment.
#[derive(Debug, Default)]
pub struct Cursors {
    next: HashMap<(String, i32), Next>,
}

impl Cursors {
    pub fn check(&mut self, topic: &str, partition: i32, offset: i64) -> Disposition {
        let Some(next) = self.next.get_mut(&(topic.to_owned(), partition)) else {
            return Disposition::Resolve;
        };
        match *next {
            Next::At(n) if offset < n => Disposition::Drop,
            // A jump forward is a gap in the log itself (retention,
            // compaction), not a missed record: the seek already covered
            // everything ClickHouse lacked.
            _ => {
                *next = Next::At(offset + 1);
                Disposition::Keep
            }
        }
    }

    /// Decides from `stored`, the highest offset ClickHouse holds for the
    /// partition (`None`: no rows).
    pub fn resolve(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        stored: Option<i64>,
    ) -> Resolution {
        let key = (topic.to_owned(), partition);
        match stored {
            Some(s) if offset == s + 1 => {
                self.next.insert(key, Next::At(offset + 1));
                Resolution::Keep
            }
            Some(s) => {
                self.next.insert(key, Next::At(s + 1));
                Resolution::SeekTo(s + 1)
            }
            None if offset == 0 => {
                self.next.insert(key, Next::At(1));
                Resolution::Keep
            }
            None => {
                self.next.insert(key, Next::First);
                Resolution::SeekToStart
            }
        }
    }

    /// Forgets one partition, so its next record is resolved again.
    pub fn forget(&mut self, topic: &str, partition: i32) {
        self.next.remove(&(topic.to_owned(), partition));
    }

    /// Forgets every partition (after a rebalance).
    pub fn forget_all(&mut self) {
        self.next.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_record_is_checked_against_clickhouse() {
        let mut c = Cursors::default();
        assert_eq!(c.check("t", 0, 5), Disposition::Resolve);
        // ClickHouse holds up to 4: 5 is next.
        assert_eq!(c.resolve("t", 0, 5, Some(4)), Resolution::Keep);
        assert_eq!(c.check("t", 0, 6), Disposition::Keep);
    }

    #[test]
    fn a_committed_offset_behind_clickhouse_skips_what_is_stored() {
        // Crash after inserting up to 9 but before committing past 2.
        let mut c = Cursors::default();
        assert_eq!(c.resolve("t", 0, 3, Some(9)), Resolution::SeekTo(10));
        // Records still queued from before the seek are dropped.
        assert_eq!(c.check("t", 0, 4), Disposition::Drop);
        assert_eq!(c.check("t", 0, 10), Disposition::Keep);
    }

    #[test]
    fn a_committed_offset_ahead_of_clickhouse_reads_the_missing_records() {
        let mut c = Cursors::default();
        assert_eq!(c.resolve("t", 1, 50, Some(19)), Resolution::SeekTo(20));
        assert_eq!(c.check("t", 1, 20), Disposition::Keep);
        assert_eq!(c.resolve("u", 0, 7, None), Resolution::SeekToStart);
        assert_eq!(c.check("u", 0, 0), Disposition::Keep);
        assert_eq!(c.check("u", 0, 0), Disposition::Drop);
        assert_eq!(c.resolve("v", 0, 0, None), Resolution::Keep);
    }

    #[test]
    fn gaps_in_the_log_are_kept_and_forgetting_resolves_again() {
        let mut c = Cursors::default();
        c.resolve("t", 0, 0, None);
        assert_eq!(c.check("t", 0, 5), Disposition::Keep);
        c.forget("t", 0);
        assert_eq!(c.check("t", 0, 6), Disposition::Resolve);
        c.resolve("t", 0, 6, Some(5));
        c.forget_all();
        assert_eq!(c.check("t", 0, 7), Disposition::Resolve);
    }
}
