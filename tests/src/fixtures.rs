//! The prompts scenarios are built from, made in one place.

use schemas::Prompt;

/// A prompt from `user`, with request id `request` and session `s-<user>`.
pub fn prompt(request: impl Into<String>, user: &str, text: &str) -> Prompt {
    Prompt {
        reply_partition: None,
        deadline_ms: None,
        request_id: request.into(),
        session_id: format!("s-{user}"),
        user_id: user.to_owned(),
        campaign_id: String::new(),
        trace_id: String::new(),
        event_time_ms: runtime::now_ms(),
        text: text.to_owned(),
        locale: None,
    }
}

/// Prompts that order nothing.
const CHATTER: &[&str] = &[
    "你好",
    "我的订单到哪了？",
    "谢谢！",
    "hi there",
    "where is my order?",
    "can I talk to a person",
];

/// `count` prompts from about `count * 3 / 5` users, replayable from
/// `seed`: a known, simple mix (every prompt its own request, about one in
/// ten chatter, the rest orders of one to four of a catalog item in four
/// phrasings, half Chinese). Realistic traffic is `chatcart surge`'s.
pub fn prompts(count: usize, seed: u64) -> Vec<Prompt> {
    let catalog = extract::catalog::Catalog::built_in();
    let skus = catalog.skus();
    let mut rng = fastrand::Rng::with_seed(seed);
    let users = (count * 3 / 5).max(1);
    (0..count)
        .map(|i| {
            let user = format!("user-{}", rng.usize(..users));
            let text = if rng.usize(..10) == 0 {
                CHATTER[rng.usize(..CHATTER.len())].to_owned()
            } else {
                let sku = &skus[rng.usize(..skus.len())];
                let q = rng.usize(1..=4);
                let (zh, en) = (sku.display_name(true), sku.display_name(false));
                match rng.usize(..4) {
                    0 => format!("帮我买{q}杯{zh}"),
                    1 => format!("{zh}{q}份，谢谢"),
                    2 => format!("I'd like {q} {en} please"),
                    _ => format!("order {en} x{q}"),
                }
            };
            let mut p = prompt(format!("mix-{seed}-{i}"), &user, &text);
            p.session_id = format!("session-{user}");
            p
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_deterministic_with_repeat_users() {
        let key = |ps: Vec<Prompt>| -> Vec<(String, String, String)> {
            ps.into_iter()
                .map(|p| (p.request_id, p.user_id, p.text))
                .collect()
        };
        let a = prompts(1_000, 7);
        assert_eq!(key(a.clone()), key(prompts(1_000, 7)));
        assert_ne!(key(a.clone()), key(prompts(1_000, 8)));
        let users: std::collections::HashSet<_> = a.iter().map(|p| &p.user_id).collect();
        assert!(users.len() < 600 && users.len() > 300, "{}", users.len());
        let zh = a.iter().filter(|p| !p.text.is_ascii()).count();
        assert!(zh > 200 && zh < 800, "{zh}");
    }
}
