//! The rules that read a purchase out of a prompt's tokens.
//!
//! The prompt is read clause by clause (clauses end at punctuation and at
//! 和 / and / plus / 再来 …). In each clause, every catalog item takes the
//! quantity next to it: before it (`40杯奶茶`, `two large lattes`, `x2
//! latte`) or after it (`奶茶40杯`, `lemon tea x4`), and the option words
//! around it. A number that both the item before and the item after could
//! take goes to the one that has no other (`奶茶2杯拿铁3杯`), and the choice
//! is marked as a guess. Numbers next to addresses, times and prices
//! (`3号楼`, `3点`, `¥30`, `room 12`) and everything in a delivery detail
//! (`送到…`, `deliver to…`) are never quantities.
//!
//! Then the whole prompt is judged: refunds, cancellations and tracking are
//! never purchases; a question about an item without a purchase verb is
//! not one either; a quantity or purchase verb with an unknown noun is an
//! unknown item, and with no noun at all, no item.
//!
//! Anything the rules had to guess (an ambiguous number, a word left over
//! next to an item, a plural without a number, an option the item does not
//! come in…) makes the result low-confidence, so that a slower reader (an
//! LLM) can be asked about exactly those prompts.

mod judge;

use super::Confidence;
use super::lexicon::{Lex, Lexicon};
use super::scan::Tok;
use super::validate::RawOrder;
use crate::catalog::Catalog;
use schemas::reason::Rejection;

/// What the rules made of a prompt, before validation.
pub struct Reading {
    pub result: Result<RawOrder, Rejection>,
    pub confidence: Confidence,
}

/// How a clause began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Intro {
    Start,
    Punct,
    /// 和, and, plus: a new item is being listed.
    Conj,
}

#[derive(Debug, Clone, Copy)]
struct Clause {
    start: usize,
    end: usize,
    intro: Intro,
}

/// One catalog item named in the prompt.
#[derive(Debug, Clone)]
struct Mention {
    at: usize,
    sku: usize,
    plural: bool,
    clause: usize,
    /// The number before it, if it could take one.
    pre: Option<usize>,
    /// The number after it, and whether `x`/`×` tied it to this item.
    post: Option<(usize, bool)>,
    /// Measure multiplier next to the number (`一打` = 12).
    times: i64,
    /// A measure word with or without a number (`来杯奶茶`).
    measured: bool,
    /// (value, strong): strong unless it came from `a`/`an`.
    quantity: Option<(i64, bool)>,
    options: Vec<u16>,
    negated: bool,
}

/// What the rules found out about one token.
#[derive(Debug, Clone, Copy, Default)]
struct Marks {
    /// Inside a delivery detail: ignored.
    delivery: bool,
    /// A number that may be a quantity.
    quantity: bool,
    /// A number or option already given to an item.
    claimed: bool,
}

/// The prompt, with what each token turned out to be.
struct Reader<'t, 'a> {
    toks: &'t [Tok<'a>],
    /// One per token.
    marks: Vec<Marks>,
    clauses: Vec<Clause>,
    mentions: Vec<Mention>,
    low: bool,
}

/// Reads `toks`.
pub fn read(lexicon: &Lexicon, catalog: &Catalog, toks: &[Tok<'_>]) -> Reading {
    let mut r = Reader::new(lexicon, toks);
    r.find_mentions();
    r.bind_quantities();
    r.bind_each();
    let unknown_mentions = r.orphans();
    r.bind_options();
    r.negate();
    r.judge(lexicon, catalog, unknown_mentions)
}

/// Whether token `i` is a number that may count items.
fn may_count(lexicon: &Lexicon, toks: &[Tok<'_>], i: usize) -> bool {
    if !matches!(toks[i].lex, Lex::Num(_)) {
        return false;
    }
    let next = toks.get(i + 1);
    let prev = i.checked_sub(1).and_then(|p| toks.get(p)).map(|t| t.lex);
    // 3号楼, 3点, 30元, 3pm: a unit after the number says what it counts,
    // and it is not items. jieba may have glued the unit to the word after
    // it (`3点前`), so a word starting with a unit counts as one.
    let unit = |lex| matches!(lex, Some(Lex::AddressUnit | Lex::NotQtyUnit | Lex::Point));
    let unit_next = next.is_some_and(|t| match t.lex {
        Lex::Word { .. } => t.text.chars().next().is_some_and(|c| {
            let mut buf = [0; 4];
            unit(lexicon.get(c.encode_utf8(&mut buf)))
        }),
        lex => unit(Some(lex)),
    });
    if unit_next {
        return false;
    }
    // An item or measure word right after it makes it a quantity even after
    // an address (`3楼 2杯奶茶`); otherwise a number after `room`, `#`, `¥`
    // or 送到 is not one.
    let counts = next.is_some_and(|t| {
        matches!(
            t.lex,
            Lex::Measure(_) | Lex::Item { .. } | Lex::Opt(_) | Lex::Times
        )
    });
    counts || !matches!(prev, Some(Lex::AddressUnit | Lex::Delivery | Lex::Currency))
}

impl<'t, 'a> Reader<'t, 'a> {
    fn new(lexicon: &Lexicon, toks: &'t [Tok<'a>]) -> Self {
        let n = toks.len();
        let mut inside = false;
        let marks = (0..n)
            .map(|i| {
                match toks[i].lex {
                    Lex::Delivery => inside = true,
                    Lex::Sep | Lex::QuestionMark => inside = false,
                    _ => {}
                }
                Marks {
                    delivery: inside,
                    quantity: !inside && may_count(lexicon, toks, i),
                    claimed: false,
                }
            })
            .collect();
        let mut clauses = Vec::new();
        let mut start = 0;
        let mut intro = Intro::Start;
        for (i, t) in toks.iter().enumerate() {
            let next_intro = match t.lex {
                Lex::Sep | Lex::QuestionMark => Intro::Punct,
                Lex::Conj | Lex::Again => Intro::Conj,
                _ => continue,
            };
            clauses.push(Clause {
                start,
                end: i,
                intro,
            });
            start = i + 1;
            intro = next_intro;
        }
        clauses.push(Clause {
            start,
            end: n,
            intro,
        });
        Self {
            toks,
            marks,
            clauses,
            mentions: Vec::new(),
            low: false,
        }
    }

    fn lex(&self, i: usize) -> Option<Lex> {
        self.toks.get(i).map(|t| t.lex)
    }

    fn value(&self, i: usize) -> i64 {
        match self.lex(i) {
            Some(Lex::Num(n)) => n,
            _ => 0,
        }
    }

    /// Finds every item and the numbers it could take.
    fn find_mentions(&mut self) {
        for c in 0..self.clauses.len() {
            let clause = self.clauses[c];
            for at in clause.start..clause.end {
                let Some(Lex::Item { sku, plural }) = self.lex(at) else {
                    continue;
                };
                if self.marks[at].delivery {
                    continue;
                }
                let mut m = Mention {
                    at,
                    sku: usize::from(sku),
                    plural,
                    clause: c,
                    pre: None,
                    post: None,
                    times: 1,
                    measured: false,
                    quantity: None,
                    options: Vec::new(),
                    negated: false,
                };
                // Before: options, measure words, `x`, `of`, `的` and
                // unknown words may stand between a number and its item
                // (`2 hot lattes`, `两大杯冰拿铁`, `一打蛋挞`).
                let mut zone = at;
                let mut j = at;
                while j > clause.start {
                    j -= 1;
                    match self.toks[j].lex {
                        Lex::Opt(o) => m.options.push(o),
                        Lex::Measure(times) => {
                            m.times = m.times.saturating_mul(times);
                            m.measured = true;
                        }
                        Lex::Vague => {
                            m.quantity = Some((1, false));
                            self.low = true;
                        }
                        Lex::Times | Lex::Word { .. } => {}
                        Lex::Filler if matches!(self.toks[j].text, "of" | "的") => {}
                        Lex::Num(_) if self.marks[j].quantity => {
                            m.pre = Some(j);
                            break;
                        }
                        // `拿铁少糖美式`: whose is 少糖? A guess.
                        Lex::Item { .. } if !m.options.is_empty() && !m.measured => {
                            self.low = true;
                            break;
                        }
                        _ => break,
                    }
                    zone = j;
                }
                // The options and measure words passed over are this item's.
                for j in zone..at {
                    if matches!(self.toks[j].lex, Lex::Opt(_) | Lex::Measure(_)) {
                        self.marks[j].claimed = true;
                    }
                }
                // After: `奶茶40杯`, `奶茶要两杯`, `lemon tea x4`.
                let mut k = at + 1;
                if matches!(self.lex(k), Some(Lex::Purchase | Lex::Filler)) {
                    k += 1;
                }
                let tied = self.lex(k) == Some(Lex::Times);
                if tied {
                    k += 1;
                }
                if k < clause.end && self.marks[k].quantity {
                    m.post = Some((k, tied));
                }
                self.mentions.push(m);
            }
        }
    }

    /// Gives each item one number, settling numbers two items could take.
    fn bind_quantities(&mut self) {
        for i in 0..self.mentions.len() {
            let m = &self.mentions[i];
            if m.quantity.is_some() {
                continue;
            }
            if let Some(p) = m.pre.filter(|p| !self.marks[*p].claimed) {
                let times = m.times;
                self.take(i, p, times);
                continue;
            }
            let Some((p, tied)) = m.post.filter(|(p, _)| !self.marks[*p].claimed) else {
                continue;
            };
            let next = self.mentions[i + 1..].iter().find(|n| n.clause == m.clause);
            match next {
                // `奶茶2杯拿铁`: the next item has no number of its own, so
                // this one probably belongs to it; a guess either way.
                Some(n) if n.pre == Some(p) && !tied && n.post.is_none() => self.low = true,
                _ => {
                    // The measure word after the number is part of it.
                    let times = match self.lex(p + 1) {
                        Some(Lex::Measure(times)) => {
                            self.marks[p + 1].claimed = true;
                            self.mentions[i].measured = true;
                            times
                        }
                        _ => 1,
                    };
                    self.take(i, p, times);
                }
            }
        }
    }

    /// Gives number `num` (times `times`) to mention `mention`.
    fn take(&mut self, mention: usize, num: usize, times: i64) {
        let value = self.value(num).saturating_mul(times);
        let strong = !self.toks[num].weak;
        self.mentions[mention].quantity = Some((value, strong));
        self.marks[num].claimed = true;
    }

    /// `奶茶和拿铁各两杯`, `a latte and a burger, 2 each`: one number for
    /// every item named before that has none (or only `a`).
    fn bind_each(&mut self) {
        for e in 0..self.toks.len() {
            if self.lex(e) != Some(Lex::Each) {
                continue;
            }
            let num = [e + 1, e.wrapping_sub(1)]
                .into_iter()
                .find(|&i| self.marks.get(i).is_some_and(|m| m.quantity) && !self.marks[i].claimed);
            let Some(num) = num else { continue };
            self.marks[num].claimed = true;
            let value = self.value(num);
            for m in self.mentions.iter_mut().filter(|m| m.at < e) {
                if m.quantity.is_none_or(|(_, strong)| !strong) {
                    m.quantity = Some((value, true));
                }
            }
        }
    }

    /// Numbers no item took. One that counts an unknown word (`一个披萨`,
    /// `3 pizzas`) is an unknown item; one alone in a clause after an item
    /// with no number is that item's (`奶茶，40杯`); any other is a guess.
    /// Returns how many unknown items were named this way or in clauses of
    /// their own (`奶茶和披萨`, `帮我买披萨`).
    fn orphans(&mut self) -> usize {
        let purchase = self.purchase();
        let mut unknown = 0;
        for i in 0..self.toks.len() {
            if !self.marks[i].quantity || self.marks[i].claimed {
                continue;
            }
            let mut k = i + 1;
            while matches!(self.lex(k), Some(Lex::Measure(_) | Lex::Opt(_)))
                || self
                    .toks
                    .get(k)
                    .is_some_and(|t| matches!(t.text, "of" | "的"))
            {
                k += 1;
            }
            let counts_word = matches!(self.lex(k), Some(Lex::Word { noun: true }));
            if counts_word && (!self.toks[i].weak || purchase) {
                unknown += 1;
                self.marks[i].claimed = true;
                continue;
            }
            let clause = self.clause_of(i);
            let alone = !self.mentions.iter().any(|m| m.clause == clause);
            let previous = self
                .mentions
                .iter()
                .rposition(|m| m.clause < clause)
                .filter(|&p| self.mentions[p].quantity.is_none() && alone);
            match previous {
                Some(p) if !self.toks[i].weak && !self.has_unknown_noun(clause) => {
                    let times = match self.lex(i + 1) {
                        Some(Lex::Measure(t)) => t,
                        _ => 1,
                    };
                    let value = self.value(i).saturating_mul(times);
                    self.mentions[p].quantity = Some((value, true));
                    self.marks[i].claimed = true;
                }
                _ => self.low = true,
            }
        }
        for (c, clause) in self.clauses.iter().enumerate() {
            if self.mentions.iter().any(|m| m.clause == c) {
                continue;
            }
            let toks = clause.start..clause.end;
            let noun = toks.clone().find(|&i| {
                !self.marks[i].delivery
                    && !self.marks[i].claimed
                    && self.toks[i].lex == Lex::Word { noun: true }
            });
            let Some(noun) = noun else { continue };
            let counted = toks
                .clone()
                .any(|i| self.marks[i].quantity && !self.toks[i].weak);
            let listed = clause.intro == Intro::Conj
                || counted
                || toks.clone().any(|i| {
                    i < noun
                        && !self.marks[i].delivery
                        && matches!(self.toks[i].lex, Lex::Purchase | Lex::Measure(_))
                });
            if listed {
                unknown += 1;
            }
        }
        unknown
    }

    fn clause_of(&self, i: usize) -> usize {
        self.clauses
            .iter()
            .position(|c| i < c.end)
            .unwrap_or(self.clauses.len() - 1)
    }

    fn has_unknown_noun(&self, clause: usize) -> bool {
        let c = self.clauses[clause];
        (c.start..c.end).any(|i| self.toks[i].lex == Lex::Word { noun: true })
    }

    /// Gives each option word to an item: the one it stands before (already
    /// claimed in `find_mentions`), else the item before it in its clause,
    /// else the one after it, else the nearest item before, else after.
    fn bind_options(&mut self) {
        for i in 0..self.toks.len() {
            let Lex::Opt(o) = self.toks[i].lex else {
                continue;
            };
            if self.marks[i].claimed || self.marks[i].delivery {
                continue;
            }
            let clause = self.clause_of(i);
            let c = self.clauses[clause];
            if (c.start..c.end).any(|j| self.toks[j].lex == Lex::Both) {
                // `都要大杯`, `both iced`: for every item named so far.
                for m in self.mentions.iter_mut().filter(|m| m.at < i) {
                    m.options.push(o);
                }
                continue;
            }
            let in_clause = |m: &&Mention| m.clause == clause;
            let owner = self
                .mentions
                .iter()
                .rposition(|m| in_clause(&m) && m.at < i)
                .or_else(|| self.mentions.iter().position(|m| in_clause(&m) && m.at > i))
                .or_else(|| self.mentions.iter().rposition(|m| m.at < i))
                .or_else(|| self.mentions.iter().position(|m| m.at > i));
            match owner {
                Some(m) => self.mentions[m].options.push(o),
                None => self.low = true,
            }
        }
    }

    /// `不要奶茶`, `no milk tea`: the first item after a negation in its
    /// clause is not ordered.
    fn negate(&mut self) {
        for i in 0..self.toks.len() {
            if self.toks[i].lex != Lex::Negation || self.marks[i].delivery {
                continue;
            }
            let clause = self.clause_of(i);
            if let Some(m) = self
                .mentions
                .iter_mut()
                .find(|m| m.clause == clause && m.at > i)
            {
                m.negated = true;
                self.low = true;
            }
        }
    }
}
