//! Intent stage: `chat.prompts` → `commerce.intents`. Decides what the person
//! wants (catalog items and quantities) or why it cannot be ordered.
//!
//! The rules answer almost every prompt at once. A prompt they read with low
//! confidence goes to the optional LLM fallback when it has room: the record
//! is parked until the answer comes (or fails), and the answer is validated
//! against the catalog and limits exactly like rule output. When the LLM is
//! busy, its breaker is open, or it fails, the rule result stands, so the
//! LLM can slow no prompt down by more than its timeout and never stops the
//! stage. A redelivered prompt yields an intent that later stages recognise
//! by request id.
//!
//! The pipeline owns its partitioning from here on: every intent goes to
//! the `commerce.intents` partition of its person ([`shard_of`] their
//! `user_id`), whichever partition of `chat.prompts` the prompt came in on.
//! Front-ends with different partitioners, or none, cannot put one person's
//! requests on two partitions, where the per-person limit would be counted
//! twice. The same prompt always goes to the same partition, so redelivery
//! stays safe.

use std::collections::VecDeque;

use schemas::{Codec, CodecError, IntentEvent, IntentOutcome, Prompt, Record};

use crate::topic::shard_of;
use crate::{Collector, Emit, Plan, Stage, StageId, StatePlan, Topic};
use extract::{self, Confidence, Extraction, Extractor, RawOrder};
use llm::{Answer, Attempt, Llm, Pending};
use schemas::reason::{EXPIRED, Rejection, is_expired};

/// Turns prompts into intents.
pub struct IntentStage {
    extractor: Extractor,
    max_quantity: i32,
    default_campaign: String,
    llm: Option<Llm>,
    /// Partitions of `commerce.intents`, when intents are routed by person
    /// (as the pipeline runs); none keeps each on its prompt's partition.
    partitions: Option<i32>,
}

/// Prompts of one partition waiting for the LLM, oldest first (at most the
/// LLM's concurrency cap, since a full cap answers without it).
#[derive(Default)]
pub struct IntentState {
    waiting: VecDeque<Waiting>,
}

struct Waiting {
    prompt: Prompt,
    rules: Extraction,
    pending: Pending,
}

impl IntentStage {
    pub fn new(extractor: Extractor, max_quantity: i32, default_campaign: String) -> Self {
        Self {
            extractor,
            max_quantity,
            default_campaign,
            llm: None,
            partitions: None,
        }
    }

    /// Routes every intent to its person's partition of `partitions`.
    pub fn with_partitions(mut self, partitions: i32) -> Self {
        self.partitions = Some(partitions);
        self
    }

    /// `event` as an output, on its person's partition when routing.
    fn emit(&self, event: IntentEvent) -> Emit {
        match self.partitions {
            Some(n) => {
                let p = shard_of(event.user_id.as_bytes(), n);
                Emit::to_partition(Topic::Intents, p, Record::Intent(event))
            }
            None => Emit::new(Topic::Intents, Record::Intent(event)),
        }
    }

    /// Asks `llm` about prompts the rules read with low confidence.
    pub fn with_llm(mut self, llm: Option<Llm>) -> Self {
        self.llm = llm;
        self
    }

    /// The intent for one prompt, from the rules alone. Pure, so it can be
    /// tested without a broker.
    pub fn intent(&self, prompt: Prompt, now_ms: i64) -> IntentEvent {
        let extraction = self.extractor.extract(self.max_quantity, &prompt.text);
        self.event(prompt, extraction, now_ms)
    }

    /// The intent for `prompt` given what was extracted from it, unless its
    /// deadline passed meanwhile (an LLM answer can take a while).
    fn concluded(&self, prompt: Prompt, extraction: Extraction, now_ms: i64) -> IntentEvent {
        if is_expired(prompt.deadline_ms, now_ms) {
            self.expired(prompt, now_ms)
        } else {
            self.event(prompt, extraction, now_ms)
        }
    }

    /// The intent that ends a prompt read after its deadline: rejected as
    /// `expired`, with nothing ordered.
    fn expired(&self, prompt: Prompt, now_ms: i64) -> IntentEvent {
        let nothing = Extraction::rejected(Rejection::NotUnderstood, Confidence::High);
        let mut expired = self.event(prompt, nothing, now_ms);
        expired.reason = Some(EXPIRED.to_owned());
        expired
    }

    /// What an LLM answer means, checked like rule output. `None` when it
    /// names no reason this stage knows (the rule result then stands).
    fn checked(&self, answer: Answer) -> Option<Extraction> {
        match answer {
            Answer::Items { items, coupon_code } => {
                let raw = RawOrder { items, coupon_code };
                Some(extract::validate(
                    self.extractor.catalog(),
                    self.max_quantity,
                    &raw,
                ))
            }
            Answer::Rejected(code) => {
                Rejection::parse(&code).map(|r| Extraction::rejected(r, Confidence::Low))
            }
        }
    }

    /// The intent for `prompt` given what was extracted from it.
    fn event(&self, prompt: Prompt, extraction: Extraction, now_ms: i64) -> IntentEvent {
        let locale = locale(prompt.locale.as_deref(), &prompt.text);
        tracing::debug!(
            request_id = %prompt.request_id,
            confidence = ?extraction.confidence(),
            "extracted"
        );
        let (outcome, items, coupon_code, reason) = match extraction {
            Extraction::Items {
                items, coupon_code, ..
            } => (IntentOutcome::Extracted, items, coupon_code, None),
            Extraction::Rejected { reason, .. } => (
                IntentOutcome::Rejected,
                vec![],
                None,
                Some(reason.as_str().to_owned()),
            ),
        };
        let total_cents = items
            .iter()
            .map(|i| i64::from(i.quantity) * i.unit_price_cents)
            .sum();
        let campaign_id = if prompt.campaign_id.is_empty() {
            self.default_campaign.clone()
        } else {
            prompt.campaign_id
        };
        let trace_id = if prompt.trace_id.is_empty() {
            prompt.request_id.clone()
        } else {
            prompt.trace_id
        };
        // A front-end that sent no time gets latency measured from here.
        let prompt_time_ms = if prompt.event_time_ms > 0 {
            prompt.event_time_ms
        } else {
            now_ms
        };
        IntentEvent {
            reply_partition: prompt.reply_partition,
            deadline_ms: prompt.deadline_ms,
            request_id: prompt.request_id,
            session_id: prompt.session_id,
            user_id: prompt.user_id,
            campaign_id,
            trace_id,
            event_time_ms: now_ms,
            prompt_time_ms,
            locale: locale.to_owned(),
            outcome,
            items,
            coupon_code,
            total_cents,
            reason,
        }
    }
}

/// `zh` or `en`: the front-end's locale when it gave one, else `zh` when the
/// text contains CJK characters.
pub fn locale(given: Option<&str>, text: &str) -> &'static str {
    match given.map(str::to_ascii_lowercase) {
        Some(l) if l.starts_with("zh") => "zh",
        Some(l) if l.starts_with("en") => "en",
        _ if text.chars().any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c)) => "zh",
        _ => "en",
    }
}

impl Stage for IntentStage {
    type State = IntentState;

    fn plan(&self) -> Plan {
        Plan {
            id: StageId::Intent,
            inputs: &[Topic::Prompts],
            state: StatePlan::default(),
            wakeup: self.llm.as_ref().map(Llm::notify),
        }
    }

    fn new_state(&self, _partition: i32) -> IntentState {
        IntentState::default()
    }

    fn decode(&self, codec: &Codec, _topic: Topic, bytes: &[u8]) -> Result<Record, CodecError> {
        codec.decode_prompt(bytes).map(Record::Prompt)
    }

    fn handle(&self, st: &mut IntentState, record: Record, now_ms: i64, out: &mut Collector) {
        let Record::Prompt(prompt) = record else {
            return;
        };
        tracing::debug!(request_id = %prompt.request_id, text = %prompt.text, "prompt");
        if is_expired(prompt.deadline_ms, now_ms) {
            out.extend([self.emit(self.expired(prompt, now_ms))]);
            return;
        }
        let rules = self.extractor.extract(self.max_quantity, &prompt.text);
        let Some(llm) = self
            .llm
            .as_ref()
            .filter(|_| rules.confidence() == Confidence::Low)
        else {
            out.extend([self.emit(self.event(prompt, rules, now_ms))]);
            return;
        };
        let extraction = match llm.try_extract(&prompt.text) {
            Attempt::Started(pending) => {
                st.waiting.push_back(Waiting {
                    prompt,
                    rules,
                    pending,
                });
                out.park();
                return;
            }
            Attempt::Cached(answer) => self.checked(answer).unwrap_or(rules),
            Attempt::Busy | Attempt::BreakerOpen | Attempt::NotSent(_) => rules,
        };
        out.extend([self.emit(self.event(prompt, extraction, now_ms))]);
    }

    fn poll(&self, st: &mut IntentState, now_ms: i64, out: &mut Collector) {
        // Parked records finish in order, so the oldest unanswered one
        // holds back those after it (for at most the LLM's timeout).
        while let Some(front) = st.waiting.front_mut() {
            let Some(result) = front.pending.try_result() else {
                break;
            };
            let Some(Waiting { prompt, rules, .. }) = st.waiting.pop_front() else {
                break;
            };
            let extraction = match result {
                Ok(answer) => self.checked(answer).unwrap_or(rules),
                Err(error) => {
                    tracing::debug!(request_id = %prompt.request_id, %error, "LLM fallback failed; the rules' answer stands");
                    rules
                }
            };
            out.finish_parked([self.emit(self.concluded(prompt, extraction, now_ms))]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(text: &str) -> Prompt {
        Prompt {
            reply_partition: None,
            deadline_ms: None,
            request_id: "r1".into(),
            session_id: "s1".into(),
            user_id: "u1".into(),
            campaign_id: String::new(),
            trace_id: String::new(),
            event_time_ms: 1_000,
            text: text.into(),
            locale: None,
        }
    }

    fn stage() -> IntentStage {
        IntentStage::new(Extractor::built_in(), 50, "spring-festival".into())
    }

    #[test]
    fn intents_go_to_their_persons_partition_whatever_the_prompts() {
        use crate::stage::Calls as _;
        let routed = stage().with_partitions(12);
        let mut st = IntentState::default();
        for user in ["u1", "alice", "张三", ""] {
            let mut p = prompt("帮我买2杯奶茶");
            p.user_id = user.into();
            let want = Some(shard_of(user.as_bytes(), 12));
            // Every kind of intent: extracted, rejected, expired.
            for (text, deadline) in [
                ("帮我买2杯奶茶", None),
                ("hello", None),
                ("帮我买2杯奶茶", Some(1)),
            ] {
                let mut p = p.clone();
                p.text = text.into();
                p.deadline_ms = deadline;
                let out = routed.handled(&mut st, Record::Prompt(p), 2_000);
                assert_eq!(out.emits().len(), 1);
                assert_eq!(out.emits()[0].partition, want, "{user} {text}");
            }
        }
        // Unrouted (a stage's own tests, the simulation): the input's.
        let out = stage().handled(&mut st, Record::Prompt(prompt("帮我买2杯奶茶")), 2_000);
        assert_eq!(out.emits()[0].partition, None);
    }

    #[test]
    fn extracts_items_with_catalog_prices() {
        let i = stage().intent(prompt("帮我买2杯奶茶"), 2_000);
        assert_eq!(i.outcome, IntentOutcome::Extracted);
        assert_eq!(i.total_cents, 3_000);
        assert_eq!(i.locale, "zh");
        assert_eq!(i.campaign_id, "spring-festival");
        assert_eq!(i.prompt_time_ms, 1_000);
        assert_eq!(i.trace_id, "r1");
    }

    #[test]
    fn fills_options_prices_and_coupon_code() {
        let i = stage().intent(
            prompt("two large iced lattes and an egg tart, coupon code spring50"),
            2_000,
        );
        assert_eq!(i.outcome, IntentOutcome::Extracted);
        assert_eq!(i.coupon_code.as_deref(), Some("SPRING50"));
        assert_eq!(i.items.len(), 2);
        assert_eq!(i.items[0].sku, "latte");
        assert_eq!(i.items[0].options["size"], "large");
        assert_eq!(i.items[0].options["temperature"], "iced");
        assert_eq!(i.items[0].unit_price_cents, 2_500);
        assert_eq!(i.total_cents, 2 * 2_500 + 900);
    }

    #[test]
    fn rejects_with_reason() {
        let i = stage().intent(prompt("hello there"), 2_000);
        assert_eq!(i.outcome, IntentOutcome::Rejected);
        assert_eq!(i.reason.as_deref(), Some("not_a_purchase"));
        assert_eq!(i.locale, "en");
        assert!(i.items.is_empty() && i.total_cents == 0 && i.coupon_code.is_none());
        let i = stage().intent(prompt("asdf qwerty"), 2_000);
        assert_eq!(i.reason.as_deref(), Some("not_understood"));
    }

    #[test]
    fn a_prompt_read_after_its_deadline_is_ended_as_expired() {
        let s = stage();
        let mut p = prompt("帮我买2杯奶茶");
        p.deadline_ms = Some(2_000);
        let mut out = Collector::new();
        s.handle(
            &mut s.new_state(0),
            Record::Prompt(p.clone()),
            2_000,
            &mut out,
        );
        let Record::Intent(on_time) = &out.emits()[0].record else {
            panic!("an intent");
        };
        assert_eq!(on_time.outcome, IntentOutcome::Extracted, "at the deadline");
        assert_eq!(on_time.deadline_ms, Some(2_000), "carried along");
        let mut out = Collector::new();
        s.handle(&mut s.new_state(0), Record::Prompt(p), 2_001, &mut out);
        let Record::Intent(late) = &out.emits()[0].record else {
            panic!("an intent");
        };
        assert_eq!(late.outcome, IntentOutcome::Rejected);
        assert_eq!(late.reason.as_deref(), Some(EXPIRED));
        assert!(late.items.is_empty() && late.total_cents == 0);
    }

    #[test]
    fn locale_prefers_the_front_end() {
        assert_eq!(locale(Some("en-US"), "奶茶"), "en");
        assert_eq!(locale(Some("zh-CN"), "latte"), "zh");
        assert_eq!(locale(None, "two 奶茶"), "zh");
        assert_eq!(locale(Some("fr"), "latte"), "en");
    }

    mod with_llm {
        use std::time::Duration;

        use super::*;
        use crate::stage::Calls;
        use llm::LlmConfig;
        use llm::test_server::{Canned, Server, build, config, ok, status};

        async fn stage_with(server: &Server, tune: impl FnOnce(&mut LlmConfig)) -> IntentStage {
            let mut config = config(server);
            tune(&mut config);
            stage().with_llm(Some(build(&config)))
        }

        /// Handles `text`; returns the intents emitted now, and whether the
        /// record was parked.
        fn handle(s: &IntentStage, st: &mut IntentState, text: &str) -> (Vec<IntentEvent>, bool) {
            let step = s.handled(st, Record::Prompt(prompt(text)), 2_000);
            (intents(step.emits()), step.is_parked())
        }

        fn intents(emits: &[Emit]) -> Vec<IntentEvent> {
            emits
                .iter()
                .filter_map(|e| match &e.record {
                    Record::Intent(i) => Some(i.clone()),
                    _ => None,
                })
                .collect()
        }

        /// Waits for the LLM's answer and returns what poll finished.
        async fn finished(s: &IntentStage, st: &mut IntentState) -> Vec<IntentEvent> {
            let notify = s.plan().wakeup.expect("a stage with an LLM has a wakeup");
            tokio::time::timeout(Duration::from_secs(5), notify.notified())
                .await
                .expect("the LLM answered within 5 s");
            let (own, finished) = s.polled(st, 3_000).split();
            assert!(own.is_empty(), "the intent stage emits nothing of its own");
            finished.iter().flat_map(|f| intents(f)).collect()
        }

        #[tokio::test]
        async fn a_low_confidence_prompt_waits_for_the_llm_and_its_answer_is_checked() {
            // A price and a user in the answer must change nothing.
            let server = Server::start(|_| {
                ok(r#"{"items":[{"sku":"latte","quantity":2,"price_cents":1,"user_id":"x"}]}"#)
            })
            .await;
            let s = stage_with(&server, |_| {}).await;
            let mut st = s.new_state(0);
            let (now, parked) = handle(&s, &mut st, "I want a pizza");
            assert!(parked && now.is_empty());
            let done = finished(&s, &mut st).await;
            assert_eq!(done.len(), 1);
            let i = &done[0];
            assert_eq!(i.outcome, IntentOutcome::Extracted);
            assert_eq!((i.items[0].sku.as_str(), i.items[0].quantity), ("latte", 2));
            assert_eq!(i.items[0].unit_price_cents, 2_200, "the catalog's price");
            assert_eq!(i.user_id, "u1");
            assert_eq!(server.count(), 1);
        }

        #[tokio::test]
        async fn confident_prompts_never_reach_the_llm() {
            let server = Server::start(|_| ok(r#"{"rejected":"not_a_purchase"}"#)).await;
            let s = stage_with(&server, |_| {}).await;
            let mut st = s.new_state(0);
            let (now, parked) = handle(&s, &mut st, "帮我买2杯奶茶");
            assert!(!parked);
            assert_eq!(now[0].items[0].sku, "milk-tea");
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(server.count(), 0);
        }

        #[tokio::test]
        async fn llm_answers_are_held_to_the_catalog_and_the_limits() {
            for (answer, reason) in [
                (
                    r#"{"items":[{"sku":"latte","quantity":5000}]}"#,
                    "quantity_limit",
                ),
                (
                    r#"{"items":[{"sku":"caviar","quantity":1}]}"#,
                    "unknown_item",
                ),
            ] {
                let server = Server::start(move |_| ok(answer)).await;
                let s = stage_with(&server, |_| {}).await;
                let mut st = s.new_state(0);
                assert!(handle(&s, &mut st, "I want a pizza").1);
                let done = finished(&s, &mut st).await;
                assert_eq!(done[0].outcome, IntentOutcome::Rejected, "{answer}");
                assert_eq!(done[0].reason.as_deref(), Some(reason), "{answer}");
            }
        }

        #[tokio::test]
        async fn a_failing_llm_leaves_the_rules_answer() {
            let server = Server::start(|_| status(500)).await;
            let s = stage_with(&server, |_| {}).await;
            let mut st = s.new_state(0);
            assert!(handle(&s, &mut st, "I want a pizza").1);
            let done = finished(&s, &mut st).await;
            assert_eq!(done[0].reason.as_deref(), Some("unknown_item"));
        }

        #[tokio::test]
        async fn a_busy_llm_is_not_waited_for() {
            let server = Server::start(|_| Canned {
                delay: Duration::from_millis(500),
                ..ok(r#"{"items":[{"sku":"latte","quantity":1}]}"#)
            })
            .await;
            let s = stage_with(&server, |c| c.max_concurrency = 1).await;
            let mut st = s.new_state(0);
            assert!(handle(&s, &mut st, "I want a pizza").1);
            // The cap is full: the next unsure prompt is answered by the rules now.
            let unsure = "a pizza and a burrito please";
            let rules = s.extractor.extract(s.max_quantity, unsure);
            assert_eq!(rules.confidence(), Confidence::Low);
            let (now, parked) = handle(&s, &mut st, unsure);
            assert!(!parked);
            assert_eq!(now[0].outcome, IntentOutcome::Rejected);
            let done = finished(&s, &mut st).await;
            assert_eq!(done[0].items[0].sku, "latte");
            assert_eq!(server.count(), 1);
        }
    }
}
