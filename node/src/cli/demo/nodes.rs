//! Steps 5 and 11: the demo nodes start on loopback and stop with SIGTERM.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::narration::{say, show, step};
use super::{AGENCIES, Demo};

/// How long a demo node may take to answer on its control socket after starting.
const NODE_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take to stop after SIGTERM before it is killed.
const NODE_STOP_TIMEOUT: Duration = Duration::from_secs(5);

impl Demo {
    /// Step 5: every agency starts its node.
    pub(super) fn start_all_nodes(&mut self) -> Result<()> {
        step(
            5,
            "Each agency starts its node",
            "Nodes talk QUIC over TLS 1.3; each side's key must be in the roster.",
        );
        for (home, ..) in AGENCIES {
            self.start_node(home)?;
        }
        self.liaise(&["status", "--home", "city"])?;
        Ok(())
    }

    /// Step 11: the nodes stop.
    pub(super) fn stop_all_nodes(&mut self) {
        step(
            11,
            "The nodes stop",
            "SIGTERM: each node stops accepting, closes its connections and its database.",
        );
        self.stop_nodes();
        say("all three nodes stopped");
    }

    /// Starts `liaise node run` for `home` and waits until its control socket answers.
    fn start_node(&mut self, home: &str) -> Result<()> {
        self.not_interrupted()?;
        let logs = self.root.join("logs");
        // Not `create_dir_all`: after an interruption removed the demo folder, that would
        // make it again.
        if let Err(e) = fs::create_dir(&logs)
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(e).context("cannot make the demo's log folder");
        }
        let log = fs::File::create(logs.join(format!("{home}.log")))?;
        show(&format!("liaise node run --home {home} &"));
        let child = self
            .command(&["-v", "node", "run", "--home", home])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start a node")?;
        if !self.children.add(child.id()) {
            // Interrupted while it started: the clean-up has begun without it.
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            bail!("interrupted");
        }
        self.nodes.push((home.to_owned(), child));
        let start = Instant::now();
        loop {
            let status = self
                .command(&["status", "--home", home, "--json"])
                .output()?;
            if status.status.success() {
                return Ok(());
            }
            let exited = self
                .nodes
                .last_mut()
                .and_then(|(_, c)| c.try_wait().ok().flatten());
            if exited.is_some() || start.elapsed() > NODE_START_TIMEOUT {
                let log = fs::read_to_string(logs.join(format!("{home}.log"))).unwrap_or_default();
                bail!("the {home} node did not start:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM to every node, then a kill for any that does not stop in time.
    pub(super) fn stop_nodes(&mut self) {
        for (_, child) in &self.nodes {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for (_, mut child) in self.nodes.drain(..) {
            let start = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && start.elapsed() < NODE_STOP_TIMEOUT {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            // Only now: until it is gone, an interruption's clean-up must still stop it.
            self.children.remove(child.id());
        }
    }
}

/// A UDP port on loopback that was free a moment ago, for a node's address.
pub(super) fn free_udp_port() -> Result<u16> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").context("cannot bind a UDP port")?;
    Ok(socket.local_addr()?.port())
}
