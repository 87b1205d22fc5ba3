//! Which input offsets may be stored: the runner's bookkeeping, with no IO,
//! so that the runner, the benchmark's relay and the simulation all drive
//! the same rules.
//!
//! An input (or an output of no input, which a stage's poll may emit) is
//! *begun* when it is handled, and *done* once every output it caused is
//! acknowledged and it is not parked. Offsets are handed out for storing in
//! input order per partition: an input is stored only after every earlier
//! input of its partition is done, whatever topic it came from. So a stored
//! offset never lies past a record whose outputs might still be lost, and a
//! crash anywhere redelivers rather than loses.
//!
//! A partition can be *abandoned* (revoked): everything begun for it is
//! forgotten, and what its outputs' acknowledgements later report is
//! ignored, since its new owner redoes those records. At shutdown, parked
//! records are abandoned instead: they never finish, so nothing after them
//! in their partition is stored, and they are redelivered after a restart.

use std::collections::{HashMap, VecDeque};

use crate::Topic;

/// One begun input (or output of no input), as the caller refers to it
/// when its outputs are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket {
    partition: i32,
    id: u64,
}

impl Ticket {
    /// The partition of the input.
    pub fn partition(self) -> i32 {
        self.partition
    }
}

/// An input offset that may be stored: every output it caused is
/// acknowledged, and so is everything before it in its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Storable {
    pub topic: Topic,
    pub partition: i32,
    pub offset: i64,
}

/// An output that was not delivered, of an input (or of no input) that has
/// not been abandoned: the caller must stop, so the input is redelivered (or
/// the partition restored) instead of being skipped by a later offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undelivered {
    pub partition: i32,
    /// The input whose output was lost; `None` for an output of no input.
    pub input: Option<(Topic, i64)>,
}

#[derive(Debug)]
struct Entry {
    id: u64,
    input: Option<(Topic, i64)>,
    /// Outputs queued and not yet acknowledged.
    unacked: usize,
    /// Waiting for the stage to finish it.
    parked: bool,
    /// Parked at shutdown: it will never finish.
    abandoned: bool,
}

impl Entry {
    fn done(&self) -> bool {
        self.unacked == 0 && !self.parked
    }
}

/// Takes the done entries off the front of `partition`'s `entries`, adds
/// the offsets of those that are inputs to `out`, and says how many it took.
fn take_done(partition: i32, entries: &mut VecDeque<Entry>, out: &mut Vec<Storable>) -> usize {
    let (mut i, mut taken) = (0, 0);
    while let Some(entry) = entries.get(i) {
        if !entry.done() {
            if entry.parked && stores_past_parked() {
                i += 1;
                continue;
            }
            break;
        }
        if let Some(entry) = entries.remove(i) {
            taken += 1;
            if let Some((topic, offset)) = entry.input {
                out.push(Storable {
                    topic,
                    partition,
                    offset,
                });
            }
        }
    }
    taken
}

#[cfg(test)]
thread_local! {
    static STORES_PAST_PARKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with a deliberate defect on this thread: offsets are stored past
/// a parked record (as if the loop skipped it). The simulation's tests show they
/// catch it.
#[cfg(test)]
pub(crate) fn with_stores_past_parked<T>(f: impl FnOnce() -> T) -> T {
    STORES_PAST_PARKED.with(|c| c.set(true));
    let out = f();
    STORES_PAST_PARKED.with(|c| c.set(false));
    out
}

/// Whether the defect is switched on (never, outside this crate's tests).
fn stores_past_parked() -> bool {
    #[cfg(test)]
    {
        STORES_PAST_PARKED.with(std::cell::Cell::get)
    }
    #[cfg(not(test))]
    {
        false
    }
}

/// The bookkeeping of one runner: per partition, what was begun, in order.
#[derive(Debug, Default)]
pub struct Progress {
    partitions: HashMap<i32, VecDeque<Entry>>,
    next_id: u64,
    begun: usize,
}

impl Progress {
    /// Begins `input` (topic and offset) of `partition`, or an output of no
    /// input when `None`.
    pub fn begin(&mut self, partition: i32, input: Option<(Topic, i64)>) -> Ticket {
        let id = self.next_id;
        self.next_id += 1;
        self.begun += 1;
        self.partitions
            .entry(partition)
            .or_default()
            .push_back(Entry {
                id,
                input,
                unacked: 0,
                parked: false,
                abandoned: false,
            });
        Ticket { partition, id }
    }

    /// `n` more outputs of `ticket` are queued; each must be
    /// [`acknowledged`](Self::acknowledged) before it is done.
    pub fn expect(&mut self, ticket: Ticket, n: usize) {
        if let Some(entry) = self.entry(ticket) {
            entry.unacked += n;
        }
    }

    /// The stage parked `ticket`: it is not done until
    /// [`finish_parked`](Self::finish_parked) hands it back.
    pub fn park(&mut self, ticket: Ticket) {
        if let Some(entry) = self.entry(ticket) {
            entry.parked = true;
        }
    }

    /// The stage finished a parked record of `partition`: stages finish
    /// them in the order they parked them, so this is the oldest one. Its
    /// outputs are then [`expect`](Self::expect)ed under the ticket
    /// returned. `None` if nothing of `partition` is parked.
    pub fn finish_parked(&mut self, partition: i32) -> Option<Ticket> {
        let entry = self
            .partitions
            .get_mut(&partition)?
            .iter_mut()
            .find(|e| e.parked && !e.abandoned)?;
        entry.parked = false;
        Some(Ticket {
            partition,
            id: entry.id,
        })
    }

    /// One output of `ticket` was acknowledged (`delivered`) or failed.
    /// A failure of anything not abandoned is the caller's to stop on.
    pub fn acknowledged(&mut self, ticket: Ticket, delivered: bool) -> Result<(), Undelivered> {
        let Some(entry) = self.entry(ticket) else {
            // Its partition was abandoned; the new owner redoes it.
            return Ok(());
        };
        entry.unacked = entry.unacked.saturating_sub(1);
        if delivered {
            Ok(())
        } else {
            Err(Undelivered {
                partition: ticket.partition,
                input: entry.input,
            })
        }
    }

    /// Offsets that may now be stored, oldest first per partition; each is
    /// handed out once.
    pub fn storable(&mut self) -> Vec<Storable> {
        let mut out = Vec::new();
        for (&partition, entries) in &mut self.partitions {
            self.begun -= take_done(partition, entries, &mut out);
        }
        out
    }

    /// [`storable`](Self::storable) for `partition` alone: all an
    /// acknowledgement of one of its outputs can make storable, without a
    /// look at every other partition.
    pub fn storable_in(&mut self, partition: i32) -> Vec<Storable> {
        let mut out = Vec::new();
        if let Some(entries) = self.partitions.get_mut(&partition) {
            self.begun -= take_done(partition, entries, &mut out);
        }
        out
    }

    /// Forgets everything begun for `partition` (it was revoked, or its
    /// state was dropped): none of it is stored, and acknowledgements of
    /// its outputs are ignored.
    pub fn abandon(&mut self, partition: i32) {
        if let Some(entries) = self.partitions.remove(&partition) {
            self.begun -= entries.len();
        }
    }

    /// Shutdown: parked records will never finish, so nothing from the
    /// first of them on is stored in its partition; what comes before it
    /// still is once acknowledged.
    pub fn abandon_parked(&mut self) {
        for entry in self.partitions.values_mut().flatten() {
            if entry.parked {
                entry.abandoned = true;
            }
        }
    }

    /// Begun and not yet handed out by [`storable`](Self::storable) (or
    /// abandoned): what the in-flight window counts.
    pub fn in_flight(&self) -> usize {
        self.begun
    }

    fn entry(&mut self, ticket: Ticket) -> Option<&mut Entry> {
        let entries = self.partitions.get_mut(&ticket.partition)?;
        let i = entries.binary_search_by_key(&ticket.id, |e| e.id).ok()?;
        entries.get_mut(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(p: &mut Progress) -> Vec<(Topic, i32, i64)> {
        let mut out: Vec<_> = p
            .storable()
            .into_iter()
            .map(|s| (s.topic, s.partition, s.offset))
            .collect();
        out.sort_by_key(|s| (s.1, s.2));
        out
    }

    fn input(p: &mut Progress, partition: i32, offset: i64, outputs: usize) -> Ticket {
        let t = p.begin(partition, Some((Topic::Intents, offset)));
        p.expect(t, outputs);
        t
    }

    #[test]
    fn offsets_are_stored_in_input_order_per_partition() {
        let mut p = Progress::default();
        let a = input(&mut p, 0, 10, 2);
        let b = input(&mut p, 0, 11, 1);
        let c = input(&mut p, 1, 5, 1);
        assert_eq!(p.in_flight(), 3);
        // The later input is acknowledged first: it waits for the earlier.
        p.acknowledged(b, true).unwrap();
        p.acknowledged(c, true).unwrap();
        assert_eq!(stored(&mut p), vec![(Topic::Intents, 1, 5)]);
        p.acknowledged(a, true).unwrap();
        assert_eq!(
            stored(&mut p),
            vec![],
            "one of a's two outputs is still out"
        );
        p.acknowledged(a, true).unwrap();
        assert_eq!(
            stored(&mut p),
            vec![(Topic::Intents, 0, 10), (Topic::Intents, 0, 11)]
        );
        assert_eq!(p.in_flight(), 0);
        assert_eq!(stored(&mut p), vec![], "each offset is handed out once");
    }

    #[test]
    fn one_partition_is_stored_without_handing_out_the_others() {
        let mut p = Progress::default();
        let a = input(&mut p, 0, 10, 1);
        let b = input(&mut p, 1, 20, 1);
        p.acknowledged(a, true).unwrap();
        p.acknowledged(b, true).unwrap();
        let only_0: Vec<_> = p
            .storable_in(0)
            .iter()
            .map(|s| (s.partition, s.offset))
            .collect();
        assert_eq!(only_0, vec![(0, 10)]);
        assert_eq!(p.in_flight(), 1);
        assert_eq!(stored(&mut p), vec![(Topic::Intents, 1, 20)]);
        assert!(p.storable_in(7).is_empty(), "a partition never begun");
    }

    #[test]
    fn an_input_without_outputs_is_done_at_once_and_outputs_of_no_input_store_nothing() {
        let mut p = Progress::default();
        let emitted = p.begin(0, None);
        p.expect(emitted, 1);
        input(&mut p, 0, 3, 0);
        assert_eq!(stored(&mut p), vec![]);
        p.acknowledged(emitted, true).unwrap();
        assert_eq!(stored(&mut p), vec![(Topic::Intents, 0, 3)]);
    }

    #[test]
    fn a_parked_input_holds_back_its_partition_until_finished() {
        let mut p = Progress::default();
        let parked = input(&mut p, 0, 1, 0);
        p.park(parked);
        let later = input(&mut p, 0, 2, 1);
        let other = input(&mut p, 1, 7, 0);
        p.acknowledged(later, true).unwrap();
        assert_eq!(stored(&mut p), vec![(Topic::Intents, 1, 7)]);
        assert_eq!(p.finish_parked(1), None, "nothing parked there");
        let finished = p.finish_parked(0).expect("the parked input");
        assert_eq!(finished, parked);
        p.expect(finished, 1);
        assert_eq!(stored(&mut p), vec![]);
        p.acknowledged(finished, true).unwrap();
        assert_eq!(
            stored(&mut p),
            vec![(Topic::Intents, 0, 1), (Topic::Intents, 0, 2)]
        );
        let _ = other;
    }

    #[test]
    fn parked_records_finish_oldest_first() {
        let mut p = Progress::default();
        let first = input(&mut p, 0, 1, 0);
        let second = input(&mut p, 0, 2, 0);
        p.park(first);
        p.park(second);
        assert_eq!(p.finish_parked(0), Some(first));
        assert_eq!(p.finish_parked(0), Some(second));
        assert_eq!(p.finish_parked(0), None);
    }

    #[test]
    fn an_abandoned_partition_stores_nothing_and_ignores_its_failures() {
        let mut p = Progress::default();
        let a = input(&mut p, 0, 1, 1);
        let b = input(&mut p, 0, 2, 1);
        p.abandon(0);
        assert_eq!(p.in_flight(), 0);
        assert_eq!(p.acknowledged(a, true), Ok(()));
        assert_eq!(p.acknowledged(b, false), Ok(()), "the new owner redoes it");
        assert_eq!(stored(&mut p), vec![]);
        // Taken back later: a fresh start, untouched by the old tickets.
        let c = input(&mut p, 0, 2, 1);
        assert_eq!(p.acknowledged(b, true), Ok(()));
        assert_eq!(stored(&mut p), vec![]);
        p.acknowledged(c, true).unwrap();
        assert_eq!(stored(&mut p), vec![(Topic::Intents, 0, 2)]);
    }

    #[test]
    fn a_lost_output_is_reported_with_its_input() {
        let mut p = Progress::default();
        let a = input(&mut p, 3, 9, 1);
        assert_eq!(
            p.acknowledged(a, false),
            Err(Undelivered {
                partition: 3,
                input: Some((Topic::Intents, 9))
            })
        );
        let emitted = p.begin(3, None);
        p.expect(emitted, 1);
        assert_eq!(
            p.acknowledged(emitted, false),
            Err(Undelivered {
                partition: 3,
                input: None
            })
        );
    }

    #[test]
    fn at_shutdown_what_precedes_a_parked_record_is_still_stored() {
        let mut p = Progress::default();
        let before = input(&mut p, 0, 1, 1);
        let parked = input(&mut p, 0, 2, 0);
        p.park(parked);
        let after = input(&mut p, 0, 3, 1);
        p.abandon_parked();
        assert_eq!(p.finish_parked(0), None, "abandoned records do not finish");
        p.acknowledged(before, true).unwrap();
        p.acknowledged(after, true).unwrap();
        assert_eq!(stored(&mut p), vec![(Topic::Intents, 0, 1)]);
    }
}
