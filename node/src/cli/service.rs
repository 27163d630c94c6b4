//! What `liaise node run` does for the service manager around it: refusing to run as another
//! user than the one owning the home, and telling systemd (`Type=notify`) when the node is up
//! and when it stops.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;

use anyhow::{Result, bail};

use crate::home::Home;

/// Refuses to run the node as a user other than the home's owner. Run as root on a home that
/// belongs to `liaise`, a node writes files that user can then not read, and the service fails
/// later with "permission denied". The effective user id comes from `/proc/self/status`;
/// where it cannot be read, nothing is checked.
pub fn refuse_foreign_home(home: &Home) -> Result<()> {
    let (Some(me), Ok(owner)) = (effective_uid(), std::fs::metadata(home.root())) else {
        return Ok(());
    };
    if me != owner.uid() {
        bail!(
            "{} belongs to user id {}, but this node would run as user id {}: files it writes \
             there would be unreadable to the service; run it as the owner (e.g. `sudo -u \
             liaise liaise node run ...`, or `systemctl start liaise-node`)",
            home.root().display(),
            owner.uid(),
            me
        );
    }
    Ok(())
}

/// The process's effective user id: the second field of the `Uid:` line of
/// `/proc/self/status` (real, effective, saved, file system).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Tells the service manager `state` (`READY=1`, `STOPPING=1`) if it asked to be told
/// (`$NOTIFY_SOCKET`, systemd's `Type=notify`); otherwise does nothing. Failures are logged,
/// never fatal: the node runs the same either way.
pub fn notify(state: &str) {
    if let Some(socket) = std::env::var_os("NOTIFY_SOCKET")
        && let Err(e) = notify_to(&socket, state)
    {
        tracing::warn!("cannot tell the service manager {state}: {e}");
    }
}

/// Sends `state` to the datagram socket `socket` (a path, or `@name` for an abstract one).
fn notify_to(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let out = UnixDatagram::unbound()?;
    match socket.as_encoded_bytes().strip_prefix(b"@") {
        // An abstract socket: '@' stands for the leading NUL byte.
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            out.send_to_addr(state.as_bytes(), &addr)?;
        }
        None => {
            out.send_to(state.as_bytes(), socket)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_home_of_another_user_is_refused_and_ones_own_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let own = Home::new(dir.path().join("home"));
        std::fs::create_dir(own.root()).unwrap();
        refuse_foreign_home(&own).unwrap();
        // Root makes a folder another user's; anyone else finds one (`/` is root's).
        let me = effective_uid().unwrap();
        assert_eq!(me, std::fs::metadata(own.root()).unwrap().uid());
        let foreign = if me != 0 {
            Home::new("/".into())
        } else if std::os::unix::fs::chown(own.root(), Some(4242), None).is_ok() {
            own
        } else {
            // Root in a user namespace that maps no other user: nothing here is foreign.
            return;
        };
        let refused = refuse_foreign_home(&foreign).unwrap_err().to_string();
        assert!(
            refused.contains("belongs to user id") && refused.contains("run it as the owner"),
            "{refused}"
        );
    }

    #[test]
    fn the_state_reaches_the_socket_the_service_manager_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let manager = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        // systemd often names an abstract socket.
        use std::os::linux::net::SocketAddrExt;
        let name = format!("liaise-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let manager = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let n = manager.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
