//! Rules for text that a person reads: labels, purposes, reasons, and the details peers send.

/// Whether `c` reorders or hides what is displayed around it: the bidirectional embeddings,
/// overrides and isolates (U+202A to U+202E, U+2066 to U+2069), the zero-width space (U+200B),
/// the word joiner (U+2060) and the byte order mark (U+FEFF). With them, a text can show
/// another order than its bytes have (`sealed-document.md`, "Header"), or forge what a log
/// line or an error seems to say.
pub fn reorders_or_hides(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}' | '\u{2060}' | '\u{FEFF}'
    )
}

/// Whether `c` has no place in a line of text for people: a control character (a line break
/// could forge a journal line) or one that [`reorders_or_hides`] text.
pub fn unfit_for_a_line(c: char) -> bool {
    c.is_control() || reorders_or_hides(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_reordering_characters_are_unfit_and_scripts_are_not() {
        for c in [
            '\n', '\u{1b}', '\u{202E}', '\u{2066}', '\u{200B}', '\u{FEFF}',
        ] {
            assert!(unfit_for_a_line(c), "{:?}", c);
        }
        // Greek, Arabic (written right to left by itself), accents and a space are text.
        for c in ['λ', 'ع', 'é', ' ', '\u{200F}'] {
            assert!(!unfit_for_a_line(c), "{:?}", c);
        }
    }
}
