//! The requests one gateway instance knows: those it accepted and has not
//! answered yet, and the answers it keeps a while for clients that
//! reconnect. Bounded in count; each entry is forgotten at a set time.
//!
//! The request id is the idempotency key: a second POST with a known id
//! joins the first (nothing is published again), and a person has at most
//! one request in flight.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use schemas::Reply;
use tokio::sync::watch;

/// A request's final answer, once it has one.
pub type Answer = Option<Arc<Reply>>;

/// What was said to a request before its answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Queued {
    /// Requests ahead of it at the first stage when it was admitted.
    pub position: i64,
    /// The wait it was promised.
    pub wait: Duration,
    /// The part of `wait` learnt from earlier answers
    /// ([`Overrun`](crate::admission::Overrun)).
    pub margin: Duration,
    /// How long after it was admitted it was told (zero when told at
    /// once).
    pub told_after: Duration,
    /// Whether it was told the campaign's free orders are used up.
    pub used_up: bool,
    /// The language it was told in: `zh` or `en`.
    pub lang: &'static str,
}

/// One request the instance follows.
#[derive(Debug, Clone)]
pub struct Handle {
    pub user_id: String,
    /// When it was admitted (or, for an answer read back after a restart,
    /// when it was read).
    pub accepted_at: Instant,
    pub queued: Option<Queued>,
    /// Whether it was admitted. A request is claimed before admission
    /// decides on it, and one that is shed is forgotten: until then a
    /// repeat must not follow it, or it would wait for an answer that never
    /// comes.
    pub admitted: bool,
    pub answer: watch::Receiver<Answer>,
}

/// What [`Requests::claim`] found.
#[derive(Debug)]
pub enum Claim {
    /// New: publish it.
    New(Handle),
    /// Already known (a repeat or a reconnect): follow it, publish nothing.
    Known(Handle),
    /// Claimed a moment ago and not admitted yet: it may still be shed, so
    /// there is nothing to follow; ask again.
    Deciding,
    /// The id belongs to another person's request.
    OtherUser,
    /// The person has this other request in flight.
    Busy(String),
    /// The table is full of requests in flight.
    Full,
}

struct Entry {
    user_id: String,
    accepted_at: Instant,
    queued: Option<Queued>,
    admitted: bool,
    answer: watch::Sender<Answer>,
    forget_at: Instant,
}

impl Entry {
    fn handle(&self) -> Handle {
        Handle {
            user_id: self.user_id.clone(),
            accepted_at: self.accepted_at,
            queued: self.queued,
            admitted: self.admitted,
            answer: self.answer.subscribe(),
        }
    }

    fn answered(&self) -> bool {
        self.answer.borrow().is_some()
    }
}

#[derive(Default)]
struct Table {
    by_id: HashMap<String, Entry>,
    /// Person → their request in flight.
    active: HashMap<String, String>,
    /// When each request in flight is given up on, oldest first.
    pending: VecDeque<(Instant, String)>,
    /// When each answer is forgotten, oldest first. (Two queues, so that
    /// each is in time order.)
    answered: VecDeque<(Instant, String)>,
}

/// The instance's requests.
pub struct Requests {
    table: Mutex<Table>,
    cap: usize,
    /// How long an unanswered request is followed.
    pending_for: Duration,
    /// How long an answer is kept.
    keep: Duration,
}

impl Requests {
    pub fn new(cap: usize, pending_for: Duration, keep: Duration) -> Self {
        Self {
            table: Mutex::default(),
            cap,
            pending_for,
            keep,
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes request `id` of `user` in, or says why not.
    pub fn claim(&self, id: &str, user: &str, now: Instant) -> Claim {
        let mut t = self.table();
        if let Some(e) = t.by_id.get(id) {
            return if e.user_id != user {
                Claim::OtherUser
            } else if e.admitted {
                Claim::Known(e.handle())
            } else {
                Claim::Deciding
            };
        }
        if let Some(first) = t.active.get(user) {
            return Claim::Busy(first.clone());
        }
        if t.by_id.len() >= self.cap {
            evict(&mut t, now);
            if t.by_id.len() >= self.cap && !forget_oldest_answer(&mut t) {
                return Claim::Full;
            }
        }
        let entry = Entry {
            user_id: user.to_owned(),
            accepted_at: now,
            queued: None,
            admitted: false,
            answer: watch::Sender::new(None),
            forget_at: now + self.pending_for,
        };
        let handle = entry.handle();
        t.pending.push_back((entry.forget_at, id.to_owned()));
        t.active.insert(user.to_owned(), id.to_owned());
        t.by_id.insert(id.to_owned(), entry);
        Claim::New(handle)
    }

    /// Records that `id` was admitted: from now on a repeat follows it.
    pub fn admit(&self, id: &str) {
        if let Some(e) = self.table().by_id.get_mut(id) {
            e.admitted = true;
        }
    }

    /// Records the interim answer given to `id`, for a client that resumes.
    pub fn set_queued(&self, id: &str, queued: Queued) {
        if let Some(e) = self.table().by_id.get_mut(id) {
            e.queued = Some(queued);
        }
    }

    /// Forgets `id`, which was not published after all.
    pub fn abandon(&self, id: &str) {
        let mut t = self.table();
        if let Some(e) = t.by_id.remove(id) {
            release(&mut t.active, &e.user_id, id);
        }
    }

    /// The request `id`, if known.
    pub fn get(&self, id: &str) -> Option<Handle> {
        self.table().by_id.get(id).map(Entry::handle)
    }

    /// Delivers a final answer; the first for a request wins. Returns how
    /// long the request took and what it was told first, when this
    /// instance admitted it.
    pub fn answer(&self, reply: Reply, now: Instant) -> Option<(Duration, Option<Queued>)> {
        let mut t = self.table();
        let id = reply.request_id.clone();
        let keep_until = now + self.keep;
        match t.by_id.get_mut(&id) {
            Some(e) if e.answered() => None,
            Some(e) => {
                let user = e.user_id.clone();
                let took = now.saturating_duration_since(e.accepted_at);
                let queued = e.queued;
                e.answer.send_replace(Some(Arc::new(reply)));
                e.forget_at = keep_until;
                t.answered.push_back((keep_until, id.clone()));
                release(&mut t.active, &user, &id);
                Some((took, queued))
            }
            None => {
                // Not accepted here since this instance started: a reply to
                // a request its predecessor accepted, kept for a resume.
                if t.by_id.len() >= self.cap {
                    evict(&mut t, now);
                    if t.by_id.len() >= self.cap && !forget_oldest_answer(&mut t) {
                        return None;
                    }
                }
                let entry = Entry {
                    user_id: reply.user_id.clone(),
                    accepted_at: now,
                    queued: None,
                    admitted: true,
                    answer: watch::Sender::new(Some(Arc::new(reply))),
                    forget_at: keep_until,
                };
                t.answered.push_back((keep_until, id.clone()));
                t.by_id.insert(id, entry);
                None
            }
        }
    }

    /// Forgets what is due to be forgotten.
    pub fn evict(&self, now: Instant) {
        evict(&mut self.table(), now);
    }

    /// Requests followed (in flight or answered).
    pub fn len(&self) -> usize {
        self.table().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.table().active.len()
    }
}

fn release(active: &mut HashMap<String, String>, user: &str, id: &str) {
    if active.get(user).is_some_and(|a| a == id) {
        active.remove(user);
    }
}

fn evict(t: &mut Table, now: Instant) {
    for answered in [false, true] {
        loop {
            let queue = if answered {
                &mut t.answered
            } else {
                &mut t.pending
            };
            if queue.front().is_none_or(|(at, _)| *at > now) {
                break;
            }
            let Some((_, id)) = queue.pop_front() else {
                break;
            };
            // The entry may have been answered (or forgotten) meanwhile:
            // only the queue matching its state removes it.
            let due = t
                .by_id
                .get(&id)
                .is_some_and(|e| e.answered() == answered && e.forget_at <= now);
            if due {
                if let Some(e) = t.by_id.remove(&id) {
                    release(&mut t.active, &e.user_id, &id);
                }
            }
        }
    }
}

/// Makes room by forgetting the oldest answer, if there is one.
fn forget_oldest_answer(t: &mut Table) -> bool {
    while let Some((_, id)) = t.answered.pop_front() {
        if t.by_id.get(&id).is_some_and(Entry::answered) {
            t.by_id.remove(&id);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use schemas::ReplyOutcome;

    use super::*;

    fn reply(id: &str, user: &str) -> Reply {
        Reply {
            request_id: id.into(),
            session_id: String::new(),
            user_id: user.into(),
            campaign_id: "c".into(),
            trace_id: String::new(),
            event_time_ms: 0,
            prompt_time_ms: 0,
            locale: "en".into(),
            outcome: ReplyOutcome::Rejected,
            reason: None,
            text: "t".into(),
            order_id: None,
            credit_cents: 0,
            to_pay_cents: 0,
            latency_ms: 0,
        }
    }

    fn table(cap: usize) -> Requests {
        Requests::new(cap, Duration::from_secs(60), Duration::from_secs(600))
    }

    /// A repeat that arrives while the first is being decided, and the
    /// first then shed: the repeat must not be left following an answer
    /// that never comes (it once got a stream that ended without one).
    #[test]
    fn a_repeat_during_admission_of_a_request_that_is_shed_follows_nothing() {
        let r = table(10);
        let t0 = Instant::now();
        assert!(matches!(r.claim("r1", "alice", t0), Claim::New(_)));
        assert!(matches!(r.claim("r1", "alice", t0), Claim::Deciding));
        r.abandon("r1");
        // Shed and forgotten: the repeat is a new request of its own.
        assert!(matches!(r.claim("r1", "alice", t0), Claim::New(_)));
    }

    #[test]
    fn a_repeat_joins_the_first_and_a_person_has_one_request_in_flight() {
        let r = table(10);
        let t0 = Instant::now();
        assert!(matches!(r.claim("r1", "alice", t0), Claim::New(_)));
        // Until admission says yes, a repeat has nothing to follow.
        assert!(matches!(r.claim("r1", "alice", t0), Claim::Deciding));
        assert!(r.get("r1").is_some_and(|h| !h.admitted));
        r.admit("r1");
        assert!(matches!(r.claim("r1", "alice", t0), Claim::Known(_)));
        assert!(matches!(r.claim("r1", "bob", t0), Claim::OtherUser));
        assert!(matches!(r.claim("r2", "alice", t0), Claim::Busy(first) if first == "r1"));
        let Claim::Known(mut h) = r.claim("r1", "alice", t0) else {
            panic!("known");
        };
        let took = r.answer(reply("r1", "alice"), t0 + Duration::from_secs(2));
        assert_eq!(took, Some((Duration::from_secs(2), None)));
        assert!(h.answer.has_changed().expect("open"));
        assert_eq!(
            h.answer
                .borrow_and_update()
                .as_ref()
                .map(|a| a.request_id.clone()),
            Some("r1".into())
        );
        // Answered: the person may ask again; a second answer is ignored.
        assert!(matches!(r.claim("r2", "alice", t0), Claim::New(_)));
        assert_eq!(r.answer(reply("r1", "alice"), t0), None);
    }

    #[test]
    fn entries_are_bounded_and_forgotten_in_time() {
        let r = table(2);
        let t0 = Instant::now();
        assert!(matches!(r.claim("a", "u1", t0), Claim::New(_)));
        assert!(matches!(r.claim("b", "u2", t0), Claim::New(_)));
        assert!(matches!(r.claim("c", "u3", t0), Claim::Full));
        // An answered request makes room for a new one.
        r.answer(reply("a", "u1"), t0);
        assert!(matches!(r.claim("c", "u3", t0), Claim::New(_)));
        assert_eq!(r.len(), 2);
        // Unanswered requests are given up after `pending_for`, which
        // frees their person.
        r.evict(t0 + Duration::from_secs(61));
        assert!(r.is_empty() && r.in_flight() == 0);
        assert!(matches!(r.claim("d", "u2", t0), Claim::New(_)));
    }

    #[test]
    fn a_reply_to_a_request_accepted_before_a_restart_is_kept_for_a_resume() {
        let r = table(10);
        let t0 = Instant::now();
        assert_eq!(r.answer(reply("old", "u1"), t0), None);
        let h = r.get("old").expect("kept");
        assert!(h.answer.borrow().is_some());
        assert!(matches!(r.claim("old", "u1", t0), Claim::Known(_)));
        r.evict(t0 + Duration::from_secs(601));
        assert!(r.get("old").is_none());
    }
}
