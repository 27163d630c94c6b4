//! End-to-end tests: the real `liaise` binary, real key files, real rosters.
//! All integration tests live in this one binary (as ripgrep does) so they link once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod foundation;
