//! Turning a sender's file name into a safe single path component.
//!
//! A file name inside a sealed document is the sender's claim and never becomes a path as is:
//! the opener keeps only its last component, drops control and reserved characters and leading
//! dots, and limits its length.

use crate::sealed::limits::MAX_FILE_NAME_LEN;

/// The name used when nothing usable is left.
pub const FALLBACK_FILE_NAME: &str = "document";

/// The longest sanitised name, in bytes (leaves room for a `.sig` suffix and a counter).
pub const MAX_SANITIZED_LEN: usize = 200;

/// A file name safe to join to an output directory: no directory parts, no control
/// characters, no characters reserved on common file systems (`/ \ : * ? " < > |`), no leading
/// dots or spaces, no trailing dots or spaces, at most [`MAX_SANITIZED_LEN`] bytes (cut at a
/// character boundary, keeping the extension when short), never empty, `.` or `..`.
pub fn sanitize_file_name(name: &str) -> String {
    let name = name
        .get(..name.len().min(MAX_FILE_NAME_LEN * 4))
        .unwrap_or(name);
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|'))
        .filter(|c| !matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
        .collect();
    let trimmed = cleaned
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    let limited = limit_len(trimmed, MAX_SANITIZED_LEN);
    if limited.is_empty() {
        FALLBACK_FILE_NAME.to_owned()
    } else {
        limited
    }
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
        assert_eq!(sanitize_file_name("CON:"), "CON");
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
