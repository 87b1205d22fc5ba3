//! The traffic model against what it claims: shares, heavy-tailed senders,
//! prompts the extractor reads as intended, exact duplicates, and ids
//! that name their run.

use std::collections::HashMap;

use proptest::prelude::*;

use super::words::{en_numeral, zh_numeral};
use super::*;
use extract::text::is_han;
use extract::{Confidence, Extractor};

const RUN: &str = "surge-7";

fn traffic(mix: Mix, seed: u64) -> Traffic {
    Traffic::new(&Catalog::built_in(), mix, RUN, seed).expect("valid traffic")
}

/// `n` deliveries, sent a millisecond apart.
fn run(t: &mut Traffic, n: usize) -> Vec<Sent> {
    (0..n).map(|i| t.step(1_000 + i as i64)).collect()
}

fn share(sent: &[Sent], kind: Kind) -> f64 {
    sent.iter().filter(|s| s.delivery.kind == kind).count() as f64 / sent.len() as f64
}

fn chinese(text: &str) -> bool {
    text.chars().any(is_han)
}

/// What the extractor reads, as the generator's lines.
fn read(extractor: &Extractor, text: &str) -> (Vec<Line>, Confidence) {
    let extraction = extractor.extract(50, text);
    let lines = extraction
        .items()
        .iter()
        .map(|i| Line {
            sku: i.sku.clone(),
            quantity: i.quantity,
            options: i.options.clone(),
        })
        .collect();
    (lines, extraction.confidence())
}

#[test]
fn the_same_seed_makes_the_same_traffic() {
    let a: Vec<Delivery> = run(&mut traffic(Mix::default(), 42), 3_000)
        .into_iter()
        .map(|s| s.delivery)
        .collect();
    let b: Vec<Delivery> = run(&mut traffic(Mix::default(), 42), 3_000)
        .into_iter()
        .map(|s| s.delivery)
        .collect();
    assert_eq!(a, b);
    let c = run(&mut traffic(Mix::default(), 43), 3_000);
    let same = a.iter().zip(&c).filter(|(a, c)| **a == c.delivery).count();
    assert!(same < 100, "another seed makes other traffic: {same} alike");
    // `next` is `step` without the test's view of the lines.
    let mut t = traffic(Mix::default(), 42);
    for (i, want) in a.iter().enumerate().take(500) {
        assert_eq!(&t.next(1_000 + i as i64), want);
    }
}

#[test]
fn kinds_come_in_the_mixed_shares() {
    let mix = Mix::default();
    let sent = run(&mut traffic(mix.clone(), 1), 20_000);
    let new = 1.0 - mix.duplicate_share;
    let fresh = new * (1.0 - mix.repeat_share);
    let expected = [
        (Kind::Duplicate, mix.duplicate_share),
        (Kind::Repeat, new * mix.repeat_share),
        (Kind::Chatter, fresh * mix.chatter_share),
        (Kind::Unknown, fresh * mix.unknown_share),
        (Kind::MultiItem, fresh * mix.multi_item_share),
        (
            Kind::Purchase,
            fresh * (1.0 - mix.chatter_share - mix.unknown_share - mix.multi_item_share),
        ),
    ];
    for (kind, want) in expected {
        let got = share(&sent, kind);
        // Five standard deviations at the largest share is about 0.017.
        assert!((got - want).abs() < 0.02, "{kind:?}: {got:.4} vs {want:.4}");
    }

    // Shares of 0 and 1 are exact.
    let only = |set: fn(&mut Mix)| {
        let mut mix = Mix {
            multi_item_share: 0.0,
            chatter_share: 0.0,
            unknown_share: 0.0,
            repeat_share: 0.0,
            duplicate_share: 0.0,
            ..Mix::default()
        };
        set(&mut mix);
        run(&mut traffic(mix, 2), 500)
    };
    let sent = only(|_| {});
    assert_eq!(share(&sent, Kind::Purchase), 1.0);
    let sent = only(|m| m.chatter_share = 1.0);
    assert_eq!(share(&sent, Kind::Chatter), 1.0);
    let sent = only(|m| m.unknown_share = 1.0);
    assert_eq!(share(&sent, Kind::Unknown), 1.0);
    let sent = only(|m| m.multi_item_share = 1.0);
    assert_eq!(share(&sent, Kind::MultiItem), 1.0);
    // Every request after the first purchase repeats one.
    let sent = only(|m| m.repeat_share = 1.0);
    assert_eq!(sent[0].delivery.kind, Kind::Purchase);
    assert!(sent[1..].iter().all(|s| s.delivery.kind == Kind::Repeat));
    // Every delivery after the first request duplicates it.
    let sent = only(|m| m.duplicate_share = 1.0);
    assert_eq!(sent[0].delivery.kind, Kind::Purchase);
    assert!(sent[1..].iter().all(|s| s.delivery.kind == Kind::Duplicate));
    assert!(
        sent.iter()
            .all(|s| s.delivery.prompt == sent[0].delivery.prompt)
    );
}

#[test]
fn a_few_people_send_much_and_most_send_once() {
    let sent = run(&mut traffic(Mix::default(), 3), 20_000);
    let mut per_user: HashMap<&str, usize> = HashMap::new();
    let fresh = sent
        .iter()
        .filter(|s| !matches!(s.delivery.kind, Kind::Duplicate | Kind::Repeat));
    let mut requests = 0;
    for s in fresh {
        *per_user
            .entry(s.delivery.prompt.user_id.as_str())
            .or_default() += 1;
        requests += 1;
    }
    let mut counts: Vec<usize> = per_user.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let top = counts.len().div_ceil(100);
    let top_share = counts[..top].iter().sum::<usize>() as f64 / requests as f64;
    let once = counts.iter().filter(|c| **c == 1).count() as f64 / counts.len() as f64;
    eprintln!(
        "ZIPF top {top_share} first {} once {once} distinct {}",
        counts[0],
        counts.len()
    );
    // Zipf(1.1) over 100,000 people: the heaviest sender alone sends
    // about an eighth of the requests.
    assert!(top_share > 0.4, "top 1% of senders: {top_share:.3}");
    assert!(counts[0] as f64 > 0.08 * requests as f64, "{}", counts[0]);
    assert!(once > 0.6, "senders who sent once: {once:.3}");
    assert!(counts.len() > 3_000, "{} distinct senders", counts.len());

    // A flat exponent spreads the same requests over many more people.
    let flat = Mix {
        zipf_exponent: 0.01,
        ..Mix::default()
    };
    let sent = run(&mut traffic(flat, 3), 20_000);
    let mut per_user: HashMap<&str, usize> = HashMap::new();
    for s in &sent {
        *per_user
            .entry(s.delivery.prompt.user_id.as_str())
            .or_default() += 1;
    }
    let heaviest = per_user.values().max().copied().unwrap_or_default();
    assert!(heaviest < 20, "{heaviest}");
    assert!(per_user.len() > 15_000, "{}", per_user.len());
}

#[test]
fn chinese_comes_in_its_share() {
    for (chinese_share, seed) in [(0.6, 4), (0.0, 5), (1.0, 6), (0.25, 7)] {
        let mix = Mix {
            chinese_share,
            ..Mix::default()
        };
        let sent = run(&mut traffic(mix, seed), 20_000);
        let fresh: Vec<&Sent> = sent
            .iter()
            .filter(|s| !matches!(s.delivery.kind, Kind::Duplicate | Kind::Repeat))
            .collect();
        let zh = fresh
            .iter()
            .filter(|s| chinese(&s.delivery.prompt.text))
            .count() as f64
            / fresh.len() as f64;
        assert!(
            (zh - chinese_share).abs() < 0.025,
            "{zh:.3} vs {chinese_share}"
        );
    }
}

#[test]
fn purchases_read_back_as_intended() {
    let extractor = Extractor::built_in();
    let mix = Mix {
        multi_item_share: 0.3,
        ..Mix::default()
    };
    let sent = run(&mut traffic(mix, 8), 20_000);
    let mut checked = 0;
    let mut wrong = Vec::new();
    let mut low = 0;
    let mut rejected = HashMap::new();
    for s in &sent {
        let text = &s.delivery.prompt.text;
        let (lines, confidence) = read(&extractor, text);
        match s.delivery.kind {
            Kind::Purchase | Kind::MultiItem | Kind::Repeat => {
                checked += 1;
                if lines != s.lines {
                    wrong.push(format!("{text:?}: read {lines:?}, meant {:?}", s.lines));
                }
                low += usize::from(confidence == Confidence::Low);
            }
            Kind::Chatter | Kind::Unknown => {
                assert!(lines.is_empty(), "{text:?} ordered {lines:?}");
                assert!(s.lines.is_empty());
                let reason = extractor.extract(50, text).reason();
                *rejected.entry((s.delivery.kind, reason)).or_insert(0) += 1;
            }
            Kind::Duplicate => {}
        }
    }
    assert!(checked > 15_000, "{checked}");
    assert!(
        wrong.len() * 100 <= checked,
        "{} of {checked} misread, e.g.:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(40)].join("\n")
    );
    // Surge traffic is meant to be read by the rules, not handed to the
    // LLM fallback.
    assert!(
        low * 100 <= checked,
        "{low} of {checked} read with low confidence"
    );
    // Chatter is not a purchase; unknown items are unknown items.
    for ((kind, reason), n) in &rejected {
        let expected = match kind {
            Kind::Chatter => Some(schemas::reason::Rejection::NotAPurchase),
            _ => Some(schemas::reason::Rejection::UnknownItem),
        };
        assert_eq!(*reason, expected, "{n} {kind:?} read as {reason:?}");
    }
}

#[test]
fn prompts_vary_names_numbers_and_options() {
    let catalog = Catalog::built_in();
    let sent = run(&mut traffic(Mix::default(), 9), 20_000);
    let texts: Vec<String> = sent
        .iter()
        .map(|s| s.delivery.prompt.text.to_lowercase())
        .collect();
    for sku in catalog.skus() {
        for name in sku.zh.iter().chain(&sku.en).chain(&sku.en_plural) {
            let name = name.to_lowercase();
            assert!(texts.iter().any(|t| t.contains(&name)), "{name} never said");
        }
    }
    for word in [
        "四十", "二十", "十二", "两", "40", "twenty", "-", "x3", "杯", "份", "cups of", "大杯",
        "large", "，", "和", "各", "and", "再来", "来杯",
    ] {
        assert!(texts.iter().any(|t| t.contains(word)), "{word} never said");
    }
    let lines: Vec<&Line> = sent.iter().flat_map(|s| &s.lines).collect();
    let small = lines.iter().filter(|l| l.quantity <= 3).count() as f64;
    assert!(small / lines.len() as f64 > 0.8, "mostly one to three");
    assert!(lines.iter().any(|l| l.quantity == 40));
    assert!(lines.iter().all(|l| (1..=40).contains(&l.quantity)));
    let with_options = lines.iter().filter(|l| !l.options.is_empty()).count() as f64;
    let share = with_options / lines.len() as f64;
    assert!(
        (0.1..0.4).contains(&share),
        "options in {share:.3} of lines"
    );
    for group in ["size", "sugar", "temperature"] {
        assert!(
            lines.iter().any(|l| l.options.contains_key(group)),
            "{group}"
        );
    }
}

#[test]
fn duplicates_are_exact_copies_of_recent_requests() {
    let mix = Mix {
        duplicate_share: 0.2,
        ..Mix::default()
    };
    let mut t = traffic(mix, 10);
    let mut made: Vec<Prompt> = Vec::new();
    let mut duplicates = 0;
    for i in 0..10_000 {
        let d = t.next(i);
        if d.kind == Kind::Duplicate {
            duplicates += 1;
            let original = &made[d.seq as usize];
            assert_eq!(&d.prompt, original);
            assert_eq!(d.prompt.event_time_ms, original.event_time_ms);
            assert!(made.len() - (d.seq as usize) <= RING, "from the ring only");
            assert_eq!(seq_of(RUN, &d.prompt.request_id), Some(d.seq));
        } else {
            assert_eq!(d.seq, made.len() as u64, "new requests count up");
            assert_eq!(d.prompt.event_time_ms, i);
            made.push(d.prompt);
        }
        assert_eq!(t.requests(), made.len() as u64);
    }
    assert!(duplicates > 1_500, "{duplicates}");
    // Memory stays bounded.
    assert_eq!(t.recent.0.len(), RING);
    assert!(t.purchases.0.len() <= RING);
}

#[test]
fn repeats_are_new_requests_with_an_earlier_purchase_text() {
    let mix = Mix {
        repeat_share: 0.3,
        duplicate_share: 0.0,
        ..Mix::default()
    };
    let sent = run(&mut traffic(mix, 11), 5_000);
    let mut repeats = 0;
    for (i, s) in sent.iter().enumerate() {
        let d = &s.delivery;
        assert_eq!(d.seq, i as u64);
        if d.kind != Kind::Repeat {
            continue;
        }
        repeats += 1;
        let earlier = sent[..i].iter().rev().take(5 * RING).find(|e| {
            e.delivery.prompt.text == d.prompt.text && e.delivery.prompt.user_id == d.prompt.user_id
        });
        let earlier = earlier.expect("an earlier request of the same person and text");
        assert!(matches!(
            earlier.delivery.kind,
            Kind::Purchase | Kind::MultiItem | Kind::Repeat
        ));
        assert_eq!(d.prompt.session_id, earlier.delivery.prompt.session_id);
        assert_eq!(s.lines, earlier.lines);
        assert_ne!(d.prompt.request_id, earlier.delivery.prompt.request_id);
        assert_eq!(d.prompt.event_time_ms, 1_000 + i as i64);
    }
    assert!(repeats > 1_200, "{repeats}");
}

#[test]
fn ids_name_the_run() {
    let sent = run(&mut traffic(Mix::default(), 12), 2_000);
    for s in &sent {
        let p = &s.delivery.prompt;
        assert_eq!(p.request_id, format!("{RUN}-{}", s.delivery.seq));
        assert_eq!(p.trace_id, p.request_id);
        assert_eq!(seq_of(RUN, &p.request_id), Some(s.delivery.seq));
        let rank = p
            .user_id
            .strip_prefix("surge-7-u")
            .expect("user of the run");
        let rank: u64 = rank.parse().expect("a rank");
        assert!((1..=100_000).contains(&rank));
        assert_eq!(p.session_id, format!("{RUN}-s{rank}"));
        assert_eq!(p.campaign_id, "");
        assert_eq!(p.locale, None);
        assert!(!p.text.is_empty());
    }
    assert_eq!(seq_of("surge-7", "surge-7-0"), Some(0));
    assert_eq!(seq_of("surge-7", "surge-7-1234"), Some(1_234));
    for other in [
        "surge-8-1",
        "surge-71-1",
        "surge-7-",
        "surge-7-01",
        "surge-7-+1",
        "surge-7-1x",
        "surge-7-1-2",
        "surge-7",
        "xsurge-7-1",
        "surge-7-99999999999999999999999",
    ] {
        assert_eq!(seq_of("surge-7", other), None, "{other}");
    }
    // A run whose name starts another's does not claim its ids.
    assert_eq!(seq_of("surge", "surge-7-5"), None);
}

#[test]
fn bad_mixes_and_runs_are_refused_with_the_field() {
    let catalog = Catalog::built_in();
    let refuse = |mix: Mix| {
        Traffic::new(&catalog, mix, RUN, 0)
            .expect_err("refused")
            .to_string()
    };
    let with = |set: &dyn Fn(&mut Mix)| {
        let mut mix = Mix::default();
        set(&mut mix);
        mix
    };
    Mix::default().validate().expect("the default is valid");
    let e = refuse(with(&|m| m.users = 0));
    assert_eq!(e, "mix.users must be between 1 and 100,000,000; got 0");
    assert!(refuse(with(&|m| m.users = MAX_USERS + 1)).contains("mix.users"));
    with(&|m| m.users = MAX_USERS).validate().expect("the most");
    for bad in [0.0, -1.0, 5.01, f64::NAN, f64::INFINITY] {
        let e = refuse(with(&|m| m.zipf_exponent = bad));
        assert!(e.starts_with("mix.zipf_exponent must be above 0"), "{e}");
    }
    type Set = fn(&mut Mix, f64);
    let shares: [(&str, Set); 6] = [
        ("chinese_share", |m, v| m.chinese_share = v),
        ("multi_item_share", |m, v| m.multi_item_share = v),
        ("chatter_share", |m, v| m.chatter_share = v),
        ("unknown_share", |m, v| m.unknown_share = v),
        ("repeat_share", |m, v| m.repeat_share = v),
        ("duplicate_share", |m, v| m.duplicate_share = v),
    ];
    for (field, set) in shares {
        for bad in [-0.1, 1.1, f64::NAN] {
            let e = refuse(with(&|m| set(m, bad)));
            assert!(
                e.starts_with(&format!("mix.{field} must be between 0 and 1")),
                "{e}"
            );
        }
    }
    let e = refuse(with(&|m| {
        m.chatter_share = 0.5;
        m.unknown_share = 0.3;
        m.multi_item_share = 0.3;
    }));
    assert!(
        e.contains(
            "mix.chatter_share + mix.unknown_share + mix.multi_item_share must be at most 1"
        ),
        "{e}"
    );
    with(&|m| {
        m.chatter_share = 0.7;
        m.unknown_share = 0.2;
        m.multi_item_share = 0.1;
    })
    .validate()
    .expect("exactly 1");

    for run in ["", "has space", "ünï", &"r".repeat(65)] {
        let e = Traffic::new(&catalog, Mix::default(), run, 0)
            .expect_err("refused")
            .to_string();
        assert!(e.starts_with("the run name must be"), "{e}");
    }
    let single = Catalog::parse("[[sku]]\nid = 'a'\nprice_cents = 100\nzh = ['甲']\nen = ['aa']\n")
        .expect("valid catalog");
    let e = Traffic::new(&single, Mix::default(), RUN, 0)
        .expect_err("refused")
        .to_string();
    assert!(e.starts_with("mix.multi_item_share must be 0"), "{e}");
    let mix = Mix {
        multi_item_share: 0.0,
        ..Mix::default()
    };
    let mut t = Traffic::new(&single, mix, RUN, 0).expect("one SKU without multi-item prompts");
    for _ in 0..200 {
        t.next(0);
    }
}

#[test]
fn mixes_read_from_toml_with_defaults() {
    let mix: Mix = toml::from_str("users = 500\nchinese_share = 1.0\n").expect("parses");
    assert_eq!(
        mix,
        Mix {
            users: 500,
            chinese_share: 1.0,
            ..Mix::default()
        }
    );
    let e = toml::from_str::<Mix>("user = 5\n").expect_err("unknown field");
    assert!(e.to_string().contains("user"), "{e}");
    assert_eq!(
        serde_json::to_value(Kind::MultiItem).expect("serialises"),
        "multi_item"
    );
}

#[test]
fn numerals() {
    let zh: Vec<String> = [1, 2, 3, 10, 11, 12, 20, 25, 40]
        .iter()
        .map(|n| zh_numeral(*n, true))
        .collect();
    assert_eq!(
        zh,
        [
            "一",
            "两",
            "三",
            "十",
            "十一",
            "十二",
            "二十",
            "二十五",
            "四十"
        ]
    );
    assert_eq!(zh_numeral(2, false), "二");
    assert_eq!(en_numeral(7, false), "seven");
    assert_eq!(en_numeral(40, true), "forty");
    assert_eq!(en_numeral(25, true), "twenty-five");
    assert_eq!(en_numeral(25, false), "twenty five");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever the seed and mix: ids are the run's, new requests count
    /// up, duplicates come from the last `RING` requests.
    #[test]
    fn any_mix_keeps_its_invariants(
        seed in any::<u64>(),
        users in 1..1_000_000u64,
        zipf_exponent in 0.01..5.0f64,
        shares in proptest::collection::vec(0.0..=1.0f64, 6),
    ) {
        let third = |v: f64| v / 3.0;
        let mix = Mix {
            users,
            zipf_exponent,
            chinese_share: shares[0],
            multi_item_share: third(shares[1]),
            chatter_share: third(shares[2]),
            unknown_share: third(shares[3]),
            repeat_share: shares[4],
            duplicate_share: shares[5],
        };
        let mut t = traffic(mix, seed);
        let mut made = 0u64;
        for i in 0..300 {
            let d = t.next(i);
            prop_assert_eq!(seq_of(RUN, &d.prompt.request_id), Some(d.seq));
            if d.kind == Kind::Duplicate {
                prop_assert!(d.seq < made && made - d.seq <= RING as u64);
            } else {
                prop_assert_eq!(d.seq, made);
                made += 1;
            }
            let rank: Option<u64> = d.prompt.user_id.strip_prefix("surge-7-u").and_then(|r| r.parse().ok());
            prop_assert!(rank.is_some_and(|r| (1..=users).contains(&r)), "{}", d.prompt.user_id);
        }
        prop_assert_eq!(t.requests(), made);
    }
}

#[test]
fn other_catalogs_are_worded_from_what_they_list() {
    // No measure words, no plurals, one option group: every sentence must
    // still name only what the catalog has, in a way the extractor reads.
    let catalog = Catalog::parse(
        "[options.temperature]\nhot = { words = ['热', 'hot'] }\niced = { words = ['冰', 'iced'] }\n\
         [[sku]]\nid = 'soy-milk'\nprice_cents = 300\nzh = ['豆浆']\nen = ['soy milk']\n\
         options = { temperature = ['hot', 'iced'] }\n\
         [[sku]]\nid = 'pizza'\nprice_cents = 3000\nzh = ['披萨']\nen = ['pizza']\n",
    )
    .expect("valid catalog");
    let mut t = Traffic::new(&catalog, Mix::default(), RUN, 13).expect("valid traffic");
    let sent = run(&mut t, 3_000);
    let extractor = Extractor::new(catalog);
    let mut checked = 0;
    let mut wrong = Vec::new();
    for s in &sent {
        let text = &s.delivery.prompt.text;
        if s.delivery.kind == Kind::Unknown {
            // Pizza is for sale here, so it is no unknown item.
            assert!(!text.contains("披萨") && !text.contains("pizza"), "{text}");
            assert!(read(&extractor, text).0.is_empty(), "{text}");
        }
        if matches!(
            s.delivery.kind,
            Kind::Purchase | Kind::MultiItem | Kind::Repeat
        ) {
            checked += 1;
            let (lines, _) = read(&extractor, text);
            if lines != s.lines {
                wrong.push(format!("{text:?}: read {lines:?}, meant {:?}", s.lines));
            }
        }
    }
    assert!(
        wrong.len() * 100 <= checked,
        "{} of {checked} misread, e.g.:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(40)].join("\n")
    );
}
