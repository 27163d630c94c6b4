//! End-to-end tests: the real `liaise` binary, real key files, real rosters.
//! All integration tests live in this one binary (as ripgrep does) so they link once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod foundation;
mod sealed;

mod chaos;
mod control_socket;
mod crash;
mod delivery;
mod demo;
mod disk_full;
mod dns_names;
mod evidence;
mod forwarded_evidence;
mod forwarding;
mod hardening;
mod hostile;
mod key_rotation;
mod log_flood;
mod log_rotation;
mod nodes;
mod operator_deletion;
mod originator;
mod outsider;
mod quota;
mod service;
mod stalled_handshake;
mod stalled_peer;
mod supply_chain;
mod witnessing;
