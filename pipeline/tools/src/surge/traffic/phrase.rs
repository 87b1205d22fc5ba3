//! How people word what they want: the catalog's names, options and
//! measure words put into Chinese and English sentences, with numbers
//! written as people write them (`40`, `四十`, `两`, `twenty-five`, `a`).
//!
//! Every sentence is one the extractor is known to read (the traffic tests
//! read each kind back), because surge traffic is meant to load the
//! pipeline with what customers send, not to find the extractor's limits:
//! `chatcart extract` and the extractor's own tests do that.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand::rngs::SmallRng;

use extract::catalog::Catalog;
use extract::text::{is_han, phrase_key};

use super::words::{
    CHATTER_EN, CHATTER_ZH, EN_BEFORE, EN_DRINK, EN_FOOD, EN_JOIN, EN_MULTI, EN_SINGLE, En,
    UNKNOWN_EN, UNKNOWN_EN_FRAMES, UNKNOWN_ZH, UNKNOWN_ZH_FRAMES, ZH_DRINK, ZH_FOOD, ZH_JOIN,
    ZH_MULTI, ZH_SINGLE, Zh, article, en_numeral, zh_numeral,
};

/// One line a prompt is meant to order, as the extractor should read it.
/// Only the tests read it back, to check that it is.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub sku: String,
    pub quantity: i32,
    /// Option group → value id.
    pub options: BTreeMap<String, String>,
}

/// A sentence and the lines it orders (none for chatter and unknown items).
pub type Phrased = (String, Vec<Line>);

/// An option value, by the words each language has for it.
#[derive(Debug, Clone)]
struct Value {
    id: String,
    zh: Vec<String>,
    en: Vec<String>,
}

/// What can be said of one SKU.
#[derive(Debug, Clone)]
struct Goods {
    id: String,
    zh: Vec<String>,
    en: Vec<String>,
    plural: Vec<String>,
    /// Drinks come by the cup; the rest by the portion. Told apart by
    /// having options, which is true of the built-in catalog.
    drink: bool,
    /// (group, the values this SKU comes in); groups with no value left out.
    groups: Vec<(String, Vec<Value>)>,
}

/// Whether an item is the prompt's only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alone {
    /// Alone; `bare` when the verb before it lets "one" go unsaid (in
    /// Chinese: 来杯奶茶).
    Yes { bare: bool },
    /// One of a list.
    No,
}

/// A uniformly chosen element. Callers pass non-empty lists only: the
/// word tables are, the catalog's names are checked to be, and the lists
/// filtered by the catalog are tested for emptiness first.
fn one<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// A name: the usual (first) one half of the time, any of them otherwise.
fn alias<'a>(rng: &mut SmallRng, names: &'a [String]) -> &'a str {
    if rng.random_bool(0.5) {
        &names[0]
    } else {
        one(rng, names).as_str()
    }
}

/// How many of one item: mostly one to three, and now and then a group
/// order ("帮我买40杯奶茶").
fn quantity(rng: &mut SmallRng, tail: bool) -> u32 {
    let p: f64 = rng.random();
    match p {
        p if p < 0.50 => 1,
        p if p < 0.75 => 2,
        p if p < 0.87 => 3,
        p if p < 0.95 || !tail => rng.random_range(4..=10),
        _ => *one(rng, &[12, 15, 20, 20, 24, 30, 40, 40]),
    }
}

/// An item being worded: which SKU, how many, which option values (group
/// index, value index).
struct Pick {
    goods: usize,
    quantity: u32,
    options: Vec<(usize, usize)>,
}

/// Everything the sentences are made of, taken from the catalog once.
#[derive(Debug, Clone)]
pub struct Phrasebook {
    goods: Vec<Goods>,
    zh_drink: Vec<&'static str>,
    zh_food: Vec<&'static str>,
    en_drink: Vec<(&'static str, &'static str)>,
    en_food: Vec<(&'static str, &'static str)>,
    unknown_zh: Vec<(&'static str, &'static str)>,
    unknown_en: Vec<(&'static str, &'static str)>,
}

impl Phrasebook {
    pub fn new(catalog: &Catalog) -> Self {
        let mut words: BTreeSet<String> = catalog
            .measure_words()
            .iter()
            .map(|w| phrase_key(w))
            .collect();
        let goods = catalog
            .skus()
            .iter()
            .map(|sku| {
                words.extend(
                    sku.zh
                        .iter()
                        .chain(&sku.en)
                        .chain(&sku.en_plural)
                        .map(|w| phrase_key(w)),
                );
                let groups = sku
                    .options
                    .iter()
                    .filter_map(|(group, ids)| {
                        let known = catalog.options().get(group)?;
                        let values: Vec<Value> = ids
                            .iter()
                            .filter_map(|id| {
                                let words = &known.get(id)?.words;
                                let (zh, en) =
                                    words.iter().cloned().partition(|w| w.chars().any(is_han));
                                Some(Value {
                                    id: id.clone(),
                                    zh,
                                    en,
                                })
                            })
                            .collect();
                        (!values.is_empty()).then(|| (group.clone(), values))
                    })
                    .collect::<Vec<_>>();
                Goods {
                    id: sku.id.clone(),
                    zh: sku.zh.clone(),
                    en: sku.en.clone(),
                    plural: sku.en_plural.clone(),
                    drink: !groups.is_empty(),
                    groups,
                }
            })
            .collect();
        let measures: BTreeSet<&str> = catalog.measure_words().iter().map(String::as_str).collect();
        let has = |w: &&&str| measures.contains(**w);
        let has_pair = |(s, p): &&(&str, &str)| measures.contains(s) && measures.contains(p);
        // A custom catalog may name an unknown item here; leave those out.
        let unknown = |w: &str| !words.contains(&phrase_key(w));
        Self {
            goods,
            zh_drink: ZH_DRINK.iter().filter(has).copied().collect(),
            zh_food: ZH_FOOD.iter().filter(has).copied().collect(),
            en_drink: EN_DRINK.iter().filter(has_pair).copied().collect(),
            en_food: EN_FOOD.iter().filter(has_pair).copied().collect(),
            unknown_zh: UNKNOWN_ZH
                .iter()
                .filter(|(w, _)| unknown(w))
                .copied()
                .collect(),
            unknown_en: UNKNOWN_EN
                .iter()
                .filter(|(a, many)| {
                    let one = a.split_once(' ').map_or(*a, |(_, noun)| noun);
                    unknown(one) && unknown(many)
                })
                .copied()
                .collect(),
        }
    }

    pub fn skus(&self) -> usize {
        self.goods.len()
    }

    /// A new pick of `goods`, with options now and then.
    fn pick(&self, rng: &mut SmallRng, goods: usize, tail: bool) -> Pick {
        let g = &self.goods[goods];
        let mut options = Vec::new();
        if !g.groups.is_empty() && rng.random_bool(0.35) {
            for (i, (_, values)) in g.groups.iter().enumerate() {
                if rng.random_bool(0.5) {
                    options.push((i, rng.random_range(0..values.len())));
                }
            }
            if options.is_empty() {
                let i = rng.random_range(0..g.groups.len());
                options.push((i, rng.random_range(0..g.groups[i].1.len())));
            }
        }
        Pick {
            goods,
            quantity: quantity(rng, tail),
            options,
        }
    }

    fn line(&self, pick: &Pick) -> Line {
        let g = &self.goods[pick.goods];
        Line {
            sku: g.id.clone(),
            quantity: i32::try_from(pick.quantity).unwrap_or(i32::MAX),
            options: pick
                .options
                .iter()
                .map(|&(i, v)| (g.groups[i].0.clone(), g.groups[i].1[v].id.clone()))
                .collect(),
        }
    }

    /// One word for each option of `pick`, in the catalog's group order
    /// (size before sugar before temperature). Options with no word in
    /// the language are dropped from `pick` first, as they go unsaid.
    fn option_words(&self, rng: &mut SmallRng, pick: &mut Pick, zh: bool) -> Vec<String> {
        let g = &self.goods[pick.goods];
        let words = |i: usize, v: usize| {
            let value = &g.groups[i].1[v];
            if zh { &value.zh } else { &value.en }
        };
        pick.options.retain(|&(i, v)| !words(i, v).is_empty());
        pick.options
            .iter()
            .map(|&(i, v)| one(rng, words(i, v)).clone())
            .collect()
    }

    /// One purchase of one item.
    pub fn purchase(&self, rng: &mut SmallRng, zh: bool) -> Phrased {
        let goods = rng.random_range(0..self.goods.len());
        let mut pick = self.pick(rng, goods, true);
        let text = if zh {
            let &(frame, form) = one(rng, ZH_SINGLE);
            // 来杯奶茶, 帮我买杯奶茶: after these verbs one may go unsaid.
            let bare = frame.ends_with("来{}") || frame.ends_with("买{}");
            let item = self.say_zh(rng, &mut pick, form, Alone::Yes { bare });
            frame.replacen("{}", &item, 1)
        } else {
            let &(frame, form) = one(rng, EN_SINGLE);
            let item = self.say_en(rng, &mut pick, form, Alone::Yes { bare: false });
            frame.replacen("{}", &item, 1)
        };
        (text, vec![self.line(&pick)])
    }

    /// Two or three different items in one prompt.
    pub fn multi(&self, rng: &mut SmallRng, zh: bool) -> Phrased {
        let count = (if rng.random_bool(0.7) { 2 } else { 3 }).min(self.goods.len());
        let mut chosen: Vec<usize> = Vec::with_capacity(count);
        while chosen.len() < count {
            let g = rng.random_range(0..self.goods.len());
            if !chosen.contains(&g) {
                chosen.push(g);
            }
        }
        let mut picks: Vec<Pick> = chosen.iter().map(|&g| self.pick(rng, g, false)).collect();
        let text = if zh && rng.random_bool(0.15) {
            // 奶茶和拿铁各两杯: one quantity for all, so no options.
            let q = picks[0].quantity;
            let names: Vec<&str> = picks
                .iter_mut()
                .map(|p| {
                    p.quantity = q;
                    p.options.clear();
                    alias(rng, &self.goods[p.goods].zh)
                })
                .collect();
            // By the cup when all are drinks; by the portion otherwise.
            let drinks = picks.iter().all(|p| self.goods[p.goods].drink);
            let measure = match (drinks, self.zh_food.first()) {
                (false, Some(portion)) => portion,
                _ => self.zh_measure(rng, &self.goods[picks[0].goods]),
            };
            // 奶茶、拿铁和美式 or 奶茶、拿铁、美式
            let last = names.len() - 1;
            let and = if rng.random_bool(0.5) { "和" } else { "、" };
            let listed = format!("{}{and}{}", names[..last].join("、"), names[last]);
            let each = format!("{listed}各{}{measure}", zh_numeral(q, true));
            one(rng, ZH_MULTI).replacen("{}", &each, 1)
        } else if zh {
            let mut items = String::new();
            for (i, pick) in picks.iter_mut().enumerate() {
                if i > 0 {
                    let join = one(rng, ZH_JOIN);
                    items.push_str(join);
                }
                items.push_str(&self.say_zh(rng, pick, Zh::Before, Alone::No));
            }
            one(rng, ZH_MULTI).replacen("{}", &items, 1)
        } else {
            let mut items = String::new();
            let last = picks.len() - 1;
            for (i, pick) in picks.iter_mut().enumerate() {
                if i == last {
                    let join = one(rng, EN_JOIN);
                    items.push_str(join);
                } else if i > 0 {
                    items.push_str(", ");
                }
                items.push_str(&self.say_en(rng, pick, En::Count, Alone::No));
            }
            one(rng, EN_MULTI).replacen("{}", &items, 1)
        };
        (text, picks.iter().map(|p| self.line(p)).collect())
    }

    /// Not a purchase.
    pub fn chatter(&self, rng: &mut SmallRng, zh: bool) -> Phrased {
        let g = one(rng, &self.goods);
        let text = if zh {
            one(rng, CHATTER_ZH).replace("{zh}", alias(rng, &g.zh))
        } else {
            let en = alias(rng, &g.en).to_owned();
            let ens = if g.plural.is_empty() {
                en.clone()
            } else {
                alias(rng, &g.plural).to_owned()
            };
            one(rng, CHATTER_EN)
                .replace("{an}", &format!("{} {en}", article(&en)))
                .replace("{ens}", &ens)
                .replace("{en}", &en)
        };
        (text, Vec::new())
    }

    /// A purchase of something the catalog does not have.
    pub fn unknown(&self, rng: &mut SmallRng, zh: bool) -> Phrased {
        let q = quantity(rng, false);
        // In the other language when the catalog sells every thing listed
        // in this one.
        let zh = !self.unknown_zh.is_empty() && (zh || self.unknown_en.is_empty());
        let text = if zh {
            let &(noun, measure) = one(rng, &self.unknown_zh);
            let item = format!("{}{measure}{noun}", self.zh_number(rng, q));
            one(rng, UNKNOWN_ZH_FRAMES).replacen("{}", &item, 1)
        } else if !self.unknown_en.is_empty() {
            let &(single, plural) = one(rng, &self.unknown_en);
            let item = if q == 1 {
                single.to_owned()
            } else {
                format!("{} {plural}", self.en_number(rng, q))
            };
            one(rng, UNKNOWN_EN_FRAMES).replacen("{}", &item, 1)
        } else {
            // This catalog sells everything listed; a made-up thing then.
            "buy me a flux capacitor".to_owned()
        };
        (text, Vec::new())
    }

    fn zh_number(&self, rng: &mut SmallRng, q: u32) -> String {
        if rng.random_bool(0.4) {
            q.to_string()
        } else {
            zh_numeral(q, true)
        }
    }

    fn en_number(&self, rng: &mut SmallRng, q: u32) -> String {
        if rng.random_bool(0.6) {
            q.to_string()
        } else {
            en_numeral(q, rng.random_bool(0.5))
        }
    }

    fn zh_measure(&self, rng: &mut SmallRng, g: &Goods) -> &'static str {
        let list = if g.drink {
            &self.zh_drink
        } else {
            &self.zh_food
        };
        if list.is_empty() {
            ""
        } else {
            list[rng.random_range(0..list.len())]
        }
    }

    /// The item in Chinese: number, measure word, options and name.
    fn say_zh(&self, rng: &mut SmallRng, pick: &mut Pick, form: Zh, alone: Alone) -> String {
        let bare = matches!(alone, Alone::Yes { bare: true });
        let alone = matches!(alone, Alone::Yes { .. });
        let words = self.option_words(rng, pick, true);
        let g = &self.goods[pick.goods];
        let measure = self.zh_measure(rng, g);
        // Digits run into the English word before them (`order2`).
        let number = if form == Zh::Mixed {
            zh_numeral(pick.quantity, true)
        } else {
            self.zh_number(rng, pick.quantity)
        };
        let mut opts = words.concat();
        // 零糖果茶 would be cut 零 / 糖果 / 茶: 的 keeps a sugar word apart
        // from the name, as people write it (不加糖的拿铁).
        if opts.ends_with('糖') {
            opts.push('的');
        }
        let name = if form == Zh::Mixed {
            alias(rng, &g.en)
        } else {
            alias(rng, &g.zh)
        };
        // 两大杯拿铁: a size said in cups stands for the measure word.
        let fused = !measure.is_empty() && words.first().is_some_and(|w| w.ends_with(measure));
        match form {
            // 两杯珍珠奶茶，半糖去冰
            Zh::Before | Zh::Mixed if alone && !opts.is_empty() && rng.random_bool(0.3) => {
                format!("{number}{measure}{name}，{}", words.concat())
            }
            Zh::Before | Zh::Mixed if fused => format!("{number}{opts}{name}"),
            // 来杯奶茶: one, said by the measure word alone.
            Zh::Before
                if bare && pick.quantity == 1 && !measure.is_empty() && rng.random_bool(0.3) =>
            {
                format!("{measure}{opts}{name}")
            }
            Zh::Before | Zh::Mixed => format!("{number}{measure}{opts}{name}"),
            Zh::After => format!("{opts}{name}{number}{measure}"),
            Zh::Wants => format!("{opts}{name}要{number}{measure}"),
        }
    }

    /// The item in English: number (or `x2` after it), options, name.
    fn say_en(&self, rng: &mut SmallRng, pick: &mut Pick, form: En, alone: Alone) -> String {
        let mut words = self.option_words(rng, pick, false);
        if alone == Alone::No {
            // In a list, a word after an item could be read as the next
            // one's; only the words that go before a name are said.
            let mut i = 0;
            pick.options.retain(|_| {
                let keep = EN_BEFORE.contains(&words[i].as_str());
                i += 1;
                keep
            });
            words.retain(|w| EN_BEFORE.contains(&w.as_str()));
        }
        let (before, after): (Vec<String>, Vec<String>) = words
            .into_iter()
            .partition(|w| EN_BEFORE.contains(&w.as_str()));
        let g = &self.goods[pick.goods];
        let q = pick.quantity;
        let singular = alias(rng, &g.en);
        let prefix = if before.is_empty() {
            String::new()
        } else {
            format!("{} ", before.join(" "))
        };
        let measures = if g.drink {
            &self.en_drink
        } else {
            &self.en_food
        };
        // `latte x1` is rare: one is said with a number or an article.
        let times =
            (form == En::Times && q > 1) || (q > 1 && g.plural.is_empty() && measures.is_empty());
        let mut text = if times {
            format!("{prefix}{singular} x{q}")
        } else if !measures.is_empty() && (rng.random_bool(0.15) || (q > 1 && g.plural.is_empty()))
        {
            // 3 cups of milk tea, 2 boxes of egg tarts
            let &(single, many) = one(rng, measures);
            let noun = if g.drink || g.plural.is_empty() {
                singular
            } else {
                alias(rng, &g.plural)
            };
            let count = if q == 1 {
                article(single).to_owned()
            } else {
                self.en_number(rng, q)
            };
            format!(
                "{count} {} of {prefix}{noun}",
                if q == 1 { single } else { many }
            )
        } else if q == 1 {
            let lead = format!("{prefix}{singular}");
            let count = match rng.random_range(0..4) {
                0 => "one",
                1 => "1",
                _ => article(&lead),
            };
            format!("{count} {lead}")
        } else {
            format!(
                "{} {prefix}{}",
                self.en_number(rng, q),
                alias(rng, &g.plural)
            )
        };
        for word in &after {
            text.push_str(", ");
            text.push_str(word);
        }
        text
    }
}
