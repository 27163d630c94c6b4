//! The limits of the sealed-document format, as in the spec's "Limits" table.
//!
//! Each is checked when sealing and when reading, and tested at the limit and one past it.

/// The largest header, in bytes.
pub const MAX_HEADER_LEN: usize = 1024 * 1024;
/// The most recipients of one document.
pub const MAX_RECIPIENTS: usize = 256;
/// The most sections of one document.
pub const MAX_SECTIONS: usize = 16;
/// The longest section name (`main`, `annex`, ...), in bytes.
pub const MAX_SECTION_NAME_LEN: usize = 32;
/// The longest handling label, in bytes.
pub const MAX_LABEL_LEN: usize = 64;
/// The longest stated purpose, in bytes.
pub const MAX_PURPOSE_LEN: usize = 256;
/// The largest encoded section metadata (file name, media type, title), in bytes.
pub const MAX_METADATA_LEN: usize = 1024;
/// The longest file name inside a section, in bytes.
pub const MAX_FILE_NAME_LEN: usize = 255;
/// The longest media type inside a section, in bytes.
pub const MAX_MEDIA_TYPE_LEN: usize = 127;
/// The longest title inside a section, in bytes.
pub const MAX_TITLE_LEN: usize = 256;
/// The largest content of one section, in bytes (1 TiB).
pub const MAX_SECTION_LEN: u64 = 1 << 40;
/// The largest padded plaintext of one section, in bytes.
pub const MAX_PADDED_SECTION_LEN: u64 = 1 << 41;
/// The most agencies one recipient may forward a document to.
pub const MAX_FORWARD_TO: usize = 16;
