//! Text normalisation and the first cut of a prompt into pieces, shared by
//! the catalog (to key its words) and the extractor (to read prompts), so
//! that a catalog word and the same word in a prompt always look alike.
//!
//! Normalising folds full-width forms to ASCII (`４０杯`, `ＬＡＴＴＥ`),
//! lower-cases, and straightens quotes. Cutting splits the text into runs
//! of Chinese characters (segmented later, by jieba), words (letters and
//! digits), clause separators (`,` `。` `、` `?` …) and the few symbols that
//! mean something next to a number (`x`, `×`, `¥`, `#`, `%`). Anything
//! else, emoji included, is noise that only separates.

/// Folds one character: full-width ASCII to ASCII, the ideographic space to
/// a space, curly quotes to `'`, and letters to lower case (when that is
/// one character, so positions stay put).
pub fn fold(c: char) -> char {
    // Most of a prompt is ASCII or Chinese; neither needs the Unicode case
    // tables, which cost more than the rest of the fold.
    if c.is_ascii() {
        return if c == '`' {
            '\''
        } else {
            c.to_ascii_lowercase()
        };
    }
    if is_han(c) {
        return c;
    }
    let c = match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        '\u{FFE5}' => '¥',
        '\u{2018}' | '\u{2019}' | '`' | '\u{00B4}' => '\'',
        _ => c,
    };
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// The folded text.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    out.extend(text.chars().map(fold));
    out
}

/// Chinese characters (CJK unified ideographs and their extensions).
pub fn is_han(c: char) -> bool {
    matches!(c,
        '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2FFFF}'
        | '〇')
}

/// Characters of a word: ASCII digits and letters of any script but Han.
fn is_word_char(c: char) -> bool {
    c.is_ascii_digit() || (c.is_alphabetic() && !is_han(c))
}

/// What a piece of text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceKind {
    /// A run of Chinese characters, still to be segmented.
    Han,
    /// Letters and digits: an English word, a number, `x4`, a code.
    Word,
    /// Ends a clause: `,` `.` `;` `!` `?` `、` `。` newlines, `+` `&` `/`.
    Sep,
    /// `×` `*` `¥` `$` `€` `£` `#` `%`.
    Symbol,
}

/// A piece of normalised text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    pub text: &'a str,
    pub kind: PieceKind,
    /// Byte offset in the normalised text.
    pub start: usize,
}

fn kind_of(c: char) -> Option<PieceKind> {
    if is_han(c) {
        Some(PieceKind::Han)
    } else if is_word_char(c) {
        Some(PieceKind::Word)
    } else if matches!(
        c,
        ',' | '.' | ';' | '!' | '?' | '、' | '。' | '\n' | '\r' | '+' | '&' | '/' | '|' | '~' | '…'
    ) {
        Some(PieceKind::Sep)
    } else if matches!(c, '×' | '*' | '¥' | '$' | '€' | '£' | '#' | '%') {
        Some(PieceKind::Symbol)
    } else {
        None
    }
}

/// Cuts normalised text into pieces. Inside a word, `'` between letters
/// (`i'd`) and `.` between digits (`2.5`) are kept, so neither splits it.
pub fn pieces(text: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, c, kind) = chars
            .by_ref()
            .find_map(|(start, c)| kind_of(c).map(|kind| (start, c, kind)))?;
        let mut end = start + c.len_utf8();
        if matches!(kind, PieceKind::Han | PieceKind::Word) {
            let mut last = c;
            while let Some(&(i, next)) = chars.peek() {
                let joins = match kind {
                    PieceKind::Han => is_han(next),
                    _ => {
                        is_word_char(next)
                            || ((next == '\'' && last.is_alphabetic()
                                || next == '.' && last.is_ascii_digit())
                                && text[i + 1..].chars().next().is_some_and(|after| {
                                    if next == '.' {
                                        after.is_ascii_digit()
                                    } else {
                                        after.is_alphabetic() && !is_han(after)
                                    }
                                }))
                    }
                };
                if !joins {
                    break;
                }
                chars.next();
                end = i + next.len_utf8();
                last = next;
            }
        }
        Some(Piece {
            text: &text[start..end],
            kind,
            start,
        })
    })
}

/// Whether two adjacent pieces join with a space in a phrase key: only
/// two words do ("bubble tea"); Chinese joins without one ("珍珠奶茶").
pub fn joins_with_space(before: PieceKind, after: PieceKind) -> bool {
    before == PieceKind::Word && after == PieceKind::Word
}

/// The key a catalog word or keyword is matched by: normalised, words
/// separated by one space, Chinese runs as they are, anything else dropped.
/// "Bubble-Tea" and "bubble  tea" both become "bubble tea".
pub fn phrase_key(text: &str) -> String {
    let text = normalise(text);
    let mut key = String::with_capacity(text.len());
    let mut last: Option<PieceKind> = None;
    for piece in pieces(&text) {
        if !matches!(piece.kind, PieceKind::Han | PieceKind::Word) {
            continue;
        }
        if last.is_some_and(|k| joins_with_space(k, piece.kind)) {
            key.push(' ');
        }
        key.push_str(piece.text);
        last = Some(piece.kind);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &str) -> Vec<(String, PieceKind)> {
        let text = normalise(text);
        pieces(&text).map(|p| (p.text.to_owned(), p.kind)).collect()
    }

    #[test]
    fn full_width_and_case_fold() {
        assert_eq!(normalise("ＬＡＴＴＥ ４０杯，"), "latte 40杯,");
        assert_eq!(normalise("I’d"), "i'd");
    }

    #[test]
    fn pieces_keep_words_numbers_and_separators() {
        use PieceKind::*;
        assert_eq!(
            cut("帮我买40杯奶茶🧋🧋, I'd like 2.5 x4!"),
            [
                ("帮我买".into(), Han),
                ("40".into(), Word),
                ("杯奶茶".into(), Han),
                (",".into(), Sep),
                ("i'd".into(), Word),
                ("like".into(), Word),
                ("2.5".into(), Word),
                ("x4".into(), Word),
                ("!".into(), Sep),
            ]
        );
        assert_eq!(
            cut("room#12 ¥30"),
            [
                ("room".into(), Word),
                ("#".into(), Symbol),
                ("12".into(), Word),
                ("¥".into(), Symbol),
                ("30".into(), Word),
            ]
        );
    }

    #[test]
    fn phrase_keys() {
        assert_eq!(phrase_key("Bubble-Tea"), "bubble tea");
        assert_eq!(phrase_key(" bubble   tea "), "bubble tea");
        assert_eq!(phrase_key("珍珠 奶茶"), "珍珠奶茶");
        assert_eq!(phrase_key("café latte"), "café latte");
    }
}
