//! The judgement of a prompt as a whole, once its items are bound:
//! whether it is a purchase at all, why not, and how sure the rules are.

use std::collections::BTreeMap;

use schemas::reason::Rejection;

use super::{Reader, Reading};
use crate::Confidence;
use crate::catalog::Catalog;
use crate::lexicon::{Lex, Lexicon};
use crate::validate::{RawItem, RawOrder};

impl Reader<'_, '_> {
    pub(super) fn any(&self, lex: Lex) -> bool {
        self.toks
            .iter()
            .zip(&self.marks)
            .any(|(t, m)| t.lex == lex && !m.delivery)
    }

    /// A verb of buying, or 点 not after a number.
    pub(super) fn purchase(&self) -> bool {
        self.toks.iter().enumerate().any(|(i, t)| {
            !self.marks[i].delivery
                && match t.lex {
                    Lex::Purchase | Lex::Again => true,
                    Lex::Point => !matches!(self.lex(i.wrapping_sub(1)), Some(Lex::Num(_))),
                    _ => false,
                }
        })
    }

    pub(super) fn judge(self, lexicon: &Lexicon, catalog: &Catalog, unknown: usize) -> Reading {
        let reject = |reason, confidence| Reading {
            result: Err(reason),
            confidence,
        };
        if self.any(Lex::NonPurchase) {
            return reject(Rejection::NotAPurchase, Confidence::High);
        }
        let purchase = self.purchase();
        let question = self.any(Lex::Question);
        let asked = self.any(Lex::QuestionMark);
        let wanted = || self.mentions.iter().filter(|m| !m.negated);
        if wanted().next().is_none() {
            return if unknown > 0 {
                reject(Rejection::UnknownItem, Confidence::Low)
            } else if !self.mentions.is_empty() {
                // Everything named was refused (`不要奶茶`).
                reject(Rejection::NotUnderstood, Confidence::Low)
            } else if question || asked || self.any(Lex::Greeting) || self.any(Lex::Thanks) {
                reject(Rejection::NotAPurchase, Confidence::High)
            } else if purchase || self.toks.iter().any(|t| matches!(t.lex, Lex::Measure(_))) {
                reject(Rejection::NoItem, Confidence::High)
            } else {
                reject(Rejection::NotUnderstood, Confidence::Low)
            };
        }
        let counted = wanted().any(|m| m.quantity.is_some_and(|q| q.1));
        // `奶茶多少钱？`, `do you have lattes?`: asking, not ordering.
        if question && !purchase {
            let confidence = if counted {
                Confidence::Low
            } else {
                Confidence::High
            };
            return reject(Rejection::NotAPurchase, confidence);
        }
        if asked && !purchase && !counted {
            return reject(Rejection::NotAPurchase, Confidence::Low);
        }
        if unknown > 0 {
            return reject(Rejection::UnknownItem, Confidence::Low);
        }
        // Words nobody explained, next to items, may change what is meant
        // (`抹茶拿铁`, `2 matcha lattes`).
        let leftover = self.clauses.iter().enumerate().any(|(c, clause)| {
            self.mentions.iter().any(|m| m.clause == c)
                && (clause.start..clause.end).any(|i| {
                    !self.marks[i].delivery
                        && !self.marks[i].claimed
                        && matches!(self.toks[i].lex, Lex::Word { noun: true } | Lex::Opaque)
                })
        });
        let mut low = self.low || leftover || (asked && !purchase);
        let mut items = Vec::new();
        for m in wanted() {
            let quantity = match m.quantity {
                Some((q, _)) => q,
                None => {
                    // `lattes` with no number: more than one, but how many?
                    low |= m.plural;
                    m.times
                }
            };
            let mut options = BTreeMap::new();
            for o in &m.options {
                let Some((group, value)) = lexicon.option(*o) else {
                    continue;
                };
                if let Some(old) = options.insert(group.to_owned(), value.to_owned())
                    && old != value
                {
                    low = true; // `大杯小杯拿铁`
                }
            }
            let Some(sku) = catalog.skus().get(m.sku) else {
                continue;
            };
            items.push(RawItem {
                sku: sku.id.clone(),
                quantity,
                options,
            });
        }
        let coupon_code = self
            .toks
            .iter()
            .find(|t| t.lex == Lex::Code)
            .map(|t| t.text.to_owned());
        Reading {
            result: Ok(RawOrder { items, coupon_code }),
            confidence: if low {
                Confidence::Low
            } else {
                Confidence::High
            },
        }
    }
}
