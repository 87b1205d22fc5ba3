//! Unit tests of the reply stage: templates, one reply per request,
//! expired requests and gateway routes.

use super::*;

fn items() -> Vec<Item> {
    vec![Item {
        sku: "milk-tea".into(),
        quantity: 2,
        options: Default::default(),
        unit_price_cents: 1_500,
    }]
}

/// Every outcome and every reason the pipeline produces renders in both
/// languages, with no placeholder left unfilled.
#[test]
fn every_template_renders_in_both_languages() {
    let t = Templates::built_in();
    let catalog = Catalog::built_in();
    let cases: &[(ReplyOutcome, &[Option<&str>])] = &[
        (ReplyOutcome::OrderPlaced, &[None]),
        (ReplyOutcome::Expired, &[Some("expired")]),
        (
            ReplyOutcome::OrderFailed,
            &[
                Some("out_of_stock"),
                Some("sku_unavailable"),
                Some("campaign_closed"),
                Some("something_new"),
            ],
        ),
        (
            ReplyOutcome::Denied,
            &[
                Some("budget_exhausted"),
                Some("already_used"),
                Some("not_eligible"),
                Some("campaign_not_active"),
                Some("something_new"),
            ],
        ),
        (
            ReplyOutcome::Rejected,
            &[
                Some("not_understood"),
                Some("not_a_purchase"),
                Some("quantity_limit"),
                Some("no_item"),
                Some("unknown_item"),
                Some("something_new"),
            ],
        ),
    ];
    let items = items();
    for locale in ["zh", "en"] {
        for (outcome, reasons) in cases {
            for reason in *reasons {
                let answer = ReplyContent {
                    outcome: *outcome,
                    reason: *reason,
                    order_id: Some("CC1"),
                    items: &items,
                    credit_cents: 2_000,
                    to_pay_cents: 1_000,
                };
                let text = t.render(&catalog, locale, &answer);
                assert!(!text.is_empty());
                assert!(
                    !text.contains('{'),
                    "{locale} {outcome:?} {reason:?}: {text}"
                );
                let has_cjk = text.chars().any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c));
                assert_eq!(has_cjk, locale == "zh", "{text}");
                // Each reason the pipeline produces has words of its
                // own, not the fallback's (a misspelt key would fall
                // back silently).
                let lang = if locale == "zh" { &t.zh } else { &t.en };
                let table = match outcome {
                    ReplyOutcome::OrderPlaced | ReplyOutcome::Expired => continue,
                    ReplyOutcome::OrderFailed => &lang.order_failed,
                    ReplyOutcome::Denied => &lang.denied,
                    ReplyOutcome::Rejected => &lang.rejected,
                };
                if let Some(r) = reason.filter(|r| *r != "something_new") {
                    assert!(table.contains_key(r), "{locale} {outcome:?}: no `{r}`");
                }
            }
        }
    }
    let placed = t.render(
        &catalog,
        "en",
        &ReplyContent {
            outcome: ReplyOutcome::OrderPlaced,
            reason: None,
            order_id: Some("CC1"),
            items: &items,
            credit_cents: 2_000,
            to_pay_cents: 1_000,
        },
    );
    assert!(
        placed.contains("CC1")
            && placed.contains("2 × milk tea")
            && placed.contains("¥20.00")
            && placed.contains("¥10.00"),
        "{placed}"
    );
}

#[test]
fn templates_without_fallback_are_refused() {
    let broken = BUILT_IN
        .replacen("[zh.denied]\n", "[zh.denied]\nx = \"\"\n", 1)
        .replace(
            "other = \"抱歉，这单无法使用活动优惠（{reason}），没有下单。\"",
            "",
        );
    assert!(Templates::parse(&broken).unwrap_err().contains("zh.denied"));
}

#[test]
fn one_reply_per_request() {
    let stage = ReplyStage::new(
        Catalog::built_in(),
        Templates::built_in(),
        ledger::fixtures::campaigns_limited(1),
    );
    let mut answered = Recent::new(REPLY_WINDOW);
    let intent = schemas::IntentEvent {
        reply_partition: None,
        deadline_ms: None,
        request_id: "r1".into(),
        session_id: "s".into(),
        user_id: "u".into(),
        campaign_id: "c".into(),
        trace_id: "t".into(),
        event_time_ms: 5,
        prompt_time_ms: 1,
        locale: "en".into(),
        outcome: IntentOutcome::Rejected,
        items: vec![],
        coupon_code: None,
        total_cents: 0,
        reason: Some("not_understood".into()),
    };
    let reply = stage
        .answer(&mut answered, Record::Intent(intent.clone()), 11)
        .unwrap();
    assert_eq!(reply.latency_ms, 10);
    assert_eq!(reply.outcome, ReplyOutcome::Rejected);
    assert!(
        stage
            .answer(&mut answered, Record::Intent(intent), 12)
            .is_none()
    );
}

#[test]
fn an_expired_request_is_answered_expired_with_nothing_charged() {
    let stage = ReplyStage::new(
        Catalog::built_in(),
        Templates::built_in(),
        ledger::fixtures::campaigns_limited(1),
    );
    let mut answered = Recent::new(REPLY_WINDOW);
    let failed = OrderEvent {
        reply_partition: None,
        request_id: "r1".into(),
        session_id: "s".into(),
        user_id: "u".into(),
        campaign_id: "c".into(),
        trace_id: "t".into(),
        event_time_ms: 5,
        prompt_time_ms: 1,
        locale: "zh".into(),
        order_id: "CC1".into(),
        outcome: OrderOutcome::Failed,
        items: items(),
        total_cents: 3_000,
        credit_cents: 2_000,
        to_pay_cents: 0,
        reason: Some(EXPIRED.into()),
    };
    let reply = stage
        .answer(&mut answered, Record::Order(failed), 9)
        .expect("a reply");
    assert_eq!(reply.outcome, ReplyOutcome::Expired);
    assert_eq!(reply.reason.as_deref(), Some(EXPIRED));
    assert_eq!((reply.credit_cents, reply.to_pay_cents), (0, 0));
    assert_eq!(reply.order_id, None);
    assert!(reply.text.contains("没有下单"), "{}", reply.text);
}

#[test]
fn a_routed_request_gets_a_copy_of_its_reply_on_its_gateway_partition() {
    let stage = ReplyStage::new(
        Catalog::built_in(),
        Templates::built_in(),
        ledger::fixtures::campaigns_limited(1),
    )
    .with_gateway_partitions(4);
    let mut st = stage.new_state(0);
    let rejected = |id: &str, route: Option<i32>| {
        Record::Intent(schemas::IntentEvent {
            reply_partition: route,
            deadline_ms: None,
            request_id: id.into(),
            session_id: "s".into(),
            user_id: "u".into(),
            campaign_id: "c".into(),
            trace_id: "t".into(),
            event_time_ms: 5,
            prompt_time_ms: 1,
            locale: "en".into(),
            outcome: IntentOutcome::Rejected,
            items: vec![],
            coupon_code: None,
            total_cents: 0,
            reason: Some("not_understood".into()),
        })
    };
    let mut out = Collector::new();
    stage.handle(&mut st, rejected("r1", Some(3)), 9, &mut out);
    let placed: Vec<_> = out
        .emits()
        .iter()
        .map(|e| (e.topic, e.partition, e.record.request_id().to_owned()))
        .collect();
    assert_eq!(
        placed,
        [
            (Topic::GatewayReplies, Some(3), "r1".to_owned()),
            (Topic::Replies, None, "r1".to_owned()),
        ]
    );
    // No route, or one outside the topic: chat.replies only.
    for (id, route) in [("r2", None), ("r3", Some(4)), ("r4", Some(-1))] {
        let mut out = Collector::new();
        stage.handle(&mut st, rejected(id, route), 9, &mut out);
        let topics: Vec<_> = out.emits().iter().map(|e| e.topic).collect();
        assert_eq!(topics, [Topic::Replies], "{route:?}");
    }
    // A repeat is answered (and copied) once.
    let mut out = Collector::new();
    stage.handle(&mut st, rejected("r1", Some(3)), 10, &mut out);
    assert!(out.is_empty());
}

/// The stock returns the orders fold accepts go on to the treasury, once,
/// with the amount the fold took; one beyond the partition's unused units
/// (a zombie's, from a stale view) does not, nor does one folded while the
/// partition was restored.
#[test]
fn only_the_stock_returns_the_orders_log_accepts_reach_the_treasury() {
    use crate::stage::Calls;
    use ledger::fixtures::{campaigns_stocked, item, order, stock};
    use schemas::TreasuryKind::{LeaseCredit, LeaseReturn};
    let stage = ReplyStage::new(
        Catalog::built_in(),
        Templates::built_in(),
        campaigns_stocked(&[("latte", 10)]),
    );
    let mut st = stage.new_state(0);
    let forwarded = |st: &mut ReplyState, record: Record| -> Vec<i64> {
        stage
            .handled(st, record, 7)
            .into_emits()
            .into_iter()
            .filter(|e| e.topic == Topic::Treasury)
            .filter_map(|e| match e.record {
                Record::Treasury(t) if t.kind == LeaseReturn => Some(t.amount),
                _ => None,
            })
            .collect()
    };
    let credit = stock("l1", LeaseCredit, "latte", 5);
    stage
        .restore(&mut st, Restore::Input(&credit))
        .expect("a record folds");
    let restored_return = stock("x0", LeaseReturn, "latte", 1);
    stage
        .restore(&mut st, Restore::Input(&restored_return))
        .expect("a record folds");
    assert_eq!(forwarded(&mut st, restored_return), Vec::<i64>::new());
    let placed = order("r1", OrderOutcome::Placed, vec![item("latte", 2)]);
    assert_eq!(forwarded(&mut st, placed), Vec::<i64>::new());
    // 5 credited, 1 returned, 2 sold: 2 unused.
    assert_eq!(
        forwarded(&mut st, stock("x1", LeaseReturn, "latte", 3)),
        Vec::<i64>::new()
    );
    assert_eq!(
        forwarded(&mut st, stock("x2", LeaseReturn, "latte", 2)),
        [2]
    );
    assert_eq!(
        forwarded(&mut st, stock("x2", LeaseReturn, "latte", 2)),
        Vec::<i64>::new()
    );
    // A budget return on the decisions log is fulfillment's to forward.
    let budget = ledger::fixtures::movement("b1", LeaseReturn, 100);
    assert_eq!(forwarded(&mut st, budget), Vec::<i64>::new());
}
