//! `liaise node run`: the daemon in the foreground.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use tokio::sync::watch;

use super::HomeArg;
use crate::daemon::quota::AgencyQuota;
use crate::daemon::{self, DEFAULT_MAX_RETRY_INTERVAL, NodeOptions};
use crate::passphrase::PassphraseSource;

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run the node in the foreground until SIGINT or SIGTERM.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    home: HomeArg,
    /// Listen on this IP address and port (e.g. 0.0.0.0:7400, [::]:7400; no host name)
    /// instead of the first address in agency.toml, e.g. behind NAT, where peers dial another.
    #[arg(long, value_name = "IP:PORT")]
    listen: Option<SocketAddr>,
    /// The longest wait between two delivery attempts to an unreachable node, e.g. 5m, 30s.
    #[arg(long, value_name = "DURATION", value_parser = super::duration_value)]
    max_retry_interval: Option<std::time::Duration>,
    /// What one other agency may keep on this node (the documents it delivered and its
    /// unfinished transfers): a share of the store's disk such as 25%, or a size such as
    /// 20GiB. Documents over it wait at the sender, as for a full disk.
    /// [default: 25%]
    #[arg(long, value_name = "SHARE|SIZE")]
    agency_quota: Option<String>,
}

pub fn run(cmd: NodeCommand, passphrase: &PassphraseSource) -> Result<ExitCode> {
    let NodeCommand::Run(args) = cmd;
    let home = args.home.resolve()?;
    let max_retry_interval = args
        .max_retry_interval
        .unwrap_or(DEFAULT_MAX_RETRY_INTERVAL);
    let agency_quota = match &args.agency_quota {
        Some(text) => {
            AgencyQuota::parse(text).with_context(|| format!("invalid --agency-quota `{text}`"))?
        }
        None => AgencyQuota::default(),
    };
    let agency = home.profile()?.agency;
    super::service::refuse_foreign_home(&home)?;
    // Unlock once, before the runtime starts: the key file costs ~0.2 s of Argon2id.
    let secrets = home.unlock(passphrase)?;
    let options = NodeOptions {
        listen: args.listen,
        max_retry_interval,
        agency_quota,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            super::service::notify("STOPPING=1");
            let _ = stop.send(true);
        });
        // One line when the node is up, whatever the log level, for whoever started it.
        let (ready, up) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if let Ok(bound) = up.await {
                eprintln!(
                    "liaise node of {agency} listening on {bound} (UDP); stop it with Ctrl-C \
                     (under systemd: systemctl stop liaise-node)"
                );
                // Under systemd (Type=notify): `systemctl start` returns now, not before, and
                // fails if the node never got here (a wrong passphrase, a busy port).
                super::service::notify("READY=1");
            }
        });
        daemon::run(home, secrets, options, stopped, Some(ready)).await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
