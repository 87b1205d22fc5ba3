//! Numbers as people type them: ASCII digits (full-width ones are folded
//! before this), Chinese numerals (`两`, `十二`, `二十五`, `一百零五`) and
//! English number words (`twenty five`, `a dozen`, `a hundred`).
//!
//! Everything saturates instead of overflowing: a quantity too large to
//! count is still a number, and the quantity limit rejects it.

/// A run of ASCII digits as a number.
pub fn digits(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0i64, |n, d| {
        n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    }))
}

/// The value of one Chinese numeral character: a digit (`Ok`) or a unit
/// (`Err`, its multiplier).
fn chinese_char(c: char) -> Option<Result<i64, i64>> {
    Some(match c {
        '零' | '〇' => Ok(0),
        '一' | '壹' => Ok(1),
        '二' | '两' | '俩' | '贰' => Ok(2),
        '三' | '叁' | '仨' => Ok(3),
        '四' | '肆' => Ok(4),
        '五' | '伍' => Ok(5),
        '六' | '陆' => Ok(6),
        '七' | '柒' => Ok(7),
        '八' | '捌' => Ok(8),
        '九' | '玖' => Ok(9),
        '十' | '拾' => Err(10),
        '百' | '佰' => Err(100),
        '千' | '仟' => Err(1_000),
        '万' => Err(10_000),
        _ => return None,
    })
}

/// Whether `c` can be part of a Chinese numeral.
pub fn is_chinese_numeral(c: char) -> bool {
    chinese_char(c).is_some()
}

/// A Chinese numeral, or `None` when `text` is not one. Strict on purpose:
/// the characters also occur in words (`万一` "in case", `一二` "one or
/// two"), so only well-formed numerals count.
pub fn chinese(text: &str) -> Option<i64> {
    if matches!(text, "零" | "〇") {
        return Some(0);
    }
    let mut total = 0i64; // completed 万 groups
    let mut section = 0i64; // below 万
    let mut digit: Option<i64> = None; // pending digit
    let mut last_unit = i64::MAX; // units must fall within a section
    let mut zero_gap = false; // after 零, the next digit stands alone
    let mut any = false;
    for c in text.chars() {
        any = true;
        match chinese_char(c)? {
            Ok(0) => {
                // 一百零五: 零 only fills a gap after a unit.
                if digit.is_some() || section == 0 {
                    return None;
                }
                zero_gap = true;
            }
            Ok(d) => {
                if digit.is_some() {
                    return None;
                }
                digit = Some(d);
            }
            Err(10_000) => {
                let group = section + digit.take().unwrap_or(0);
                if group == 0 {
                    return None;
                }
                total = total.saturating_add(group.saturating_mul(10_000));
                section = 0;
                last_unit = i64::MAX;
                zero_gap = false;
            }
            Err(unit) => {
                // Only 十 may stand first (十二 = 12); 百 or 千 with no digit
                // before them is not a numeral.
                let d = match digit.take() {
                    Some(d) => d,
                    None if unit == 10 && section == 0 && total == 0 => 1,
                    None => return None,
                };
                if unit >= last_unit || zero_gap {
                    return None;
                }
                section += d * unit;
                last_unit = unit;
            }
        }
    }
    if !any {
        return None;
    }
    if let Some(d) = digit {
        section += d;
    } else if zero_gap {
        return None;
    }
    Some(total.saturating_add(section))
}

/// An English number word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    /// `a`, `an`: one, or the start of `a dozen`.
    Article,
    /// zero to nineteen.
    Unit(i64),
    /// twenty, thirty, … ninety.
    Tens(i64),
    /// hundred, thousand, dozen, couple, pair: multiply what came before.
    Times(i64),
}

/// The number word `word` is, if any.
pub fn english_word(word: &str) -> Option<Word> {
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
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    if let Some(v) = UNITS.iter().position(|u| *u == word) {
        return Some(Word::Unit(v as i64));
    }
    if let Some(v) = TENS.iter().position(|t| *t == word) {
        return Some(Word::Tens(20 + 10 * v as i64));
    }
    Some(match word {
        "a" | "an" => Word::Article,
        "hundred" => Word::Times(100),
        "thousand" => Word::Times(1_000),
        "dozen" | "dozens" => Word::Times(12),
        "couple" | "pair" => Word::Times(2),
        _ => return None,
    })
}

/// Reads one English number from the start of `words`: its value and how
/// many words it used, or `None` when `words` does not start with one.
/// `a` alone is one; `a dozen` twelve; `twenty five` 25; `two hundred` 200.
pub fn english<'w>(words: impl IntoIterator<Item = &'w Word>) -> Option<(i64, usize)> {
    let mut value: Option<i64> = None;
    let mut used = 0;
    // What the next word may be, so `five twenty` stops after `five`.
    let mut after_tens = false;
    for word in words {
        match *word {
            Word::Article if used == 0 => value = Some(1),
            Word::Unit(v) if value.is_none() || after_tens => {
                value = Some(value.unwrap_or(0) + v);
            }
            Word::Tens(v) if value.is_none() => {
                value = Some(v);
                after_tens = true;
                used += 1;
                continue;
            }
            Word::Times(m) => value = Some(value.unwrap_or(1).saturating_mul(m)),
            _ => break,
        }
        after_tens = false;
        used += 1;
    }
    value.map(|v| (v, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_numerals() {
        for (text, value) in [
            ("一", 1),
            ("二", 2),
            ("两", 2),
            ("俩", 2),
            ("三", 3),
            ("十", 10),
            ("十二", 12),
            ("二十", 20),
            ("二十五", 25),
            ("四十", 40),
            ("九十九", 99),
            ("一百", 100),
            ("两百", 200),
            ("一百零五", 105),
            ("一百二十", 120),
            ("三千", 3_000),
            ("一万", 10_000),
            ("一万两千", 12_000),
            ("零", 0),
        ] {
            assert_eq!(chinese(text), Some(value), "{text}");
        }
        for text in ["", "万一", "一二", "百", "十百", "一零", "一百零", "奶"] {
            assert_eq!(chinese(text), None, "{text}");
        }
    }

    #[test]
    fn english_numbers() {
        let read = |text: &str| {
            let words: Vec<Word> = text.split(' ').map_while(english_word).collect();
            english(&words)
        };
        assert_eq!(read("a"), Some((1, 1)));
        assert_eq!(read("one"), Some((1, 1)));
        assert_eq!(read("twelve"), Some((12, 1)));
        assert_eq!(read("twenty"), Some((20, 1)));
        assert_eq!(read("twenty five"), Some((25, 2)));
        assert_eq!(read("a dozen"), Some((12, 2)));
        assert_eq!(read("two dozen"), Some((24, 2)));
        assert_eq!(read("a couple"), Some((2, 2)));
        assert_eq!(read("a hundred"), Some((100, 2)));
        assert_eq!(read("one hundred"), Some((100, 2)));
        assert_eq!(read("five twenty"), Some((5, 1)));
        assert_eq!(read("latte"), None);
    }

    #[test]
    fn digits_saturate() {
        assert_eq!(digits("40"), Some(40));
        assert_eq!(digits("99999999999999999999999"), Some(i64::MAX));
        assert_eq!(digits("4a"), None);
        assert_eq!(digits(""), None);
    }
}
