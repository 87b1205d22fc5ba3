//! The partition side of the lease protocol, shared by the coupon stage
//! (campaign budget, credited to `commerce.decisions`) and the fulfillment
//! stage (SKU stock, credited to `commerce.orders`).
//!
//! A partition spends only what its own log says it holds, so the hot path
//! needs no broker round trip. This module keeps that allowance topped up:
//! it asks the treasury for the next lease *before* the allowance runs out,
//! credits each lease the treasury fold granted into the partition's log,
//! says when a resource is exhausted everywhere, and near the end hands back
//! what an idle partition does not use. Which leases exist is decided by the
//! treasury fold alone, so two instances with the same view (a restarted
//! one, a zombie) ask for and credit the same leases, which count once.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use schemas::{Record, TreasuryKind, TreasuryRecord};
use tokio::sync::Notify;

use crate::Emit;
use crate::Topic;
use ledger::{BUDGET, DecisionsFold, StockFold, TreasuryFold, lease_size};

/// A lease request not seen in the treasury this long is asked again.
pub const LEASE_RETRY_MS: i64 = 5_000;
/// Near a campaign's end, a partition that saw no demand for this long
/// returns its unused allowance.
pub const RETURN_IDLE_MS: i64 = 2_000;
/// While a return of ours is on its way to the treasury (the next stage
/// forwards it), requests that need the resource wait for it rather than
/// being refused, for at most this long.
pub const RETURN_LAND_MS: i64 = 30_000;

/// This process's view of `campaign.treasury`, folded as it is followed.
pub struct TreasuryView {
    fold: RwLock<TreasuryFold>,
    changed: Arc<Notify>,
}

impl TreasuryView {
    pub fn new(fold: TreasuryFold) -> Self {
        Self {
            fold: RwLock::new(fold),
            changed: Arc::new(Notify::new()),
        }
    }

    /// Folds records in (in log order) and wakes the stages that wait.
    pub fn apply<'a>(&self, records: impl IntoIterator<Item = &'a TreasuryRecord>) {
        let mut fold = self.fold.write().unwrap_or_else(PoisonError::into_inner);
        for record in records {
            fold.apply(record);
        }
        drop(fold);
        self.changed.notify_waiters();
        self.changed.notify_one();
    }

    /// The fold as of now.
    pub fn read(&self) -> RwLockReadGuard<'_, TreasuryFold> {
        self.fold.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Folds in every record `emits` writes to `campaign.treasury`, as if
    /// the treasury follower had read them (for stage tests).
    #[cfg(test)]
    pub(crate) fn deliver(&self, emits: &[Emit]) {
        let records: Vec<TreasuryRecord> = emits
            .iter()
            .filter(|e| e.topic == Topic::Treasury)
            .filter_map(|e| match &e.record {
                Record::Treasury(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        self.apply(&records);
    }

    /// Notified whenever new treasury records were folded.
    pub fn changed(&self) -> Arc<Notify> {
        Arc::clone(&self.changed)
    }
}

/// A partition fold that holds leased allowances: the decisions fold for
/// budget, the stock fold for stock.
pub trait Allowances {
    /// Whether a lease credit or return with this id was folded.
    fn has_movement(&self, id: &str) -> bool;
    /// Allowance of `resource` not spent yet.
    fn unused_of(&self, campaign_id: &str, resource: &str) -> i64;
    /// Folds a credit or return this partition is about to write.
    fn fold_movement(&mut self, record: &Record);
}

impl Allowances for DecisionsFold {
    fn has_movement(&self, id: &str) -> bool {
        DecisionsFold::has_movement(self, id)
    }

    fn unused_of(&self, campaign_id: &str, resource: &str) -> i64 {
        if resource == BUDGET {
            self.unused(campaign_id)
        } else {
            0
        }
    }

    fn fold_movement(&mut self, record: &Record) {
        self.apply(record);
    }
}

impl Allowances for StockFold {
    fn has_movement(&self, id: &str) -> bool {
        StockFold::has_movement(self, id)
    }

    fn unused_of(&self, campaign_id: &str, resource: &str) -> i64 {
        StockFold::unused_of(self, campaign_id, resource)
    }

    fn fold_movement(&mut self, record: &Record) {
        self.apply(record);
    }
}

/// `(campaign, resource)`.
type Key = (String, String);

/// One partition's lease bookkeeping, not restored: it is rebuilt from the
/// treasury fold and the partition's allowance, which are.
pub struct Leases {
    partition: i32,
    partitions: i32,
    /// The partition's own log, where credits and returns are written.
    topic: Topic,
    nonce: u64,
    /// Our lease request not yet folded by the treasury, and when it was made.
    pending: HashMap<Key, (String, i64)>,
    /// How many of this partition's treasury leases were checked.
    seen: HashMap<Key, usize>,
    /// When demand for the resource was last seen.
    last_demand_ms: HashMap<Key, i64>,
    /// Returns written here that the treasury has not folded yet, and when.
    /// Bounded: at most one per key at a time (a return is only written
    /// when one is not already on its way), forgotten once folded or after
    /// `RETURN_LAND_MS` (a return the log found invalid never arrives).
    returning: Vec<(Key, String, i64)>,
    next_id: u64,
}

/// One resource of one campaign (its budget, or a SKU's stock) as the
/// treasury fold shows it at `now_ms`: what every lease decision is about.
#[derive(Clone, Copy)]
pub struct ResourceAt<'a> {
    pub treasury: &'a TreasuryFold,
    pub campaign: &'a str,
    pub resource: &'a str,
    pub now_ms: i64,
}

impl<'a> ResourceAt<'a> {
    pub fn new(
        treasury: &'a TreasuryFold,
        campaign: &'a str,
        resource: &'a str,
        now_ms: i64,
    ) -> Self {
        Self {
            treasury,
            campaign,
            resource,
            now_ms,
        }
    }

    /// The treasury fold, campaign, resource and time, in that order.
    fn parts(self) -> (&'a TreasuryFold, &'a str, &'a str, i64) {
        (self.treasury, self.campaign, self.resource, self.now_ms)
    }
}

fn key(campaign: &str, resource: &str) -> Key {
    (campaign.to_owned(), resource.to_owned())
}

impl Leases {
    /// `nonce` makes this instance's return ids unique.
    pub fn new(partition: i32, partitions: i32, topic: Topic, nonce: u64) -> Self {
        Self {
            partition,
            partitions,
            topic,
            nonce,
            pending: HashMap::new(),
            seen: HashMap::new(),
            last_demand_ms: HashMap::new(),
            returning: Vec::new(),
            next_id: 0,
        }
    }

    fn movement(
        &self,
        id: String,
        kind: TreasuryKind,
        campaign: &str,
        resource: &str,
        amount: i64,
        now_ms: i64,
    ) -> TreasuryRecord {
        TreasuryRecord {
            request_id: id,
            user_id: String::new(),
            campaign_id: campaign.to_owned(),
            trace_id: String::new(),
            event_time_ms: now_ms,
            kind,
            resource: resource.to_owned(),
            partition: self.partition,
            amount,
        }
    }

    /// Notes demand for the resource: the partition is not idle.
    pub fn demand(&mut self, campaign: &str, resource: &str, now_ms: i64) {
        self.last_demand_ms.insert(key(campaign, resource), now_ms);
    }

    /// Credits every lease of the resource the treasury granted this
    /// partition that its log does not have yet, and forgets requests the
    /// treasury answered.
    pub fn credit(&mut self, fold: &mut impl Allowances, at: ResourceAt<'_>, out: &mut Vec<Emit>) {
        let (t, campaign, resource, now_ms) = at.parts();
        let Some(account) = t.resource(campaign, resource) else {
            return;
        };
        let k = key(campaign, resource);
        let leases = account.leases(self.partition);
        let seen = self.seen.get(&k).copied().unwrap_or(0);
        for (id, amount) in leases.iter().skip(seen) {
            if !fold.has_movement(id) {
                let credit = self.movement(
                    id.clone(),
                    TreasuryKind::LeaseCredit,
                    campaign,
                    resource,
                    *amount,
                    now_ms,
                );
                let record = Record::Treasury(credit);
                fold.fold_movement(&record);
                out.push(Emit::new(self.topic, record));
                // A lease was asked for because of demand here, which may
                // not have been redelivered yet: not idle.
                self.last_demand_ms.insert(k.clone(), now_ms);
            }
        }
        self.seen.insert(k.clone(), leases.len());
        if let Some((id, at)) = self.pending.get(&k)
            && (t.status(id).is_some() || now_ms - at > LEASE_RETRY_MS)
        {
            self.pending.remove(&k);
        }
    }

    /// Asks for the next lease of the resource when the allowance left is
    /// below half the lease the treasury would grant now, so it usually
    /// arrives before it is needed. `waiting`: a request is waiting for it,
    /// and needs this much of the resource (an order of many units may need
    /// more than half a lease).
    pub fn request(
        &mut self,
        fold: &impl Allowances,
        at: ResourceAt<'_>,
        waiting: Option<i64>,
        out: &mut Vec<Emit>,
    ) {
        let (t, campaign, resource, now_ms) = at.parts();
        let (force, need) = (waiting.is_some(), waiting.unwrap_or(0));
        let Some(account) = t.resource(campaign, resource) else {
            return;
        };
        let k = key(campaign, resource);
        let unit = account.unit;
        let next = lease_size(account.remaining(), self.partitions, unit);
        if next == 0 || self.pending.contains_key(&k) {
            return;
        }
        // In the one-unit tail a spare lease would sit unused in this
        // partition while others run dry, so leases are then only asked
        // for by a request that is waiting (`force`).
        let tail = next <= unit;
        let low = (next / 2).max(unit).max(if force { need } else { 0 });
        if (force || !tail) && fold.unused_of(campaign, resource) < low {
            // The id is the partition's next request number as the treasury
            // shows it, so instances with the same view (a restarted one, a
            // zombie) ask for the same lease and the treasury grants it once.
            let n = account.requests_by(self.partition) + 1;
            let id = if resource == BUDGET {
                format!("{campaign}/{}/lease/{n}", self.partition)
            } else {
                format!("{campaign}/{}/{resource}/lease/{n}", self.partition)
            };
            let request = self.movement(
                id.clone(),
                TreasuryKind::LeaseRequest,
                campaign,
                resource,
                0,
                now_ms,
            );
            self.pending.insert(k, (id, now_ms));
            out.push(Emit::new(Topic::Treasury, Record::Treasury(request)));
        }
    }

    /// Whether the resource is left nowhere this partition could get it
    /// from: the treasury has leased it all out, and no return from this
    /// partition is on its way back to the treasury.
    pub fn exhausted(&mut self, at: ResourceAt<'_>) -> bool {
        let (t, campaign, resource, now_ms) = at.parts();
        self.returning
            .retain(|(_, id, at)| !t.has_return(id) && now_ms - at < RETURN_LAND_MS);
        t.exhausted_of(campaign, resource)
            && !self
                .returning
                .iter()
                .any(|((c, r), _, _)| c == campaign && r == resource)
    }

    /// Hands back what the partition does not use, once it has been idle
    /// for `RETURN_IDLE_MS` and either `near_end` or the treasury has none
    /// of the resource left, so busier partitions can use it. The caller
    /// checks that nothing is waiting for the resource.
    pub fn give_back(
        &mut self,
        fold: &mut impl Allowances,
        at: ResourceAt<'_>,
        near_end: bool,
        out: &mut Vec<Emit>,
    ) {
        let (t, campaign, resource, now_ms) = at.parts();
        let unused = fold.unused_of(campaign, resource);
        // A partition just taken over counts as busy: it may hold requests
        // the broker has yet to redeliver.
        let k = key(campaign, resource);
        let last = *self.last_demand_ms.entry(k.clone()).or_insert(now_ms);
        let idle = now_ms - last >= RETURN_IDLE_MS;
        if unused > 0 && idle && (near_end || t.exhausted_of(campaign, resource)) {
            self.next_id += 1;
            let id = format!(
                "{campaign}/{}/{resource}/return/{now_ms}-{:x}-{}",
                self.partition, self.nonce, self.next_id
            );
            let record = Record::Treasury(self.movement(
                id.clone(),
                TreasuryKind::LeaseReturn,
                campaign,
                resource,
                unused,
                now_ms,
            ));
            fold.fold_movement(&record);
            self.returning.push((k, id, now_ms));
            out.push(Emit::new(self.topic, record));
        }
    }
}
