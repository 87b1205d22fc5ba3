//! Figures read from shared state when `/metrics` is scraped, rather than
//! counted as records pass: the campaign ledger as the treasury fold has it
//! (budget and stock, leased and not) and the LLM fallback's counters and
//! breaker. Each is a [`Collector`] the process registers once.

use std::fmt;
use std::sync::Arc;

use ledger::{BUDGET, stock_sku};
use llm::Llm;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use stages::leases::TreasuryView;

/// Writes one family under `name`.
fn family<L, M>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    family: &Family<L, M>,
) -> fmt::Result
where
    L: prometheus_client::encoding::EncodeLabelSet
        + Clone
        + std::hash::Hash
        + Eq
        + fmt::Debug
        + Send
        + Sync,
    M: EncodeMetric + prometheus_client::metrics::TypedMetric + fmt::Debug + Default,
{
    family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)
}

/// Writes one unlabelled metric under `name`.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// A campaign.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct CampaignLabel {
    campaign: String,
}

/// A campaign and one SKU whose stock it limits.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct StockLabel {
    campaign: String,
    sku: String,
}

/// The campaign ledger as this process's treasury fold has it. Campaign ids
/// and SKUs come from the configuration, so the series are a closed set.
pub struct TreasuryGauges(pub Arc<TreasuryView>);

impl fmt::Debug for TreasuryGauges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TreasuryGauges")
    }
}

impl Collector for TreasuryGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let [budget, leased, unleased]: [Family<CampaignLabel, Gauge>; 3] = Default::default();
        let [stock, stock_leased, stock_unleased]: [Family<StockLabel, Gauge>; 3] =
            Default::default();
        {
            let fold = self.0.read();
            for (campaign, resource, account) in fold.accounts() {
                let held = account.leased - account.returned;
                let left = account.remaining();
                if resource == BUDGET {
                    let label = CampaignLabel {
                        campaign: campaign.to_owned(),
                    };
                    budget.get_or_create(&label).set(account.budget);
                    leased.get_or_create(&label).set(held);
                    unleased.get_or_create(&label).set(left);
                } else if let Some(sku) = stock_sku(resource) {
                    let label = StockLabel {
                        campaign: campaign.to_owned(),
                        sku: sku.to_owned(),
                    };
                    stock.get_or_create(&label).set(account.budget);
                    stock_leased.get_or_create(&label).set(held);
                    stock_unleased.get_or_create(&label).set(left);
                }
            }
        }
        family(
            &mut encoder,
            "campaign_budget_cents",
            "A campaign's budget, in cents (from the configuration)",
            &budget,
        )?;
        family(
            &mut encoder,
            "campaign_leased_cents",
            "Budget held by partitions in leases (leased minus returned), in cents; each partition grants credit only out of its leases",
            &leased,
        )?;
        family(
            &mut encoder,
            "campaign_unleased_cents",
            "Budget not leased to any partition yet, in cents; at 0 the campaign's credit is all handed out or held",
            &unleased,
        )?;
        family(
            &mut encoder,
            "stock_units",
            "A SKU's stock for a campaign that limits it, in units",
            &stock,
        )?;
        family(
            &mut encoder,
            "stock_leased_units",
            "Stock held by fulfillment partitions in leases, in units",
            &stock_leased,
        )?;
        family(
            &mut encoder,
            "stock_unleased_units",
            "Stock not leased to any partition yet, in units",
            &stock_unleased,
        )
    }
}

/// An outcome of LLM requests.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The LLM fallback's counters and breaker.
#[derive(Debug)]
pub struct LlmGauges(pub Llm);

impl Collector for LlmGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let stats = self.0.stats();
        let mut ended = encoder.encode_descriptor(
            "llm_requests",
            "LLM requests that ended, by outcome (failed excludes timed_out)",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in [
            ("succeeded", stats.succeeded),
            ("timed_out", stats.timeouts),
            ("failed", stats.failures.saturating_sub(stats.timeouts)),
        ] {
            ConstCounter::new(n).encode(ended.encode_family(&OutcomeLabel { outcome })?)?;
        }
        for (name, help, n) in [
            (
                "llm_requests_started",
                "LLM requests sent to the endpoint",
                stats.sent,
            ),
            (
                "llm_cache_hits",
                "Prompts answered from the LLM cache without a request",
                stats.cache_hits,
            ),
            (
                "llm_busy_refusals",
                "Prompts not sent because llm.max_concurrency requests were in flight (the rules' reading was used)",
                stats.busy,
            ),
            (
                "llm_breaker_refusals",
                "Prompts not sent because the breaker was open",
                stats.breaker_open,
            ),
            (
                "llm_breaker_trips",
                "Times the breaker opened after consecutive failures",
                stats.breaker_trips,
            ),
            (
                "llm_not_sent",
                "Prompts not sent because they were empty or longer than llm.max_prompt_chars",
                stats.not_sent,
            ),
        ] {
            single(&mut encoder, name, help, &ConstCounter::new(n))?;
        }
        single(
            &mut encoder,
            "llm_breaker_open",
            "1 while the breaker refuses requests (open or on trial), else 0",
            &ConstGauge::new(i64::from(self.0.breaker_open())),
        )
    }
}

#[cfg(test)]
mod tests {
    use ledger::TreasuryFold;
    use ledger::fixtures::{campaigns_stocked, movement, stock};
    use schemas::{Record, TreasuryKind};

    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn the_ledger_is_read_from_the_treasury_at_each_scrape() {
        let view = Arc::new(TreasuryView::new(TreasuryFold::new(
            campaigns_stocked(&[("egg-tart", 40)]),
            2,
        )));
        let metrics = Metrics::default();
        metrics.register(TreasuryGauges(Arc::clone(&view)));
        let before = metrics.encode();
        let treasury = |r: Record| match r {
            Record::Treasury(t) => t,
            other => panic!("not a treasury record: {other:?}"),
        };
        view.apply(&[
            treasury(movement("l1", TreasuryKind::LeaseRequest, 0)),
            treasury(stock("s1", TreasuryKind::LeaseRequest, "egg-tart", 0)),
        ]);
        let after = metrics.encode();
        let value = |text: &str, series: &str| -> i64 {
            text.lines()
                .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
        };
        let budget = value(&after, "chatcart_campaign_budget_cents{campaign=\"c\"}");
        let leased = value(&after, "chatcart_campaign_leased_cents{campaign=\"c\"}");
        let unleased = value(&after, "chatcart_campaign_unleased_cents{campaign=\"c\"}");
        assert_eq!(
            value(&before, "chatcart_campaign_leased_cents{campaign=\"c\"}"),
            0
        );
        assert!(leased > 0, "a lease was granted:\n{after}");
        assert_eq!(leased + unleased, budget);
        let units = "{campaign=\"c\",sku=\"egg-tart\"}";
        assert_eq!(value(&after, &format!("chatcart_stock_units{units}")), 40);
        let held = value(&after, &format!("chatcart_stock_leased_units{units}"));
        assert!(
            held > 0
                && held + value(&after, &format!("chatcart_stock_unleased_units{units}")) == 40
        );
    }
}
