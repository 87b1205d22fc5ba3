//! A bounded memory of recent request ids, oldest forgotten first: how a
//! fold or stage recognises a redelivered record without remembering every
//! request ever seen. Redelivery starts at a committed input offset, which
//! trails the head by a bounded number of records, so a window somewhat
//! larger than that catches every redelivery.

use std::collections::VecDeque;
use std::sync::Arc;

/// The last `capacity` distinct ids remembered, oldest first.
#[derive(Debug, Clone)]
pub struct Recent {
    capacity: usize,
    order: VecDeque<Arc<str>>,
    set: super::FastSet<Arc<str>>,
}

impl Recent {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            set: super::FastSet::default(),
        }
    }

    /// Whether `id` is among the remembered ids.
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// Remembers `id`, forgetting the oldest id when full; returns false
    /// (and changes nothing) when `id` is remembered already.
    pub fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        let id: Arc<str> = Arc::from(id);
        self.order.push_back(Arc::clone(&id));
        self.set.insert(id);
        true
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The remembered ids, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(|id| &**id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_ids_once_each() {
        let mut r = Recent::new(3);
        assert!(r.insert("a") && r.insert("b"));
        assert!(!r.insert("a"), "a repeat is not remembered twice");
        assert!(r.insert("c") && r.insert("d"));
        assert_eq!(r.iter().collect::<Vec<_>>(), ["b", "c", "d"]);
        assert!(!r.contains("a") && r.contains("b"));
        assert_eq!(r.len(), 3);
    }
}
