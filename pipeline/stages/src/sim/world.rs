//! The simulated world: logs, coupon instances, a fault schedule, and the
//! drain and audit at the end of a run.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use schemas::{IntentEvent, IntentOutcome, Item, OrderOutcome, Prompt, Record, TreasuryRecord};

use crate::Topic;
use crate::coupon::{CouponState, TreasuryView};
use crate::fulfillment::FulfillmentState;
use crate::progress::{Progress, Ticket};
use crate::reply::Templates;
use crate::stage::Calls;
use crate::{Batch, Emit, Restore, Stage};
use crate::{CouponStage, FulfillmentStage, ReplyStage};
use extract::catalog::Catalog;
use ledger::TreasuryFold;
use ledger::audit::{self, AuditReport, Logs};
use ledger::campaign::{CampaignConfig, Campaigns, CreditRule};

const START_MS: i64 = 1_800_000_000_000;
const INTENTS: usize = 0;
const ORDERS: usize = 1;
/// The coupon stage's input topics, by the index the logs use.
const TOPICS: [Topic; 2] = [Topic::Intents, Topic::Orders];

/// The shape of one simulated run, drawn from its seed.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub partitions: i32,
    pub instances: usize,
    pub users: usize,
    pub requests: usize,
    pub unit: i64,
    pub credits: i64,
    pub fixed: bool,
    pub per_user_limit: u32,
    /// Whether the campaign ends while requests still arrive.
    pub ends: bool,
    /// Percent of orders that fail (and so release their credit).
    pub fail_percent: u32,
    /// Fault-injection steps before the drain.
    pub steps: usize,
    /// Whether a rebalance may leave a zombie. Zombies cannot break the
    /// budget, but a zombie's stale denials can cost utilisation, so runs
    /// with zombies are not held to the utilisation check.
    pub zombies: bool,
    /// Percent of requests with a deadline short enough to pass while they
    /// wait (for a lease, stock, or a crashed stage's successor). A lease
    /// that arrives for a request that has expired stays in its partition
    /// until the partition's idle return, and in a budget of a few credits
    /// that is more than the utilisation check's slack of one credit, so
    /// runs with deadlines are not held to that check either.
    pub deadline_percent: u32,
}

impl SimConfig {
    pub fn from_seed(rng: &mut fastrand::Rng) -> Self {
        let requests = rng.usize(60..400);
        let users = rng.usize(requests / 4..=requests);
        Self {
            partitions: rng.i32(1..=8),
            instances: rng.usize(1..=3),
            users,
            requests,
            unit: 100,
            credits: rng.i64(1..=(users as i64 / 2).max(2)),
            fixed: rng.bool(),
            per_user_limit: rng.u32(1..=2),
            ends: rng.u32(0..4) == 0,
            fail_percent: rng.u32(0..20),
            steps: rng.usize(200..1_500),
            zombies: rng.bool(),
            deadline_percent: if rng.bool() { 0 } else { rng.u32(1..=25) },
        }
    }
}

/// An instance's hold on a partition (as owner, or as a zombie).
struct Held {
    /// Tells this hold from an earlier or later one of the same partition.
    id: u64,
    state: CouponState,
    next: [usize; 2],
    /// The runner's bookkeeping: which offsets may be stored.
    progress: Progress,
    stored: [usize; 2],
}

/// An output on its way to the broker: which hold's input caused it.
struct Outgoing {
    partition: i32,
    emit: Emit,
    held: u64,
    ticket: Ticket,
}

impl Held {
    /// Moves the stored offsets past every input that is done, as the
    /// runner does.
    fn store(&mut self) {
        for done in self.progress.storable() {
            let topic = TOPICS
                .iter()
                .position(|t| *t == done.topic)
                .expect("a coupon input topic");
            self.stored[topic] = usize::try_from(done.offset).unwrap_or(0) + 1;
        }
    }
}

/// Folds a record of the coupon stage's own output into `state`, as a
/// restore does.
fn fold(stage: &CouponStage, state: &mut CouponState, record: &Record) {
    stage
        .restore(state, Restore::Output(record))
        .expect("a record always folds");
}

/// Queues `emits`, outputs of `ticket` in hold `h`, for the broker.
fn send(outbox: &mut VecDeque<Outgoing>, h: &mut Held, ticket: Ticket, emits: &[Emit]) {
    h.progress.expect(ticket, emits.len());
    outbox.extend(emits.iter().cloned().map(|emit| Outgoing {
        partition: ticket.partition(),
        emit,
        held: h.id,
        ticket,
    }));
}

struct Instance {
    stage: CouponStage,
    treasury: Arc<TreasuryView>,
    /// Treasury records folded into this instance's view.
    seen: usize,
    alive: bool,
    owned: BTreeMap<i32, Held>,
    zombies: BTreeMap<i32, Held>,
    /// Produced, not yet acknowledged, oldest first.
    outbox: VecDeque<Outgoing>,
}

struct World {
    rng: fastrand::Rng,
    cfg: SimConfig,
    campaigns: Arc<Campaigns>,
    now: i64,
    logs: [Vec<Vec<Record>>; 2],
    decisions: Vec<Vec<Record>>,
    treasury: Vec<TreasuryRecord>,
    committed: Vec<[usize; 2]>,
    owner: Vec<Option<usize>>,
    instances: Vec<Instance>,
    fulfillment: FulfillmentStage,
    fulfilled: Vec<(FulfillmentState, usize)>,
    made: usize,
    /// The next [`Held::id`].
    holds: u64,
    /// Restores through a checkpoint whose state differed from folding the
    /// whole log: `(partition, cut, log length)`.
    bad_restores: Vec<(i32, usize, usize)>,
}

/// The logs of seed `seed`'s run after it drained, the campaigns it ran and
/// its partition count (for the auditor's own tests).
pub fn logs(seed: u64) -> (Logs, Campaigns, i32) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let cfg = SimConfig::from_seed(&mut rng);
    let mut w = World::new(rng, cfg.clone());
    for _ in 0..cfg.steps {
        w.step();
    }
    assert!(w.drain().is_ok(), "seed {seed} drains");
    (w.logs(), (*w.campaigns).clone(), cfg.partitions)
}

/// Runs seed `seed`; returns the audit report and the run's shape.
pub fn run(seed: u64) -> (AuditReport, SimConfig) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let cfg = SimConfig::from_seed(&mut rng);
    let mut w = World::new(rng, cfg.clone());
    for _ in 0..cfg.steps {
        w.step();
    }
    let report = match w.drain() {
        Ok(()) => w.audit(),
        Err(stuck) => AuditReport {
            checks: vec![audit::Check {
                name: "drains",
                ok: false,
                detail: stuck,
            }],
            ..AuditReport::default()
        },
    };
    (report, cfg)
}

fn rfc3339(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}

impl World {
    fn new(rng: fastrand::Rng, cfg: SimConfig) -> Self {
        let ends_ms = START_MS + 20 * cfg.steps as i64;
        let campaign = CampaignConfig {
            id: "sim".into(),
            budget_cents: cfg.credits * cfg.unit,
            credit: if cfg.fixed {
                CreditRule::FixedCents(cfg.unit)
            } else {
                CreditRule::FreeUpToCents(cfg.unit)
            },
            per_user_limit: cfg.per_user_limit,
            starts_at: None,
            ends_at: cfg.ends.then(|| rfc3339(ends_ms)),
            eligible_skus: Default::default(),
            stock: Default::default(),
        };
        let campaigns = Arc::new(Campaigns::new(&[campaign]).expect("a valid campaign"));
        let n = usize::try_from(cfg.partitions).unwrap_or(1);
        let mut w = Self {
            rng,
            campaigns: Arc::clone(&campaigns),
            now: START_MS,
            logs: [vec![Vec::new(); n], vec![Vec::new(); n]],
            decisions: vec![Vec::new(); n],
            treasury: Vec::new(),
            committed: vec![[0, 0]; n],
            owner: vec![None; n],
            instances: Vec::new(),
            fulfillment: FulfillmentStage::new(
                Arc::clone(&campaigns),
                Catalog::built_in(),
                Arc::new(TreasuryView::new(TreasuryFold::new(
                    Arc::clone(&campaigns),
                    cfg.partitions,
                ))),
                cfg.partitions,
                // Failed orders are the simulation's own choice.
                i64::MAX,
            ),
            fulfilled: Vec::new(),
            made: 0,
            holds: 0,
            bad_restores: Vec::new(),
            cfg,
        };
        w.fulfilled = (0..w.cfg.partitions)
            .map(|p| (w.fulfillment.new_state(p), 0))
            .collect();
        for i in 0..w.cfg.instances {
            let instance = w.instance(i as u64);
            w.instances.push(instance);
        }
        for p in 0..w.cfg.partitions {
            let i = w.rng.usize(0..w.instances.len());
            w.assign(p, i);
        }
        w
    }

    fn instance(&self, nonce: u64) -> Instance {
        let fold = TreasuryFold::new(Arc::clone(&self.campaigns), self.cfg.partitions);
        let treasury = Arc::new(TreasuryView::new(fold));
        Instance {
            stage: CouponStage::with_nonce(
                Arc::clone(&self.campaigns),
                Arc::clone(&treasury),
                self.cfg.partitions,
                2_000,
                nonce,
            ),
            treasury,
            seen: 0,
            alive: true,
            owned: BTreeMap::new(),
            zombies: BTreeMap::new(),
            outbox: VecDeque::new(),
        }
    }

    /// Gives partition `p` to instance `i`, restored from the log: usually
    /// from a checkpoint (a reader's fold of a random prefix, through its
    /// image) and the records after it, as the runner restores.
    fn assign(&mut self, p: i32, i: usize) {
        let log = &self.decisions[p as usize];
        let mut cut = if self.rng.bool() {
            self.rng.usize(0..=log.len())
        } else {
            0
        };
        let inst = &mut self.instances[i];
        let mut state = inst.stage.new_state(p);
        if cut > 0 {
            let mut reader = inst.stage.new_state(p);
            for record in &log[..cut] {
                fold(&inst.stage, &mut reader, record);
            }
            let image = inst
                .stage
                .image(&reader)
                .expect("the coupon stage has images");
            if inst
                .stage
                .restore(&mut state, Restore::OutputImage(&image))
                .is_err()
            {
                // As the runner does: restore from the first record.
                state = inst.stage.new_state(p);
                cut = 0;
            }
        }
        for record in &log[cut..] {
            fold(&inst.stage, &mut state, record);
        }
        if cut > 0 {
            let mut whole = inst.stage.new_state(p);
            for record in log {
                fold(&inst.stage, &mut whole, record);
            }
            let same =
                ledger::without_fault(|| inst.stage.image(&whole) == inst.stage.image(&state));
            if !same {
                self.bad_restores.push((p, cut, log.len()));
            }
        }
        let at = self.committed[p as usize];
        self.holds += 1;
        inst.owned.insert(
            p,
            Held {
                id: self.holds,
                state,
                next: at,
                progress: Progress::default(),
                stored: at,
            },
        );
        self.owner[p as usize] = Some(i);
    }

    /// Publishes the next request (sometimes twice, as a retrying
    /// front-end would).
    fn publish(&mut self) {
        if self.made >= self.cfg.requests {
            return;
        }
        let user = self.rng.usize(0..self.cfg.users);
        let p = (user % self.cfg.partitions as usize) as i32;
        let price = self.rng.i64(50..300);
        // Some requests carry a deadline short enough to pass while they
        // wait for a lease, a stock lease or a crashed stage's successor.
        let deadline_ms = (self.rng.u32(0..100) < self.cfg.deadline_percent)
            .then(|| self.now + self.rng.i64(0..5_000));
        let intent = IntentEvent {
            reply_partition: None,
            deadline_ms,
            request_id: format!("r{}", self.made),
            session_id: String::new(),
            user_id: format!("u{user}"),
            campaign_id: "sim".into(),
            trace_id: String::new(),
            event_time_ms: self.now,
            prompt_time_ms: self.now,
            locale: "en".into(),
            outcome: if self.rng.u32(0..20) == 0 {
                IntentOutcome::Rejected
            } else {
                IntentOutcome::Extracted
            },
            items: vec![Item {
                sku: "latte".into(),
                quantity: 1,
                options: Default::default(),
                unit_price_cents: price,
            }],
            coupon_code: None,
            total_cents: price,
            reason: None,
        };
        self.made += 1;
        let log = &mut self.logs[INTENTS][p as usize];
        if self.rng.u32(0..30) == 0 {
            log.push(Record::Intent(intent.clone()));
        }
        log.push(Record::Intent(intent));
    }

    /// One random step of the schedule.
    fn step(&mut self) {
        self.now += self.rng.i64(0..40);
        let i = self.rng.usize(0..self.instances.len());
        let n = self.rng.usize(1..8);
        match self.rng.u32(0..100) {
            0..=24 => self.publish(),
            25..=44 => self.handle(i),
            45..=54 => self.deliver(i, n),
            55..=61 => self.poll(i),
            62..=69 => self.sync(i, n / 2 + 1),
            70..=77 => self.fulfil(n),
            78..=83 => self.store_and_commit(i),
            84..=86 => self.rebalance(),
            87 => self.crash(i),
            88..=89 => self.restart(i),
            90 => self.end_zombies(i),
            91 => self.rewind(i),
            _ => self.now += self.rng.i64(500..3_000),
        }
    }

    /// An instance handles the next input of one of its partitions.
    fn handle(&mut self, i: usize) {
        let inst = &mut self.instances[i];
        if !inst.alive {
            return;
        }
        let zombie = !inst.zombies.is_empty() && self.rng.bool();
        let held = if zombie {
            &mut inst.zombies
        } else {
            &mut inst.owned
        };
        let keys: Vec<i32> = held.keys().copied().collect();
        if keys.is_empty() {
            return;
        }
        let p = keys[self.rng.usize(0..keys.len())];
        let topic = self.rng.usize(0..2);
        self.handle_at(i, zombie, p, topic);
    }

    /// An instance polls its partitions: lease credits, parked requests,
    /// returns.
    fn poll(&mut self, i: usize) {
        let inst = &mut self.instances[i];
        if !inst.alive {
            return;
        }
        for held in [&mut inst.owned, &mut inst.zombies] {
            for (&p, h) in held.iter_mut() {
                let out = inst.stage.polled(&mut h.state, self.now);
                for batch in out.batches() {
                    let (ticket, emits) = match batch {
                        Batch::Own(e) => (h.progress.begin(p, None), std::slice::from_ref(e)),
                        Batch::Finished(emits) => {
                            let ticket = h
                                .progress
                                .finish_parked(p)
                                .expect("the stage finishes only records it parked");
                            (ticket, emits)
                        }
                    };
                    send(&mut inst.outbox, h, ticket, emits);
                }
            }
        }
    }

    /// The broker acknowledges (writes) the oldest `n` outputs of an instance.
    fn deliver(&mut self, i: usize, n: usize) {
        for _ in 0..n {
            let inst = &mut self.instances[i];
            let Some(Outgoing {
                partition: p,
                emit,
                held,
                ticket,
            }) = inst.outbox.pop_front()
            else {
                return;
            };
            let hold = inst
                .owned
                .values_mut()
                .chain(inst.zombies.values_mut())
                .find(|h| h.id == held);
            if let Some(h) = hold {
                // Nothing is lost before the broker acknowledges it here.
                let _ = h.progress.acknowledged(ticket, true);
            }
            match (emit.topic, emit.record) {
                (Topic::Treasury, Record::Treasury(t)) => self.treasury.push(t),
                (Topic::Decisions, record) => self.decisions[p as usize].push(record),
                (topic, record) => panic!("the coupon stage wrote {record:?} to {topic:?}"),
            }
        }
    }

    /// An instance's view of the treasury catches up by `n` records.
    fn sync(&mut self, i: usize, n: usize) {
        let inst = &mut self.instances[i];
        let end = (inst.seen + n).min(self.treasury.len());
        inst.treasury.apply(&self.treasury[inst.seen..end]);
        inst.seen = end;
    }

    /// Fulfillment (a faultless reader of the decisions log) handles up to
    /// `n` records: orders for valid grants, some of which fail, and
    /// returns forwarded to the treasury.
    fn fulfil(&mut self, n: usize) {
        for _ in 0..n {
            let p = self.rng.usize(0..self.decisions.len());
            let (state, next) = &mut self.fulfilled[p];
            let Some(record) = self.decisions[p].get(*next).cloned() else {
                continue;
            };
            *next += 1;
            for emit in self
                .fulfillment
                .handled(state, record, self.now)
                .into_emits()
            {
                match emit.record {
                    Record::Order(mut order) => {
                        if self.rng.u32(0..100) < self.cfg.fail_percent {
                            order.outcome = OrderOutcome::Failed;
                            order.reason = Some(schemas::reason::OUT_OF_STOCK.into());
                        }
                        self.logs[ORDERS][p].push(Record::Order(order));
                    }
                    Record::Treasury(t) => self.treasury.push(t),
                    other => panic!("fulfillment wrote {other:?}"),
                }
            }
        }
    }

    /// Stores the offsets of finished, acknowledged inputs; sometimes the
    /// auto-commit then commits them.
    fn store_and_commit(&mut self, i: usize) {
        let inst = &mut self.instances[i];
        if !inst.alive {
            return;
        }
        for (p, h) in inst.owned.iter_mut() {
            h.store();
            if self.rng.bool() && self.owner[*p as usize] == Some(i) {
                self.committed[*p as usize] = h.stored;
            }
        }
    }

    /// A partition moves to another instance: cleanly (the old owner
    /// flushes, stores and commits first) or not (it becomes a zombie that
    /// keeps writing).
    fn rebalance(&mut self) {
        let p = self.rng.i32(0..self.cfg.partitions);
        let alive: Vec<usize> = (0..self.instances.len())
            .filter(|i| self.instances[*i].alive)
            .collect();
        if alive.is_empty() {
            return;
        }
        let to = alive[self.rng.usize(0..alive.len())];
        if let Some(from) = self.owner[p as usize] {
            if self.cfg.zombies && self.rng.u32(0..3) == 0 {
                if let Some(h) = self.instances[from].owned.remove(&p) {
                    self.instances[from].zombies.insert(p, h);
                }
            } else {
                let n = self.instances[from].outbox.len();
                self.deliver(from, n);
                self.store_and_commit_partition(from, p);
                self.instances[from].owned.remove(&p);
            }
        }
        self.assign(p, to);
    }

    fn store_and_commit_partition(&mut self, i: usize, p: i32) {
        if let Some(h) = self.instances[i].owned.get_mut(&p) {
            h.store();
            self.committed[p as usize] = h.stored;
        }
    }

    /// An instance dies: some of its outbox made it to the broker, the rest
    /// is lost; its partitions go to the others.
    fn crash(&mut self, i: usize) {
        if !self.instances[i].alive {
            return;
        }
        let n = self.rng.usize(0..=self.instances[i].outbox.len());
        self.deliver(i, n);
        let inst = &mut self.instances[i];
        inst.alive = false;
        inst.outbox.clear();
        inst.zombies.clear();
        let lost: Vec<i32> = std::mem::take(&mut inst.owned).into_keys().collect();
        let alive: Vec<usize> = (0..self.instances.len())
            .filter(|j| self.instances[*j].alive)
            .collect();
        for p in lost {
            self.owner[p as usize] = None;
            if !alive.is_empty() {
                let to = alive[self.rng.usize(0..alive.len())];
                self.assign(p, to);
            }
        }
    }

    /// A dead instance comes back, empty, and takes unowned partitions.
    fn restart(&mut self, i: usize) {
        if self.instances[i].alive {
            return;
        }
        let nonce = self.rng.u64(..);
        self.instances[i] = self.instance(nonce);
        for p in 0..self.cfg.partitions {
            if self.owner[p as usize].is_none() {
                self.assign(p, i);
            }
        }
    }

    /// A zombie finally learns it lost its partitions.
    fn end_zombies(&mut self, i: usize) {
        self.instances[i].zombies.clear();
    }

    /// The broker redelivers from the committed offsets (as after a
    /// reconnect), though the instance still has its state.
    fn rewind(&mut self, i: usize) {
        for (p, h) in self.instances[i].owned.iter_mut() {
            h.next = self.committed[*p as usize];
        }
    }

    /// Stops the faults and lets everything finish; `Err` if it cannot.
    fn drain(&mut self) -> Result<(), String> {
        while self.made < self.cfg.requests {
            self.publish();
        }
        for i in 0..self.instances.len() {
            self.end_zombies(i);
            self.restart(i);
        }
        for round in 0..400 {
            self.now += 600;
            for i in 0..self.instances.len() {
                let n = self.treasury.len();
                self.sync(i, n);
                let owned: Vec<i32> = self.instances[i].owned.keys().copied().collect();
                for p in owned {
                    for topic in [INTENTS, ORDERS] {
                        loop {
                            let h = &self.instances[i].owned[&p];
                            if h.next[topic] >= self.logs[topic][p as usize].len() {
                                break;
                            }
                            self.handle_at(i, false, p, topic);
                        }
                    }
                }
                self.poll(i);
                let n = self.instances[i].outbox.len();
                self.deliver(i, n);
                self.store_and_commit(i);
            }
            self.fulfil_all();
            if round > 5 && self.quiet() {
                return Ok(());
            }
        }
        Err("still busy after 400 rounds without faults".into())
    }

    /// Fulfillment catches up with every decisions partition.
    fn fulfil_all(&mut self) {
        while self
            .fulfilled
            .iter()
            .zip(&self.decisions)
            .any(|((_, n), d)| *n < d.len())
        {
            self.fulfil(64);
        }
    }

    /// Instance `i` handles the next record of `topic` in partition `p`,
    /// as its owner or (`zombie`) as a zombie, if there is one.
    fn handle_at(&mut self, i: usize, zombie: bool, p: i32, topic: usize) {
        let inst = &mut self.instances[i];
        let held = if zombie {
            &mut inst.zombies
        } else {
            &mut inst.owned
        };
        let Some(h) = held.get_mut(&p) else {
            return;
        };
        let Some(record) = self.logs[topic][p as usize].get(h.next[topic]).cloned() else {
            return;
        };
        let offset = h.next[topic];
        h.next[topic] += 1;
        let ticket = h.progress.begin(p, Some((TOPICS[topic], offset as i64)));
        let step = inst.stage.handled(&mut h.state, record, self.now);
        if step.is_parked() {
            h.progress.park(ticket);
        }
        send(&mut inst.outbox, h, ticket, step.emits());
    }

    /// Everything consumed, finished, acknowledged and committed.
    fn quiet(&self) -> bool {
        self.instances.iter().all(|inst| {
            inst.outbox.is_empty()
                && inst.owned.iter().all(|(p, h)| {
                    h.progress.in_flight() == 0
                        && h.state.parked() == 0
                        && (0..2).all(|t| h.next[t] == self.logs[t][*p as usize].len())
                })
        })
    }

    /// The auditor's checks over everything the run wrote.
    fn audit(&self) -> AuditReport {
        let mut report = audit::audit(&self.campaigns, self.cfg.partitions, &self.logs());
        report.checks.push(audit::Check {
            name: "checkpoint restores",
            ok: self.bad_restores.is_empty(),
            detail: match self.bad_restores.first() {
                None => "every restore through a checkpoint matched folding the whole log".into(),
                Some((p, cut, len)) => format!(
                    "{} restores differed from folding the whole log, e.g. partition {p} cut at {cut} of {len}",
                    self.bad_restores.len()
                ),
            },
        });
        report
    }

    /// Everything the run wrote, with replies written by the real reply
    /// stage reading every partition.
    fn logs(&self) -> Logs {
        // Parsed once: the built-in catalog and templates are TOML.
        static BUILT_IN: std::sync::OnceLock<(Catalog, Templates)> = std::sync::OnceLock::new();
        let (catalog, templates) =
            BUILT_IN.get_or_init(|| (Catalog::built_in(), Templates::built_in()));
        let reply = ReplyStage::new(
            catalog.clone(),
            templates.clone(),
            Arc::clone(&self.campaigns),
        );
        let mut logs = Logs::default();
        let mut requests = HashSet::new();
        for p in 0..self.decisions.len() {
            let mut st = reply.new_state(p as i32);
            let intents = &self.logs[INTENTS][p];
            let orders = &self.logs[ORDERS][p];
            for r in intents.iter().chain(&self.decisions[p]).chain(orders) {
                for emit in reply.handled(&mut st, r.clone(), self.now).into_emits() {
                    if let Record::Reply(reply) = emit.record {
                        logs.replies.push(reply);
                    }
                }
            }
            for r in intents {
                if let Record::Intent(i) = r {
                    if requests.insert(i.request_id.clone()) {
                        logs.prompts.push(Prompt {
                            reply_partition: None,
                            deadline_ms: None,
                            request_id: i.request_id.clone(),
                            session_id: String::new(),
                            user_id: i.user_id.clone(),
                            campaign_id: i.campaign_id.clone(),
                            trace_id: String::new(),
                            event_time_ms: i.prompt_time_ms,
                            text: String::new(),
                            locale: None,
                        });
                    }
                    logs.intents.push(i.clone());
                }
            }
            logs.decisions
                .extend(self.decisions[p].iter().map(|r| (p as i32, r.clone())));
            logs.order_log
                .extend(orders.iter().map(|r| (p as i32, r.clone())));
        }
        logs.treasury = self.treasury.clone();
        logs
    }
}

/// Prints every record of request `id` in seed `seed`'s run.
pub fn debug(seed: u64, id: &str) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let cfg = SimConfig::from_seed(&mut rng);
    let mut w = World::new(rng, cfg.clone());
    for _ in 0..cfg.steps {
        w.step();
    }
    let _ = w.drain();
    for (name, logs) in [
        ("intents", &w.logs[INTENTS]),
        ("orders", &w.logs[ORDERS]),
        ("decisions", &w.decisions),
    ] {
        for (p, log) in logs.iter().enumerate() {
            for (o, r) in log.iter().enumerate() {
                if r.request_id() == id {
                    eprintln!("{name}[{p}]@{o}: {r:?}");
                }
            }
        }
    }
    eprintln!("{}", w.audit());
    for (k, t) in w.treasury.iter().enumerate() {
        eprintln!(
            "treasury@{k}: {:?} {} p{} {} at {}",
            t.kind,
            t.request_id,
            t.partition,
            t.amount,
            t.event_time_ms - START_MS
        );
    }
    let t = w.instances[0].treasury.read();
    let a = t.account("sim").expect("the campaign");
    eprintln!(
        "treasury: leased {} returned {} remaining {}",
        a.leased,
        a.returned,
        a.remaining()
    );
    for (p, log) in w.decisions.iter().enumerate() {
        let mut fold = ledger::DecisionsFold::new(Arc::clone(&w.campaigns));
        let mut events = Vec::new();
        for r in log {
            let e = fold.apply(r);
            let at = match r {
                Record::Decision(d) => d.event_time_ms - START_MS,
                Record::Treasury(t) => t.event_time_ms - START_MS,
                _ => 0,
            };
            events.push(format!(
                "{at}:{}:{e:?}",
                r.request_id().chars().take(12).collect::<String>()
            ));
        }
        let denials = log.iter().filter(|r| matches!(r, Record::Decision(d) if d.reason.as_deref() == Some(schemas::reason::BUDGET_EXHAUSTED))).count();
        eprintln!(
            "p{p}: {:?} unused {} budget denials {denials}\n   {}",
            fold.account("sim"),
            fold.unused("sim"),
            events.join(" ")
        );
    }
}
