//! The words surge traffic is made of: sentence frames, measure words,
//! things not for sale, chatter, and numbers written out in Chinese and
//! English. The catalog supplies the names and options; these are the
//! rest, each chosen so that the extractor reads the sentence as meant
//! (the traffic tests read every kind back).

/// English option words that read naturally before the name ("a large
/// iced latte"); other option words follow it ("a latte, less ice").
pub const EN_BEFORE: &[&str] = &[
    "large",
    "big",
    "grande",
    "venti",
    "medium",
    "regular",
    "tall",
    "small",
    "mini",
    "hot",
    "warm",
    "iced",
    "cold",
    "sweet",
    "unsweetened",
];

/// Measure words by what they count, most usual first; those the catalog
/// does not list are left out.
pub const ZH_DRINK: &[&str] = &["杯"];
pub const ZH_FOOD: &[&str] = &["份", "个", "盒"];
pub const EN_DRINK: &[(&str, &str)] = &[("cup", "cups"), ("glass", "glasses")];
pub const EN_FOOD: &[(&str, &str)] = &[
    ("box", "boxes"),
    ("piece", "pieces"),
    ("serving", "servings"),
    ("portion", "portions"),
];

/// Things nobody sells here, with the measure word Chinese counts them by.
pub const UNKNOWN_ZH: &[(&str, &str)] = &[
    ("拖拉机", "台"),
    ("披萨", "个"),
    ("三明治", "个"),
    ("寿司", "份"),
    ("火锅", "份"),
    ("咖啡", "杯"),
    ("月饼", "盒"),
    ("粽子", "个"),
    ("蛋糕", "个"),
    ("鲜花", "束"),
];
/// (singular with its article, plural).
pub const UNKNOWN_EN: &[(&str, &str)] = &[
    ("a unicorn", "unicorns"),
    ("a pizza", "pizzas"),
    ("a sandwich", "sandwiches"),
    ("a croissant", "croissants"),
    ("a tractor", "tractors"),
    ("a donut", "donuts"),
    ("a bagel", "bagels"),
    ("a smoothie", "smoothies"),
    ("an iphone", "iphones"),
    ("a sushi roll", "sushi rolls"),
];

/// Not purchases: greetings, thanks, tracking, refunds, questions. `{zh}`
/// and `{en}`/`{ens}` stand for an item's name (singular, plural).
pub const CHATTER_ZH: &[&str] = &[
    "你好",
    "在吗？",
    "谢谢！",
    "我的订单到哪了？",
    "取消订单",
    "我要退款",
    "{zh}多少钱？",
    "有{zh}吗？",
    "{zh}还没到，怎么回事",
    "我要投诉",
    "人工客服",
    "早上好",
    "能开发票吗？",
    "{zh}怎么还没到？",
];
pub const CHATTER_EN: &[&str] = &[
    "hello",
    "hi there",
    "thanks!",
    "where is my order?",
    "cancel my order",
    "I want a refund",
    "how much is {an}?",
    "do you have {ens}?",
    "can I talk to a person",
    "track my order",
    "my {en} hasn't arrived",
    "good morning",
    "what's on the menu?",
    "is my order delayed?",
];

/// How one item is worded in Chinese.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zh {
    /// 两杯少糖奶茶
    Before,
    /// 少糖奶茶两杯
    After,
    /// 奶茶要两杯
    Wants,
    /// 两杯latte: the English name in a Chinese sentence.
    Mixed,
}

/// Single-item sentences; `{}` is the item.
pub const ZH_SINGLE: &[(&str, Zh)] = &[
    ("帮我买{}", Zh::Before),
    ("{}，谢谢", Zh::After),
    ("来{}", Zh::Before),
    ("我要{}", Zh::Before),
    ("用优惠券帮我买{}", Zh::Before),
    ("麻烦帮我下单{}，谢谢", Zh::Before),
    ("{}", Zh::Wants),
    ("你好，帮我买{}！", Zh::Before),
    ("请给我来{}", Zh::Before),
    ("{}", Zh::After),
    ("帮我点{}", Zh::Before),
    ("帮我order{}", Zh::Mixed),
];

/// How one item is worded in English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum En {
    /// two large lattes, a latte, 3 cups of milk tea
    Count,
    /// large latte x2
    Times,
}

pub const EN_SINGLE: &[(&str, En)] = &[
    ("I'd like {}", En::Count),
    ("order {}", En::Times),
    ("get me {} please", En::Count),
    ("can I have {}", En::Count),
    ("buy {} with my coupon", En::Count),
    ("please get me {}, thanks!", En::Count),
    ("{} please", En::Count),
    ("could I get {}", En::Count),
    ("I'll take {}", En::Count),
    ("hi! could I have {} please?", En::Count),
    ("{}", En::Times),
];

/// Several items: the frame around them and what joins them.
pub const ZH_MULTI: &[&str] = &["帮我买{}", "我要{}", "来{}", "{}，谢谢", "麻烦帮我点{}"];
pub const ZH_JOIN: &[&str] = &["和", "，", "、", "，再来", "，还要", "加"];
pub const EN_MULTI: &[&str] = &[
    "I'd like {}",
    "get me {} please",
    "{}",
    "can I get {}",
    "order {}, thanks",
];
pub const EN_JOIN: &[&str] = &[" and ", ", ", " plus "];

pub const UNKNOWN_ZH_FRAMES: &[&str] = &["帮我买{}", "我要{}", "麻烦帮我买{}", "帮我下单{}，谢谢"];
pub const UNKNOWN_EN_FRAMES: &[&str] = &[
    "buy me {}",
    "I'd like {}",
    "get me {} please",
    "can I have {}",
    "order {}",
];

/// A Chinese numeral up to 99: 一, 两 (before a measure word), 十二, 四十.
pub fn zh_numeral(n: u32, measured: bool) -> String {
    const DIGITS: [&str; 10] = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"];
    let digit = |d: u32| DIGITS[d as usize % 10];
    match n {
        2 if measured => "两".to_owned(),
        0..=9 => digit(n).to_owned(),
        10..=19 => format!("十{}", if n == 10 { "" } else { digit(n - 10) }),
        _ => format!(
            "{}十{}",
            digit(n / 10 % 10),
            if n % 10 == 0 { "" } else { digit(n % 10) }
        ),
    }
}

/// An English number word up to 99: one, twelve, forty, twenty-five.
pub fn en_numeral(n: u32, hyphen: bool) -> String {
    const UNITS: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let n = n as usize % 100;
    match (n / 10, n % 10) {
        _ if n < 20 => UNITS[n].to_owned(),
        (t, 0) => TENS[t].to_owned(),
        (t, u) => format!("{}{}{}", TENS[t], if hyphen { "-" } else { " " }, UNITS[u]),
    }
}

/// `a` or `an`, by the first letter of `word`.
pub fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u' | 'A' | 'E' | 'I' | 'O' | 'U') => "an",
        _ => "a",
    }
}
