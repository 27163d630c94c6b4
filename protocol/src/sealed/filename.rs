//! Turning a sender's file name into a safe single path component.
//!
//! A file name inside a sealed document is the sender's claim and never becomes a path as is:
//! the opener keeps only its last component, drops control, line-breaking, reserved and
//! invisible characters, leading dots, dashes and spaces, defuses names Windows reserves for devices
//! (an opened file may be copied to a Windows share), and limits its length.

use crate::sealed::limits::MAX_FILE_NAME_LEN;

/// The name used when nothing usable is left.
pub const FALLBACK_FILE_NAME: &str = "document";

/// The longest sanitised name, in bytes (leaves room for a `.sig` suffix and a counter).
pub const MAX_SANITIZED_LEN: usize = 200;

/// A file name safe to join to an output directory: no directory parts, no control
/// characters, no line or paragraph separators (U+2028, U+2029: a name printed in a listing
/// or log stays on one line), no characters reserved on common file systems
/// (`/ \ : * ? " < > |`), no bidirectional controls or invisible characters (zero-width
/// spaces and joiners, word joiner, byte-order mark, soft hyphen, tag characters, Hangul
/// fillers: a name must look like what it is), no leading dots, dashes (read as an option by
/// a shell command) or spaces, no trailing dots or spaces, a Windows device name (`CON`,
/// `NUL`, `COM1`, `LPT¹`, ... with any extension) prefixed with `_`, at
/// most [`MAX_SANITIZED_LEN`] bytes (cut at a character boundary, keeping the extension when
/// short), never empty, `.` or `..`.
pub fn sanitize_file_name(name: &str) -> String {
    let name = name
        .get(..name.len().min(MAX_FILE_NAME_LEN * 4))
        .unwrap_or(name);
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|'))
        .filter(|c| !matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
        .filter(|c| !matches!(c, '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{061C}' | '\u{180E}' | '\u{00AD}'))
        .filter(|c| !matches!(c, '\u{2028}' | '\u{2029}' | '\u{E0000}'..='\u{E007F}'))
        .filter(|c| !matches!(c, '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}'))
        .collect();
    let trimmed = cleaned
        .trim_start_matches(['.', ' ', '-'])
        .trim_end_matches(['.', ' ']);
    let limited = limit_len(trimmed, MAX_SANITIZED_LEN);
    if limited.is_empty() {
        FALLBACK_FILE_NAME.to_owned()
    } else if is_windows_device(&limited) {
        limit_len(&format!("_{limited}"), MAX_SANITIZED_LEN)
    } else {
        limited
    }
}

/// Whether Windows reserves `name` for a device: `CON`, `PRN`, `AUX`, `NUL`, `COM0`-`COM9`,
/// `LPT0`-`LPT9` and, as Windows reads superscript digits as digits there, `COM¹`-`COM³` and
/// `LPT¹`-`LPT³` (any case), alone or before a dot.
fn is_windows_device(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end();
    let upper = stem.to_ascii_uppercase();
    if matches!(upper.as_str(), "CON" | "PRN" | "AUX" | "NUL") {
        return true;
    }
    let Some(number) = upper
        .strip_prefix("COM")
        .or_else(|| upper.strip_prefix("LPT"))
    else {
        return false;
    };
    let mut digits = number.chars();
    matches!(
        (digits.next(), digits.next()),
        (Some('0'..='9' | '\u{B9}' | '\u{B2}' | '\u{B3}'), None)
    )
}

/// Cuts `name` to at most `max` bytes, keeping a short extension.
fn limit_len(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let ext = match name.rfind('.') {
        Some(dot) if name.len() - dot <= 16 => name.get(dot..).unwrap_or(""),
        _ => "",
    };
    let mut stem_end = max - ext.len();
    while !name.is_char_boundary(stem_end) {
        stem_end -= 1;
    }
    format!("{}{ext}", name.get(..stem_end).unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_and_tricks_are_removed() {
        assert_eq!(sanitize_file_name("report.pdf"), "report.pdf");
        assert_eq!(sanitize_file_name("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_file_name("C:\\Users\\x\\evil.exe"), "evil.exe");
        assert_eq!(sanitize_file_name("/abs/path/notes.txt"), "notes.txt");
        assert_eq!(sanitize_file_name(".bashrc"), "bashrc");
        assert_eq!(sanitize_file_name(".."), FALLBACK_FILE_NAME);
        assert_eq!(sanitize_file_name("."), FALLBACK_FILE_NAME);
        assert_eq!(sanitize_file_name(""), FALLBACK_FILE_NAME);
        assert_eq!(sanitize_file_name("dir/"), FALLBACK_FILE_NAME);
        assert_eq!(sanitize_file_name("a\nb\u{0}c.txt"), "abc.txt");
        assert_eq!(sanitize_file_name("inv\u{202E}fdp.exe"), "invfdp.exe");
        assert_eq!(sanitize_file_name("what?.pdf"), "what.pdf");
        assert_eq!(sanitize_file_name("CON:"), "_CON");
        assert_eq!(sanitize_file_name("nul.txt"), "_nul.txt");
        assert_eq!(sanitize_file_name("com1.tar.gz"), "_com1.tar.gz");
        assert_eq!(sanitize_file_name("console.txt"), "console.txt");
        assert_eq!(sanitize_file_name("COM10.txt"), "COM10.txt");
        assert_eq!(sanitize_file_name("COM\u{B9}.txt"), "_COM\u{B9}.txt");
        assert_eq!(sanitize_file_name("lpt\u{B2}"), "_lpt\u{B2}");
        assert_eq!(sanitize_file_name("Lpt\u{B3}.log"), "_Lpt\u{B3}.log");
        assert_eq!(
            sanitize_file_name("com\u{B3}\u{B9}.txt"),
            "com\u{B3}\u{B9}.txt"
        );
        assert_eq!(sanitize_file_name("COM\u{2074}.txt"), "COM\u{2074}.txt");
        assert_eq!(sanitize_file_name("-rf"), "rf");
        assert_eq!(sanitize_file_name("--help.pdf"), "help.pdf");
        assert_eq!(
            sanitize_file_name("re\u{200B}port\u{FEFF}.pdf"),
            "report.pdf"
        );
        assert_eq!(
            sanitize_file_name("in\u{00AD}voice\u{2060}.pdf"),
            "invoice.pdf"
        );
        // Line and paragraph separators, which are not control characters.
        assert_eq!(sanitize_file_name("a\u{2028}b\u{2029}c.txt"), "abc.txt");
        // Tag characters (invisible text after the name), Hangul fillers (invisible letters).
        assert_eq!(
            sanitize_file_name("report\u{E0001}\u{E0065}\u{E0078}\u{E007F}.pdf"),
            "report.pdf"
        );
        assert_eq!(
            sanitize_file_name("\u{3164}in\u{115F}vo\u{1160}ice\u{FFA0}.pdf"),
            "invoice.pdf"
        );
        assert_eq!(
            sanitize_file_name("Verslag Ünïcode.pdf"),
            "Verslag Ünïcode.pdf"
        );
    }

    #[test]
    fn length_is_limited_on_char_boundaries() {
        let long = format!("{}.pdf", "é".repeat(300));
        let out = sanitize_file_name(&long);
        assert!(out.len() <= MAX_SANITIZED_LEN);
        assert!(out.ends_with(".pdf"));
        let exact = "a".repeat(MAX_SANITIZED_LEN);
        assert_eq!(sanitize_file_name(&exact), exact);
        assert_eq!(
            sanitize_file_name(&format!("{exact}b")).len(),
            MAX_SANITIZED_LEN
        );
    }
}
