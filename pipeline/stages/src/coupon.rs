//! Coupon stage: `commerce.intents` and failed `commerce.orders` →
//! `commerce.decisions` and lease requests on `campaign.treasury`.
//!
//! Each partition grants from its own allowance, so the hot path needs no
//! broker round trip: the ledger's decisions fold says whether a grant
//! counts. Budget comes in leases: the stage asks the treasury for the next
//! lease *before* the allowance runs out, credits leases into its partition
//! as the treasury fold grants them, and parks (without blocking other
//! requests) only when a request needs credit that has not arrived yet.
//! Once the treasury fold shows the budget all leased out, requests that do
//! not fit are denied at once (a free-up-to credit first takes whatever is
//! left in the partition, so the budget's last cents are not stranded). Failed orders become releases; near a
//! campaign's end an idle partition returns what it does not use.

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;

use schemas::{
    CouponDecision, DecisionOutcome, IntentEvent, IntentOutcome, OrderEvent, OrderOutcome, Record,
};

pub use super::leases::TreasuryView;
use super::leases::{Leases, ResourceAt};
use crate::Topic;
use crate::{Collector, Emit, OwnOutput, Plan, Restore, Stage, StageId, StatePlan};
use ledger::campaign::{Campaigns, CreditRule, Offer};
use ledger::{self, BUDGET, DecisionsFold, ImageError, TreasuryFold, Verdict};
use schemas::reason::{BUDGET_EXHAUSTED, EXPIRED, is_expired};

/// One partition's coupon state.
pub struct CouponState {
    pub fold: DecisionsFold,
    /// Requests waiting for a lease, in arrival order.
    parked: VecDeque<IntentEvent>,
    parked_ids: HashSet<String>,
    /// The partition's side of the budget leases.
    leases: Leases,
}

impl CouponState {
    /// Requests waiting for a lease.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }
}

/// Grants or denies campaign credit.
pub struct CouponStage {
    campaigns: Arc<Campaigns>,
    treasury: Arc<TreasuryView>,
    return_before_end_ms: i64,
    partitions: i32,
    /// Makes this instance's lease and return ids unique.
    nonce: u64,
}

impl CouponStage {
    pub fn new(
        campaigns: Arc<Campaigns>,
        treasury: Arc<TreasuryView>,
        partitions: i32,
        return_before_end_ms: i64,
    ) -> Self {
        let nonce = std::collections::hash_map::RandomState::new().hash_one(partitions);
        Self::with_nonce(campaigns, treasury, partitions, return_before_end_ms, nonce)
    }

    /// As [`CouponStage::new`], with ids made unique by `nonce` (for a
    /// simulation that must be reproducible).
    pub fn with_nonce(
        campaigns: Arc<Campaigns>,
        treasury: Arc<TreasuryView>,
        partitions: i32,
        return_before_end_ms: i64,
        nonce: u64,
    ) -> Self {
        Self {
            campaigns,
            treasury,
            return_before_end_ms,
            partitions,
            nonce,
        }
    }

    /// Credits every budget lease the treasury granted this partition.
    fn credit_leases(
        &self,
        st: &mut CouponState,
        t: &TreasuryFold,
        now_ms: i64,
        out: &mut Vec<Emit>,
    ) {
        for campaign in self.campaigns.iter() {
            st.leases.credit(
                &mut st.fold,
                ResourceAt::new(t, &campaign.id, BUDGET, now_ms),
                out,
            );
        }
    }

    /// The decision for `intent`, or `None` when it must wait for a lease.
    fn decide(
        &self,
        st: &mut CouponState,
        t: &TreasuryFold,
        intent: &IntentEvent,
        now_ms: i64,
        out: &mut Vec<Emit>,
    ) -> Option<CouponDecision> {
        let offer = if is_expired(intent.deadline_ms, now_ms) {
            Offer::None(EXPIRED)
        } else {
            self.campaigns.offer(intent)
        };
        let (credit, reason) = match offer {
            Offer::None(reason) => (0, Some(reason)),
            Offer::Credit(credit) => {
                match st
                    .fold
                    .verdict(&intent.campaign_id, &intent.user_id, credit)
                {
                    Verdict::Grant => (credit, None),
                    Verdict::AlreadyUsed => (0, Some(schemas::reason::ALREADY_USED)),
                    Verdict::OverAllowance
                        if st.leases.exhausted(ResourceAt::new(
                            t,
                            &intent.campaign_id,
                            BUDGET,
                            now_ms,
                        )) =>
                    {
                        // The last of the budget: a free-up-to credit takes
                        // what is left rather than strand it.
                        let left = st.fold.unused(&intent.campaign_id);
                        let partial = matches!(
                            self.campaigns.get(&intent.campaign_id).map(|c| c.credit),
                            Some(CreditRule::FreeUpToCents(_))
                        );
                        if partial && left > 0 {
                            (left, None)
                        } else {
                            (0, Some(BUDGET_EXHAUSTED))
                        }
                    }
                    Verdict::OverAllowance => {
                        let c = &intent.campaign_id;
                        st.leases.request(
                            &st.fold,
                            ResourceAt::new(t, c, BUDGET, now_ms),
                            Some(credit),
                            out,
                        );
                        return None;
                    }
                }
            }
        };
        let decision = decision(intent, credit, reason, now_ms);
        st.fold.apply_decision(&decision);
        if credit > 0 {
            let c = &intent.campaign_id;
            st.leases
                .request(&st.fold, ResourceAt::new(t, c, BUDGET, now_ms), None, out);
        }
        Some(decision)
    }

    fn on_intent(
        &self,
        st: &mut CouponState,
        intent: IntentEvent,
        now_ms: i64,
        out: &mut Collector,
    ) {
        if intent.outcome != IntentOutcome::Extracted || st.fold.is_decided(&intent.request_id) {
            return;
        }
        if st.parked_ids.contains(&intent.request_id) {
            // A repeat of a waiting request finishes with it, so its offset
            // is not stored before the original is decided.
            st.parked.push_back(intent);
            out.park();
            return;
        }
        st.leases.demand(&intent.campaign_id, BUDGET, now_ms);
        let treasury = Arc::clone(&self.treasury);
        let t = treasury.read();
        let mut emits = Vec::new();
        self.credit_leases(st, &t, now_ms, &mut emits);
        // Requests that may need credit wait behind those already waiting,
        // so a partition grants in arrival order.
        let queue = !st.parked.is_empty()
            && !is_expired(intent.deadline_ms, now_ms)
            && matches!(self.campaigns.offer(&intent), Offer::Credit(_));
        let decided = if queue {
            None
        } else {
            self.decide(st, &t, &intent, now_ms, &mut emits)
        };
        out.extend(emits);
        if let Some(d) = decided {
            out.emit(Topic::Decisions, Record::Decision(d));
            return;
        }
        st.parked_ids.insert(intent.request_id.clone());
        st.parked.push_back(intent);
        out.park();
    }

    fn on_order(&self, st: &mut CouponState, order: OrderEvent, now_ms: i64, out: &mut Collector) {
        if order.outcome != OrderOutcome::Failed {
            return;
        }
        // Fulfillment orders only valid grants, so a failed order with
        // credit has one to release, even if this state (say, restored
        // before the grant was acknowledged) does not know it yet: the log's
        // fold, not this state, decides whether the release counts.
        if order.credit_cents <= 0 || st.fold.grant(&order.request_id).is_some_and(|g| g.released) {
            return;
        }
        let release = CouponDecision {
            reply_partition: order.reply_partition,
            deadline_ms: None,
            request_id: order.request_id,
            session_id: order.session_id,
            user_id: order.user_id,
            campaign_id: order.campaign_id,
            trace_id: order.trace_id,
            event_time_ms: now_ms,
            prompt_time_ms: order.prompt_time_ms,
            locale: order.locale,
            outcome: DecisionOutcome::Released,
            items: order.items,
            total_cents: order.total_cents,
            credit_cents: order.credit_cents,
            reason: order.reason,
        };
        st.fold.apply_decision(&release);
        out.emit(Topic::Decisions, Record::Decision(release));
    }

    /// Hands back what an idle partition does not use, near a campaign's end
    /// or once the treasury has nothing left, so busier partitions can use it.
    fn return_unused(
        &self,
        st: &mut CouponState,
        t: &TreasuryFold,
        now_ms: i64,
        out: &mut Vec<Emit>,
    ) {
        if !st.parked.is_empty() {
            return;
        }
        for campaign in self.campaigns.iter() {
            let near_end = now_ms >= campaign.ends_ms.saturating_sub(self.return_before_end_ms);
            // Even after the end, requests sent before it may still be on
            // their way (a backlog), so returns wait for the partition to
            // be idle.
            let c = &campaign.id;
            st.leases.give_back(
                &mut st.fold,
                ResourceAt::new(t, c, BUDGET, now_ms),
                near_end,
                out,
            );
        }
    }
}

/// A decision record for `intent`.
fn decision(
    intent: &IntentEvent,
    credit: i64,
    reason: Option<&str>,
    now_ms: i64,
) -> CouponDecision {
    CouponDecision {
        reply_partition: intent.reply_partition,
        deadline_ms: intent.deadline_ms,
        request_id: intent.request_id.clone(),
        session_id: intent.session_id.clone(),
        user_id: intent.user_id.clone(),
        campaign_id: intent.campaign_id.clone(),
        trace_id: intent.trace_id.clone(),
        event_time_ms: now_ms,
        prompt_time_ms: intent.prompt_time_ms,
        locale: intent.locale.clone(),
        outcome: if reason.is_none() {
            DecisionOutcome::Granted
        } else {
            DecisionOutcome::Denied
        },
        items: intent.items.clone(),
        total_cents: intent.total_cents,
        credit_cents: credit,
        reason: reason.map(str::to_owned),
    }
}

impl Stage for CouponStage {
    type State = CouponState;

    fn plan(&self) -> Plan {
        Plan {
            id: StageId::Coupon,
            inputs: &[Topic::Intents, Topic::Orders],
            state: StatePlan {
                own_output: Some(OwnOutput {
                    topic: Topic::Decisions,
                    window: None,
                    checkpoints: true,
                }),
                replay: &[],
            },
            wakeup: Some(self.treasury.changed()),
        }
    }

    fn new_state(&self, partition: i32) -> CouponState {
        CouponState {
            fold: DecisionsFold::new(Arc::clone(&self.campaigns)),
            parked: VecDeque::new(),
            parked_ids: HashSet::new(),
            leases: Leases::new(partition, self.partitions, Topic::Decisions, self.nonce),
        }
    }

    fn restore(&self, st: &mut CouponState, from: Restore<'_>) -> Result<(), ImageError> {
        match from {
            Restore::Output(record) => {
                st.fold.apply(record);
            }
            Restore::OutputImage(image) => {
                st.fold = DecisionsFold::from_image(Arc::clone(&self.campaigns), image)?;
            }
            Restore::Input(_) | Restore::InputImage(_) => {}
        }
        Ok(())
    }

    fn image(&self, st: &CouponState) -> Option<Vec<u8>> {
        Some(st.fold.image())
    }

    fn handle(&self, st: &mut CouponState, record: Record, now_ms: i64, out: &mut Collector) {
        match record {
            Record::Intent(intent) => self.on_intent(st, intent, now_ms, out),
            Record::Order(order) => self.on_order(st, order, now_ms, out),
            _ => {}
        }
    }

    fn poll(&self, st: &mut CouponState, now_ms: i64, out: &mut Collector) {
        let treasury = Arc::clone(&self.treasury);
        let t = treasury.read();
        let mut emits = Vec::new();
        self.credit_leases(st, &t, now_ms, &mut emits);
        out.extend(emits.drain(..));
        while let Some(intent) = st.parked.front() {
            if st.fold.is_decided(&intent.request_id) {
                st.parked.pop_front();
                out.finish_parked([]);
                continue;
            }
            let intent = intent.clone();
            let Some(d) = self.decide(st, &t, &intent, now_ms, &mut emits) else {
                out.extend(emits.drain(..));
                break;
            };
            st.parked.pop_front();
            st.parked_ids.remove(&intent.request_id);
            emits.push(Emit::new(Topic::Decisions, Record::Decision(d)));
            out.finish_parked(emits.drain(..));
        }
        self.return_unused(st, &t, now_ms, &mut emits);
        out.extend(emits);
    }
}

#[cfg(test)]
#[path = "coupon_tests.rs"]
mod tests;
