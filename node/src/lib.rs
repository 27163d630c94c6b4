//! The Liaise node: its home directory, the daemon, and the `liaise` command line.
#![forbid(unsafe_code)]

pub mod buffered;
pub mod cli;
pub mod control;
pub mod daemon;
pub mod federation_dir;
pub mod fsutil;
pub mod home;
pub mod log;
pub mod logging;
pub mod open_staging;
pub mod passphrase;
pub mod store;
pub mod transport;
pub mod trust;
