//! Where a stage writes what it outputs ([`Collector`]), and the one
//! output type ([`Emit`]).
//!
//! [`Stage::handle`](crate::Stage::handle) writes the outputs of one input
//! record, or parks the record; [`Stage::poll`](crate::Stage::poll) writes
//! outputs of no input and finishes parked records. The runner produces
//! everything in the order it was written, which is the order the stage's
//! state already reflects, and reuses one collector for every call.

use std::ops::Range;

use schemas::Record;

use crate::topic::Topic;

/// One output of a stage: a record for a topic. It goes to the same
/// partition as the input that caused it (partition 0 for the treasury).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emit {
    pub topic: Topic,
    pub record: Record,
    /// The partition to write to, when not the one the runner picks (the
    /// input's, or 0 for the treasury): a gateway's reply partition.
    pub partition: Option<i32>,
}

impl Emit {
    pub fn new(topic: Topic, record: Record) -> Self {
        Self {
            topic,
            record,
            partition: None,
        }
    }

    /// An output for partition `partition` of `topic`.
    pub fn to_partition(topic: Topic, partition: i32, record: Record) -> Self {
        Self {
            topic,
            record,
            partition: Some(partition),
        }
    }
}

/// The outputs of one [`Stage::handle`](crate::Stage::handle) or
/// [`Stage::poll`](crate::Stage::poll) call.
#[derive(Debug, Default)]
pub struct Collector {
    /// Every output, in the order it is to be produced.
    emits: Vec<Emit>,
    /// The parked records finished (by `poll`), oldest first: each the
    /// range of `emits` that are its outputs (possibly empty).
    finished: Vec<Range<usize>>,
    /// `handle` parked its record.
    parked: bool,
}

/// A run of outputs that belong together, in production order
/// ([`Collector::batches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch<'a> {
    /// A record of the call itself: in `handle`, an output of the input;
    /// in `poll`, an output of no input.
    Own(&'a Emit),
    /// The outputs of the oldest parked record still unfinished.
    Finished(&'a [Emit]),
}

impl Collector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Outputs `record` to `topic`.
    pub fn emit(&mut self, topic: Topic, record: Record) {
        self.emits.push(Emit::new(topic, record));
    }

    /// Outputs each of `emits`, in order.
    pub fn extend(&mut self, emits: impl IntoIterator<Item = Emit>) {
        self.emits.extend(emits);
    }

    /// In `handle`: the record is not finished. Its outputs come from a
    /// later `poll` ([`Collector::finish_parked`]), and its offset is not
    /// stored until they are acknowledged. What `handle` emitted besides
    /// (say, a lease request) is still produced now.
    pub fn park(&mut self) {
        self.parked = true;
    }

    /// In `poll`: the oldest parked record still unfinished is done, and
    /// `emits` (possibly none) are its outputs.
    pub fn finish_parked(&mut self, emits: impl IntoIterator<Item = Emit>) {
        let start = self.emits.len();
        self.emits.extend(emits);
        self.finished.push(start..self.emits.len());
    }

    /// Whether `handle` parked its record.
    pub fn is_parked(&self) -> bool {
        self.parked
    }

    /// How many parked records `poll` finished.
    pub fn finished_count(&self) -> usize {
        self.finished.len()
    }

    /// Every output, in order, whatever it belongs to.
    pub fn emits(&self) -> &[Emit] {
        &self.emits
    }

    /// Every output, in order, whatever it belongs to.
    pub fn into_emits(self) -> Vec<Emit> {
        self.emits
    }

    /// Nothing emitted, parked or finished.
    pub fn is_empty(&self) -> bool {
        self.emits.is_empty() && self.finished.is_empty() && !self.parked
    }

    /// The outputs grouped by what they belong to, in production order.
    pub fn batches(&self) -> impl Iterator<Item = Batch<'_>> {
        let mut at = 0;
        let mut finished = self.finished.iter().peekable();
        std::iter::from_fn(move || {
            if let Some(range) = finished.next_if(|r| r.start == at) {
                at = range.end;
                return Some(Batch::Finished(&self.emits[range.clone()]));
            }
            let emit = self.emits.get(at)?;
            at += 1;
            Some(Batch::Own(emit))
        })
    }

    /// Forgets everything, keeping the allocation for the next call.
    pub fn clear(&mut self) {
        self.emits.clear();
        self.finished.clear();
        self.parked = false;
    }

    /// The outputs of no input, and the outputs of each parked record
    /// finished (for stage tests).
    #[cfg(test)]
    pub(crate) fn split(&self) -> (Vec<Emit>, Vec<Vec<Emit>>) {
        let (mut own, mut finished) = (vec![], vec![]);
        for batch in self.batches() {
            match batch {
                Batch::Own(e) => own.push(e.clone()),
                Batch::Finished(f) => finished.push(f.to_vec()),
            }
        }
        (own, finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::{TreasuryKind, TreasuryRecord};

    fn emit(n: i64) -> Emit {
        let record = TreasuryRecord {
            request_id: format!("return-{n}"),
            user_id: String::new(),
            campaign_id: "c".into(),
            trace_id: String::new(),
            event_time_ms: 0,
            kind: TreasuryKind::LeaseReturn,
            resource: "budget".into(),
            partition: 0,
            amount: n,
        };
        Emit::new(Topic::Treasury, Record::Treasury(record))
    }

    #[test]
    fn batches_keep_the_order_outputs_were_written_in() {
        let mut out = Collector::new();
        assert!(out.is_empty());
        out.finish_parked([]);
        out.extend([emit(1)]);
        out.finish_parked([emit(2), emit(3)]);
        out.finish_parked([]);
        out.extend([emit(4), emit(5)]);
        let batches: Vec<Batch<'_>> = out.batches().collect();
        let es = out.emits();
        assert_eq!(
            batches,
            vec![
                Batch::Finished(&[]),
                Batch::Own(&es[0]),
                Batch::Finished(&es[1..3]),
                Batch::Finished(&[]),
                Batch::Own(&es[3]),
                Batch::Own(&es[4]),
            ]
        );
        assert_eq!(out.finished_count(), 3);
        assert!(!out.is_parked());
        out.clear();
        assert!(out.is_empty() && out.batches().next().is_none());
        out.park();
        assert!(out.is_parked() && !out.is_empty());
    }
}
