//! From normalised text to tokens that mean something to the rules.
//!
//! 1. [`pieces`] cuts the text into Chinese runs, words, separators and
//!    symbols; jieba segments each Chinese run (with the catalog and the
//!    keywords as user words) and tags its parts of speech.
//! 2. A Chinese word the lexicon does not know is split into known words
//!    and numerals when it is made of nothing else: jieba's dictionary has
//!    words such as `两杯`, `四十个` or `来杯`, which the rules need as a
//!    number and a measure word, or a verb and a measure word. A word that
//!    does not split completely (`三明治`, `一下`) stays whole, unless it
//!    splits together with the word after it: jieba's `十杯水` takes the
//!    first character of `水果茶` in `三十杯水果茶`.
//! 3. The longest known phrase wins at each position, over up to
//!    [`Lexicon::max_tokens`] tokens, so "bubble milk tea" is one item and
//!    "no sugar" an option rather than a negation.
//! 4. English number words are assembled (`twenty five`, `a dozen`) and a
//!    code after a coupon keyword becomes one [`Lex::Code`] token.

use super::lexicon::{Lex, Lexicon};
use super::numbers::{self, Word};
use super::text::{PieceKind, joins_with_space, pieces};

/// A token: what it means, and where it is in the normalised text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tok<'a> {
    pub lex: Lex,
    pub text: &'a str,
    pub start: usize,
    /// A quantity from `a`/`an`, which a later `each` may override.
    pub weak: bool,
}

/// A segment of text before its meaning is looked up.
#[derive(Debug, Clone, Copy)]
struct Atom<'a> {
    text: &'a str,
    kind: PieceKind,
    start: usize,
    /// jieba tagged it as a noun.
    noun: bool,
    /// What the lexicon said of its text when it was looked up already.
    lookup: Option<(Option<Lex>, bool)>,
}

impl Atom<'_> {
    fn end(&self) -> usize {
        self.start + self.text.len()
    }
}

/// The tokens of normalised `text`.
pub fn scan<'a>(lexicon: &Lexicon, text: &'a str) -> Vec<Tok<'a>> {
    let atoms = atoms(lexicon, text);
    let toks = match_phrases(lexicon, text, &atoms);
    let toks = assemble_numbers(toks);
    find_codes(text, toks)
}

fn atoms<'a>(lexicon: &Lexicon, text: &'a str) -> Vec<Atom<'a>> {
    // About one atom per Chinese word or English word; growing the vector
    // costs more than the few bytes this may waste.
    let mut out = Vec::with_capacity(text.len() / 3 + 2);
    for piece in pieces(text) {
        match piece.kind {
            PieceKind::Han => {
                let tags = lexicon.jieba().tag(piece.text, true);
                let mut next = 0;
                while let Some(tag) = tags.get(next) {
                    next += 1;
                    let start = piece.start + tag.byte_start;
                    let mut word = &text[start..piece.start + tag.byte_end];
                    // Number words are English, so for a Chinese word the
                    // meaning is the phrase table's alone.
                    let lookup = lexicon.lookup(word);
                    let known = lookup.0.is_some() || numbers::chinese(word).is_some();
                    let mut parts = (!known).then(|| decompose(lexicon, word)).flatten();
                    // jieba's dictionary has words that straddle a numeral
                    // or measure word and the name after it (`三十杯水果茶`
                    // is cut `三` + `十杯水` + `果茶`): an unknown word that
                    // does not split is tried again with the next word.
                    if !known
                        && parts.is_none()
                        && let Some(after) = tags.get(next)
                    {
                        let joined = &text[start..piece.start + after.byte_end];
                        if let Some(joined_parts) = decompose(lexicon, joined) {
                            parts = Some(joined_parts);
                            word = joined;
                            next += 1;
                        }
                    }
                    match parts {
                        Some(parts) => {
                            for (s, e) in parts {
                                out.push(Atom {
                                    text: &word[s..e],
                                    kind: PieceKind::Han,
                                    start: start + s,
                                    noun: false,
                                    lookup: None,
                                });
                                join_numerals(text, &mut out);
                            }
                        }
                        None => out.push(Atom {
                            text: word,
                            kind: PieceKind::Han,
                            start,
                            noun: tag.tag.starts_with('n'),
                            lookup: Some(lookup),
                        }),
                    }
                    join_numerals(text, &mut out);
                }
            }
            PieceKind::Word => {
                let (first, rest) = split_word(piece.text);
                for (text, start) in [(first, piece.start), (rest, piece.start + first.len())] {
                    if !text.is_empty() {
                        out.push(Atom {
                            text,
                            kind: PieceKind::Word,
                            start,
                            noun: true,
                            lookup: None,
                        });
                    }
                }
            }
            PieceKind::Sep | PieceKind::Symbol => out.push(Atom {
                text: piece.text,
                kind: piece.kind,
                start: piece.start,
                noun: false,
                lookup: None,
            }),
        }
    }
    out
}

/// Joins the last atoms of `out` while they are adjacent Chinese numerals
/// that read as one number: jieba cuts `三十杯` as `三` + `十杯`, and
/// `五十一杯` as `五十` + `一杯`, which would otherwise be two quantities.
fn join_numerals<'a>(text: &'a str, out: &mut Vec<Atom<'a>>) {
    let numeral =
        |a: &Atom<'_>| a.kind == PieceKind::Han && a.text.chars().all(numbers::is_chinese_numeral);
    while let [.., a, b] = out.as_slice()
        && numeral(a)
        && numeral(b)
        && a.end() == b.start
        && numbers::chinese(&text[a.start..b.end()]).is_some()
    {
        let joined = Atom {
            text: &text[a.start..b.end()],
            kind: PieceKind::Han,
            start: a.start,
            noun: false,
            lookup: None,
        };
        out.truncate(out.len() - 2);
        out.push(joined);
    }
}

/// Splits a Chinese word into known words and numerals, as byte ranges,
/// or `None` unless it splits completely into at least two parts.
fn decompose(lexicon: &Lexicon, word: &str) -> Option<Vec<(usize, usize)>> {
    let mut parts = Vec::new();
    let mut at = 0;
    while at < word.len() {
        let rest = &word[at..];
        // The longest known word of up to four characters, else a numeral.
        let mut ends = [0; 4];
        let mut n = 0;
        for ((i, c), end) in rest.char_indices().zip(&mut ends) {
            *end = i + c.len_utf8();
            n += 1;
        }
        let known = ends[..n]
            .iter()
            .rev()
            .find(|&&end| lexicon.knows(&rest[..end]))
            .copied();
        let len = known.or_else(|| {
            let run: usize = rest
                .chars()
                .take_while(|c| numbers::is_chinese_numeral(*c))
                .map(char::len_utf8)
                .sum();
            (run > 0 && numbers::chinese(&rest[..run]).is_some()).then_some(run)
        })?;
        parts.push((at, at + len));
        at += len;
    }
    (parts.len() > 1).then_some(parts)
}

/// Splits a word piece where letters and digits meet in a way the rules
/// read: `x4` and `4x` (times a number), `2cups`, `3pm` (a number and a
/// word). Anything else mixed (`b2`, `save20`) stays whole: a code or an
/// address part, never a quantity. The second part is empty when the
/// word stays whole.
fn split_word(word: &str) -> (&str, &str) {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let len = word.len();
    if digits == 0
        && len > 1
        && word.starts_with('x')
        && word[1..].bytes().all(|b| b.is_ascii_digit())
    {
        return word.split_at(1);
    }
    if digits > 0 && digits < len && !word.contains('.') {
        let rest = &word[digits..];
        if rest.chars().all(char::is_alphabetic) {
            return word.split_at(digits);
        }
    }
    (word, "")
}

fn match_phrases<'a>(lexicon: &Lexicon, text: &'a str, atoms: &[Atom<'a>]) -> Vec<Tok<'a>> {
    let mut toks = Vec::with_capacity(atoms.len());
    let mut key = String::new();
    let mut i = 0;
    while i < atoms.len() {
        let atom = atoms[i];
        let lex = match atom.kind {
            PieceKind::Sep => match atom.text {
                "?" => Lex::QuestionMark,
                "+" | "&" => Lex::Conj,
                _ => Lex::Sep,
            },
            PieceKind::Symbol => match atom.text {
                "×" | "*" => Lex::Times,
                "#" => Lex::AddressUnit,
                "%" => Lex::NotQtyUnit,
                _ => Lex::Currency,
            },
            PieceKind::Han | PieceKind::Word => {
                // The longest phrase starting here, over adjacent atoms.
                key.clear();
                let mut best: Option<(usize, Lex)> = None;
                for j in i..atoms.len().min(i + lexicon.max_tokens()) {
                    let next = atoms[j];
                    if !matches!(next.kind, PieceKind::Han | PieceKind::Word) {
                        break;
                    }
                    if j > i {
                        let prev = atoms[j - 1];
                        if !text[prev.end()..next.start]
                            .chars()
                            .all(char::is_whitespace)
                        {
                            break;
                        }
                        if joins_with_space(prev.kind, next.kind) {
                            key.push(' ');
                        }
                    }
                    key.push_str(next.text);
                    let (lex, longer) = match next.lookup {
                        Some(lookup) if j == i => lookup,
                        _ => lexicon.lookup(&key),
                    };
                    if let Some(lex) = lex {
                        best = Some((j, lex));
                    }
                    if !longer {
                        break;
                    }
                }
                if let Some((j, lex)) = best {
                    toks.push(Tok {
                        lex,
                        text: &text[atom.start..atoms[j].end()],
                        start: atom.start,
                        weak: false,
                    });
                    i = j + 1;
                    continue;
                }
                unknown(atom)
            }
        };
        toks.push(Tok {
            lex,
            text: atom.text,
            start: atom.start,
            weak: false,
        });
        i += 1;
    }
    toks
}

/// What an atom no phrase matched is: a number, or an unknown word.
fn unknown(atom: Atom<'_>) -> Lex {
    let number = match atom.kind {
        PieceKind::Han => numbers::chinese(atom.text),
        _ => numbers::digits(atom.text),
    };
    if let Some(n) = number {
        return Lex::Num(n);
    }
    let has_digit = atom.text.bytes().any(|b| b.is_ascii_digit());
    if has_digit {
        return Lex::Opaque;
    }
    Lex::Word { noun: atom.noun }
}

/// Turns runs of English number words into numbers, and a number followed
/// by `dozen` or `hundred` into their product (`2 dozen`). In place: each
/// token written replaces at least one read.
fn assemble_numbers(mut toks: Vec<Tok<'_>>) -> Vec<Tok<'_>> {
    let mut kept = 0;
    let mut i = 0;
    while i < toks.len() {
        let tok = toks[i];
        let words = toks[i..].iter().map_while(|t| match &t.lex {
            Lex::NumWord(w) => Some(w),
            _ => None,
        });
        let (out, used) = if let (
            Lex::Num(n),
            Some(Tok {
                lex: Lex::NumWord(Word::Times(m)),
                ..
            }),
        ) = (tok.lex, toks.get(i + 1))
        {
            let lex = Lex::Num(n.saturating_mul(*m));
            (Tok { lex, ..tok }, 2)
        } else if let Some((value, used)) = numbers::english(words) {
            let weak = used == 1 && tok.lex == Lex::NumWord(Word::Article);
            let lex = Lex::Num(value);
            (Tok { lex, weak, ..tok }, used.max(1))
        } else if matches!(tok.lex, Lex::NumWord(_)) {
            let lex = Lex::Filler;
            (Tok { lex, ..tok }, 1)
        } else {
            (tok, 1)
        };
        toks[kept] = out;
        kept += 1;
        i += used;
    }
    toks.truncate(kept);
    toks
}

/// Longest coupon code accepted; longer runs are not codes.
const MAX_CODE: usize = 32;

/// After a coupon keyword (and an optional `is`/`是`), a run of ASCII
/// letters, digits, `-` and `_` is the code, whatever words it contains.
fn find_codes<'a>(text: &'a str, mut toks: Vec<Tok<'a>>) -> Vec<Tok<'a>> {
    let mut i = 0;
    while i < toks.len() {
        if toks[i].lex != Lex::CouponKw {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        if toks
            .get(j)
            .is_some_and(|t| matches!(t.text, "is" | "是" | "为" | "用"))
        {
            j += 1;
        }
        let Some(first) = toks.get(j) else { break };
        let len = text[first.start..]
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
            .count();
        // A known word is a code only when more of the run follows it
        // (`boba-2024`), so `coupon for 2 lattes` has none.
        let codeish = matches!(first.lex, Lex::Num(_) | Lex::Word { .. } | Lex::Opaque)
            || len > first.text.len();
        if codeish && (3..=MAX_CODE).contains(&len) {
            let end = first.start + len;
            let last = toks[j..].iter().take_while(|t| t.start < end).count();
            toks.splice(
                j..j + last,
                [Tok {
                    lex: Lex::Code,
                    text: &text[first.start..end],
                    start: first.start,
                    weak: false,
                }],
            );
        }
        i = j;
    }
    toks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Extractor;
    use crate::text::normalise;

    fn lexes(text: &str) -> Vec<(String, Lex)> {
        let text = normalise(text);
        scan(&Extractor::built_in().lexicon, &text)
            .into_iter()
            .map(|t| (t.text.to_owned(), t.lex))
            .collect()
    }

    #[test]
    fn chinese_words_numbers_and_measures() {
        let toks = lexes("帮我买四十个蛋挞");
        assert_eq!(
            toks.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
            ["帮我买", "四十", "个", "蛋挞"]
        );
        assert_eq!(toks[1].1, Lex::Num(40));
        assert_eq!(toks[2].1, Lex::Measure(1));
        assert!(matches!(toks[3].1, Lex::Item { .. }));
        let toks = lexes("来杯水果茶");
        assert_eq!(toks[0].1, Lex::Purchase);
        assert_eq!(toks[1].1, Lex::Measure(1));
        let toks = lexes("三明治");
        assert_eq!(toks, [("三明治".to_owned(), Lex::Word { noun: true })]);
    }

    #[test]
    fn numerals_jieba_cuts_apart_are_one_number() {
        // jieba cuts these as `五十` + `一杯`, `三` + `十一杯`, and `三` +
        // `十杯水` + `果茶`, its word `十杯水` taking the first character of
        // the item's name.
        for (text, n) in [
            ("五十一杯美式", 51),
            ("三十一杯拿铁", 31),
            ("三十杯水果茶", 30),
        ] {
            let toks = lexes(text);
            assert_eq!(toks[0].1, Lex::Num(n), "{text}: {toks:?}");
            assert_eq!(toks[1].1, Lex::Measure(1), "{text}: {toks:?}");
            assert!(matches!(toks[2].1, Lex::Item { .. }), "{text}: {toks:?}");
        }
    }

    #[test]
    fn english_phrases_and_numbers() {
        let toks = lexes("Twenty-five bubble milk teas, no sugar");
        assert_eq!(toks[0].1, Lex::Num(25));
        assert!(matches!(toks[1].1, Lex::Item { plural: true, .. }));
        assert_eq!(toks[2].1, Lex::Sep);
        assert!(matches!(toks[3].1, Lex::Opt(_)));
        assert_eq!(lexes("2 dozen")[0].1, Lex::Num(24));
        assert_eq!(lexes("a couple of")[0].1, Lex::Num(2));
        let x = lexes("latte x4");
        assert_eq!(x[1].1, Lex::Times);
        assert_eq!(x[2].1, Lex::Num(4));
    }

    #[test]
    fn coupon_codes_become_one_token() {
        let toks = lexes("coupon code SPRING-50 please");
        assert_eq!(toks[1], ("spring-50".to_owned(), Lex::Code));
        let toks = lexes("优惠码是SAVE20");
        assert_eq!(toks.last().map(|t| t.1), Some(Lex::Code));
    }
}
