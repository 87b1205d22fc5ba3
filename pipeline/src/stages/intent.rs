//! Intent stage: `chat.prompts` → `commerce.intents`. Decides what the person
//! wants (catalog items and quantities) or why it cannot be ordered. Stateless:
//! a redelivered prompt yields the same intent, which later stages recognise
//! by request id.

use schemas::{Codec, CodecError, IntentEvent, IntentOutcome, Prompt, Record};

use crate::catalog::Catalog;
use crate::extract::{Extraction, extract};
use crate::runtime::{Emit, Stage, Step};
use crate::topics::Topic;

/// Turns prompts into intents.
pub struct IntentStage {
    catalog: Catalog,
    max_quantity: i32,
    default_campaign: String,
}

impl IntentStage {
    pub fn new(catalog: Catalog, max_quantity: i32, default_campaign: String) -> Self {
        // Build the extractor's tables now, not on the first prompt.
        catalog.prepare();
        Self {
            catalog,
            max_quantity,
            default_campaign,
        }
    }

    /// The intent for one prompt. Pure, so it can be tested without a broker.
    pub fn intent(&self, prompt: Prompt, now_ms: i64) -> IntentEvent {
        let locale = locale(prompt.locale.as_deref(), &prompt.text);
        let extraction = extract(&self.catalog, self.max_quantity, &prompt.text);
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
    type State = ();

    fn name(&self) -> &'static str {
        "intent"
    }

    fn inputs(&self) -> &'static [Topic] {
        &[Topic::Prompts]
    }

    fn new_state(&self, _partition: i32) {}

    fn decode(&self, codec: &Codec, _topic: Topic, bytes: &[u8]) -> Result<Record, CodecError> {
        codec.decode_prompt(bytes).map(Record::Prompt)
    }

    fn handle(&self, _state: &mut (), record: Record, now_ms: i64) -> Step {
        match record {
            Record::Prompt(prompt) => {
                tracing::debug!(request_id = %prompt.request_id, text = %prompt.text, "prompt");
                vec![Emit::new(
                    Topic::Intents,
                    Record::Intent(self.intent(prompt, now_ms)),
                )]
                .into()
            }
            _ => Step::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(text: &str) -> Prompt {
        Prompt {
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
        IntentStage::new(Catalog::built_in(), 50, "spring-festival".into())
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
    fn locale_prefers_the_front_end() {
        assert_eq!(locale(Some("en-US"), "奶茶"), "en");
        assert_eq!(locale(Some("zh-CN"), "latte"), "zh");
        assert_eq!(locale(None, "two 奶茶"), "zh");
        assert_eq!(locale(Some("fr"), "latte"), "en");
    }
}
