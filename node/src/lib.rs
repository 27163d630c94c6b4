//! The Liaise node: its home directory, the daemon, and the `liaise` command line.
#![forbid(unsafe_code)]

pub mod cli;
pub mod federation_dir;
pub mod fsutil;
pub mod home;
pub mod logging;
pub mod passphrase;
