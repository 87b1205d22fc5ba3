//! The words the extractor knows, and what each one means to it.
//!
//! Two sources: the catalog (item names, option words, measure words) and
//! the built-in tables below (purchase verbs, greetings, refund and
//! tracking words, delivery details, polite filler…), in Chinese and
//! English. Both are keyed with [`phrase_key`], so matching is one hash
//! look-up per candidate phrase; the prefixes of the keys are in the table
//! too, so the candidates stop growing as soon as no phrase can follow.
//! Catalog words win over built-in ones.
//!
//! The Chinese words of both sources are also added to the jieba segmenter
//! as user words, so that it cuts them as one token: without that, jieba
//! would be free to cut "生椰拿铁" or "不加糖" differently in different
//! sentences. jieba's own dictionary does the rest of the segmentation
//! (and tags parts of speech, which tells nouns, possibly unknown items,
//! from other words).

use std::collections::HashMap;

use jieba_rs::Jieba;
use rustc_hash::FxHashMap;

use super::numbers::{self, Word};
use super::text::{is_han, phrase_key};
use crate::catalog::Catalog;

/// What a token means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lex {
    /// A catalog item (index into `Catalog::skus`), named in the plural
    /// ("lattes") or not.
    Item {
        sku: u16,
        plural: bool,
    },
    /// An option value (index into the lexicon's option table).
    Opt(u16),
    /// A measure word; `一打` counts twelve.
    Measure(i64),
    /// A number that may be a quantity.
    Num(i64),
    /// An English number word, before numbers are assembled.
    NumWord(Word),
    /// A quantity nobody can count: 几, some, a few.
    Vague,
    /// `x`, `×`, `*` next to a number: `latte x2`.
    Times,
    /// Punctuation that ends a clause.
    Sep,
    /// `?`: a question, unless it is plainly an order.
    QuestionMark,
    /// 和, and, plus, `+`: another item follows.
    Conj,
    /// 再来, 还要: another item follows, and it is being ordered.
    Again,
    /// 各, each: one quantity for every item named before.
    Each,
    /// 都, both: the options in its clause are for every item.
    Both,
    /// A verb or phrase of buying: 买, 来, order, i'd like.
    Purchase,
    /// 点: "order" on its own, "o'clock" after a number.
    Point,
    /// Refunds, cancellations, tracking, complaints, asking for a person.
    NonPurchase,
    Greeting,
    Thanks,
    /// A question word: 吗, 多少钱, how much, do you have.
    Question,
    /// 不要, don't, no: the item after it is not wanted.
    Negation,
    /// Starts a delivery detail (送到, deliver to, 地址): nothing up to the
    /// end of its clause is an item or a quantity.
    Delivery,
    /// 号, 楼, room, floor: numbers next to it are addresses.
    AddressUnit,
    /// Time, money, percent and ordinal units: the number before is not a
    /// quantity (3点, 30元, 3pm, 50%).
    NotQtyUnit,
    /// ¥, $: the number after is a price.
    Currency,
    /// Introduces a coupon code.
    CouponKw,
    /// A coupon code (its text is the token's span).
    Code,
    /// Polite filler and function words: known, and meaning nothing here.
    Filler,
    /// A word the extractor does not know; `noun` when it could name a thing.
    Word {
        noun: bool,
    },
    /// Letters and digits mixed (`b2`, `12a`): a code or an address part.
    Opaque,
}

/// The built-in words, by meaning. English phrases of several words are
/// matched as phrases ("no sugar" before "no"), and the longest match wins.
#[rustfmt::skip]
const KEYWORDS: &[(Lex, &[&str])] = &[
    (Lex::Purchase, &[
        "买", "购买", "要", "想要", "我要", "我想要", "来", "来个", "点个", "订", "预订", "订购", "下单", "下个单", "帮我买",
        "帮我点", "给我来", "整", "拿", "带", "购", "buy", "order", "get", "want", "wanna", "like",
        "have", "take", "need", "grab", "purchase", "gimme", "give me", "bring me", "send me",
        "add", "i'll have", "i'll take", "can i have", "can i get", "could i get",
        "could i have", "i'd like", "i would like", "would like", "deliver",
    ]),
    (Lex::Point, &[
        "点",
    ]),
    (Lex::Again, &[
        "再来", "再要", "还要", "另外", "再加", "外加", "one more", "another one",
    ]),
    (Lex::Conj, &[
        "和", "跟", "与", "及", "以及", "还有", "加", "加上", "and", "plus", "as well as", "along with",
        "also",
    ]),
    (Lex::Each, &[
        "各", "每样", "每种", "each", "of each",
    ]),
    (Lex::Both, &[
        "都", "都要", "全部", "全都", "统一", "both", "all", "both of them", "all of them",
    ]),
    (Lex::NonPurchase, &[
        "退款", "退钱", "退货", "退单", "退掉", "退了", "取消", "撤销", "投诉", "物流", "到哪", "到哪了", "到哪里", "在哪",
        "哪了", "进度", "催单", "催一下", "还没到", "没收到", "没送到", "查订单", "查询", "客服", "人工", "发票", "差评", "换货",
        "订单", "refund", "refunds", "cancel", "cancelled", "canceled", "cancellation", "return",
        "track", "tracking", "status", "complaint", "complain", "talk to", "speak to", "agent",
        "human", "person", "manager", "invoice", "receipt", "where is my", "where's my",
        "my order", "hasn't arrived", "not arrived", "late", "delayed",
    ]),
    (Lex::Greeting, &[
        "你好", "您好", "嗨", "哈喽", "哈啰", "早上好", "下午好", "晚上好", "早安", "晚安", "在吗", "在不在", "在么", "再见",
        "拜拜", "hi", "hello", "hey", "hiya", "yo", "good morning", "good afternoon",
        "good evening", "morning", "bye", "goodbye",
    ]),
    (Lex::Thanks, &[
        "谢谢", "谢啦", "多谢", "感谢", "谢了", "谢谢你", "thanks", "thank", "thank you", "thx", "ty",
        "cheers", "much appreciated",
    ]),
    (Lex::Question, &[
        "吗", "么", "什么", "多少钱", "多少", "几点", "怎么", "怎样", "为什么", "哪", "哪个", "哪些", "哪里", "有没有",
        "是不是", "价格", "价钱", "菜单", "有吗", "what", "what's", "whats", "how", "why", "when", "which",
        "where", "how much", "how many", "do you have", "you have", "do you sell", "is there",
        "are there", "price", "prices", "menu", "cost", "costs",
    ]),
    (Lex::Negation, &[
        "不要", "不用", "别", "不想", "不想要", "不需要", "don't", "dont", "do not", "not", "no", "without",
        "instead of", "never", "except",
    ]),
    (Lex::Delivery, &[
        "送到", "送至", "送去", "配送到", "派送到", "寄到", "地址", "收货地址", "送货地址", "地址是", "电话", "手机", "手机号",
        "联系电话", "收件人", "门牌", "deliver to", "delivery to", "send to", "send it to", "ship to",
        "bring to", "bring it to", "drop at", "drop off at", "address", "phone", "tel",
        "call me", "my number", "leave it at", "leave at", "deliver it to", "deliver them to",
    ]),
    (Lex::AddressUnit, &[
        "号", "号楼", "楼", "栋", "幢", "座", "单元", "室", "层", "楼层", "房", "房间", "门", "路", "街", "巷", "弄",
        "区", "小区", "room", "rm", "building", "bldg", "floor", "unit", "apt", "apartment",
        "suite", "street", "road", "rd", "avenue", "ave", "block", "blk", "tower", "gate",
        "desk",
    ]),
    (Lex::NotQtyUnit, &[
        "点钟", "点半", "分", "分钟", "小时", "秒", "元", "块钱", "毛", "角", "折", "度", "岁", "年", "月", "日",
        "天", "周", "星期", "米", "公里", "人", "位", "pm", "am", "o'clock", "minutes", "minute", "mins",
        "min", "hours", "hour", "hrs", "seconds", "yuan", "rmb", "cents", "cent", "dollars",
        "dollar", "bucks", "usd", "percent", "st", "nd", "rd", "th", "km", "miles", "degrees",
        "years", "days", "people", "persons", "guests",
    ]),
    (Lex::CouponKw, &[
        "优惠码", "优惠券", "券码", "兑换码", "折扣码", "促销码", "活动码", "用券", "coupon", "coupon code", "promo",
        "promo code", "promotion code", "voucher", "voucher code", "discount code", "code",
    ]),
    (Lex::Vague, &[
        "几", "一些", "一点", "some", "a few", "few", "several", "many", "lots of", "a lot of",
    ]),
    (Lex::Measure(12), &[
        "打",
    ]),
    (Lex::Num(2), &[
        "a couple of", "a couple", "couple of", "a pair of",
    ]),
    (Lex::Num(6), &[
        "half a dozen",
    ]),
    (Lex::Num(1), &[
        "another", "a single", "single",
    ]),
    (Lex::Times, &[
        "x",
    ]),
    (Lex::Filler, &[
        "帮", "帮我", "帮忙", "请", "麻烦", "麻烦你", "一下", "我", "我们", "你", "您", "的", "了", "吧", "啊", "呀",
        "哦", "哈", "嗯", "呢", "就", "也", "都", "还", "先", "再", "好", "好的", "可以", "行", "给", "给我", "一起",
        "马上", "尽快", "快点", "现在", "今天", "一共", "总共", "共", "老板", "亲", "那个", "这个", "些", "点儿", "就好",
        "就行", "送", "外卖", "打包", "带走", "堂食", "东西", "吃的", "喝的", "饮料", "是", "为", "能", "能不能", "可不可以",
        "想", "用", "到", "去", "上", "杯子", "i", "i'd", "i'll", "i'm", "me", "my", "we", "us", "our",
        "you", "your", "please", "pls", "plz", "the", "to", "for", "of", "with", "just", "can",
        "could", "would", "will", "it", "is", "are", "be", "do", "that", "this", "those",
        "these", "ok", "okay", "sure", "now", "today", "asap", "朋友", "同事", "家人", "大家", "孩子", "quickly", "fast", "soon", "too",
        "as", "well", "in", "on", "at", "from", "up", "go", "to go", "takeaway", "take away",
        "pickup", "pick up", "lunch", "breakfast", "dinner", "team", "friend", "friends", "um",
        "uh", "oh", "so", "then", "only", "total", "them", "yeah", "yes", "hey there",
        "there", "more", "something", "stuff", "food", "drink", "drinks", "thing", "things",
        "kindly", "mind", "love", "like to", "want to", "need to", "some more", "make it",
        "make them", "same", "one of", "ones",
    ]),
];

/// Tag given to catalog words added to jieba (a proper noun).
const ITEM_TAG: &str = "nz";

/// What a phrase key leads to.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Its meaning, if it is a phrase.
    lex: Option<Lex>,
    /// Whether a longer phrase starts with it: without one, there is no
    /// point in extending the key with the tokens that follow.
    longer: bool,
}

/// The extractor's tables for one catalog.
#[derive(Debug)]
pub struct Lexicon {
    jieba: Jieba,
    /// Phrase key → meaning, and every proper prefix of a phrase key.
    /// Hashed with a fast, unkeyed hash: the keys come from the catalog,
    /// so a prompt can only look up, never fill the table with collisions.
    phrases: FxHashMap<String, Entry>,
    /// Most tokens a phrase can span (a Chinese phrase split by jieba spans
    /// at most one token per character).
    max_tokens: usize,
    /// Option values as (group, value id), indexed by [`Lex::Opt`].
    options: Vec<(String, String)>,
}

impl Lexicon {
    /// Builds the tables: the built-in words, then the catalog's over them.
    pub fn new(catalog: &Catalog) -> Self {
        let mut phrases: HashMap<String, Lex> = HashMap::new();
        for (lex, words) in KEYWORDS {
            for word in *words {
                phrases.insert(phrase_key(word), *lex);
            }
        }
        for word in catalog.measure_words() {
            phrases.insert(phrase_key(word), Lex::Measure(1));
        }
        let mut options = Vec::new();
        for (group, values) in catalog.options() {
            for (id, value) in values {
                let index = u16::try_from(options.len()).unwrap_or(u16::MAX);
                options.push((group.clone(), id.clone()));
                for word in &value.words {
                    phrases.insert(phrase_key(word), Lex::Opt(index));
                }
            }
        }
        for (index, sku) in catalog.skus().iter().enumerate() {
            let sku_index = u16::try_from(index).unwrap_or(u16::MAX);
            for name in sku.zh.iter().chain(&sku.en) {
                let lex = Lex::Item {
                    sku: sku_index,
                    plural: false,
                };
                phrases.insert(phrase_key(name), lex);
            }
            for name in &sku.en_plural {
                let lex = Lex::Item {
                    sku: sku_index,
                    plural: true,
                };
                phrases.insert(phrase_key(name), lex);
            }
        }
        let mut jieba = Jieba::new();
        for (key, lex) in &phrases {
            // Single characters are cut alone anyway; longer words get the
            // frequency jieba suggests for keeping them whole, and items
            // are tagged as nouns.
            if key.chars().count() > 1 && key.chars().all(is_han) {
                let tag = matches!(lex, Lex::Item { .. }).then_some(ITEM_TAG);
                jieba.add_word(key, None, tag);
            }
        }
        let max_tokens = phrases
            .keys()
            .map(|k| {
                if k.chars().all(is_han) {
                    k.chars().count()
                } else {
                    k.split(' ').count()
                }
            })
            .max()
            .unwrap_or(1)
            .min(6);
        let mut entries = FxHashMap::<String, Entry>::default();
        for (key, lex) in phrases {
            for (end, _) in key.char_indices().skip(1) {
                entries.entry(key[..end].to_owned()).or_default().longer = true;
            }
            entries.entry(key).or_default().lex = Some(lex);
        }
        let phrases = entries;
        Self {
            jieba,
            phrases,
            max_tokens,
            options,
        }
    }

    /// What a phrase key means, if the extractor knows it.
    pub fn get(&self, key: &str) -> Option<Lex> {
        self.lookup(key).0
    }

    /// What a phrase key means, if the extractor knows it, and whether a
    /// longer phrase starts with it.
    pub fn lookup(&self, key: &str) -> (Option<Lex>, bool) {
        let entry = self.phrases.get(key).copied().unwrap_or_default();
        let lex = entry.lex.or_else(|| {
            if key.contains(' ') {
                None
            } else {
                numbers::english_word(key).map(Lex::NumWord)
            }
        });
        (lex, entry.longer)
    }

    /// Whether `key` is a known phrase (not counting number words).
    pub fn knows(&self, key: &str) -> bool {
        self.phrases.get(key).is_some_and(|e| e.lex.is_some())
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub fn jieba(&self) -> &Jieba {
        &self.jieba
    }

    /// The (group, value id) of an option token.
    pub fn option(&self, index: u16) -> Option<(&str, &str)> {
        self.options
            .get(usize::from(index))
            .map(|(g, v)| (g.as_str(), v.as_str()))
    }
}
