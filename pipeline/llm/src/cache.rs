//! The answer cache of the LLM fallback, and the text normalisation that
//! keys it.
//!
//! During a campaign many people send the same few phrasings, so a small
//! cache saves most requests. Keys are normalised so that "Milk  Tea",
//! " milk tea" and full-width "ｍｉｌｋ ｔｅａ" share one entry; the
//! normalised text is also what is sent, so a cached answer is exactly the
//! answer that text would get.

use std::collections::{BTreeMap, HashMap};

use super::Answer;

/// Trims, lower-cases, collapses runs of whitespace to one space, and turns
/// full-width ASCII forms (U+FF01..U+FF5E) and the ideographic space into
/// their ASCII counterparts, as Chinese input methods often produce them.
pub fn normalise(text: &str) -> String {
    let half_width: String = text
        .chars()
        .map(|c| match c {
            '\u{3000}' => ' ',
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            c => c,
        })
        .collect();
    let mut out = String::with_capacity(half_width.len());
    for word in half_width.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// A least-recently-used map from normalised text to answer, holding at
/// most `capacity` entries (none when 0).
#[derive(Debug)]
pub struct Cache {
    capacity: usize,
    /// Text → (answer, tick of its last use).
    entries: HashMap<String, (Answer, u64)>,
    /// Tick of last use → text; the first entry is the least recently used.
    by_use: BTreeMap<u64, String>,
    tick: u64,
}

impl Cache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
        }
    }

    /// The answer for `key`, which becomes the most recently used.
    pub fn get(&mut self, key: &str) -> Option<Answer> {
        self.tick += 1;
        let (answer, used) = self.entries.get_mut(key)?;
        self.by_use.remove(used);
        *used = self.tick;
        self.by_use.insert(self.tick, key.to_owned());
        Some(answer.clone())
    }

    /// Stores `answer`, evicting the least recently used entry when full.
    pub fn insert(&mut self, key: String, answer: Answer) {
        if self.capacity == 0 {
            return;
        }
        self.tick += 1;
        if let Some((_, used)) = self.entries.remove(&key) {
            self.by_use.remove(&used);
        }
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.by_use.insert(self.tick, key.clone());
        self.entries.insert(key, (answer, self.tick));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(reason: &str) -> Answer {
        Answer::Rejected(reason.into())
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalise("  Milk \t TEA\n please "), "milk tea please");
        assert_eq!(normalise("ｍｉｌｋ　ＴＥＡ，２杯"), "milk tea,2杯");
        assert_eq!(normalise("帮我买2杯珍珠奶茶"), "帮我买2杯珍珠奶茶");
        assert_eq!(normalise(" \u{3000} "), "");
    }

    #[test]
    fn least_recently_used_is_evicted() {
        let mut cache = Cache::new(2);
        cache.insert("a".into(), answer("a"));
        cache.insert("b".into(), answer("b"));
        assert_eq!(cache.get("a"), Some(answer("a")));
        cache.insert("c".into(), answer("c"));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("b"), None, "b was the least recently used");
        assert_eq!(cache.get("a"), Some(answer("a")));
        assert_eq!(cache.get("c"), Some(answer("c")));
        // Replacing an entry does not evict another.
        cache.insert("c".into(), answer("c2"));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("c"), Some(answer("c2")));
        assert_eq!(cache.get("a"), Some(answer("a")));
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut cache = Cache::new(0);
        cache.insert("a".into(), answer("a"));
        assert_eq!(cache.get("a"), None);
    }
}
