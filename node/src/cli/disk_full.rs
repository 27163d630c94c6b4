//! A failure caused by a full disk, wherever in the chain: the one `error:` line then ends
//! with what to do, once (the node's own answer may have said it already).

/// An I/O error of a full disk: `ENOSPC`, or `EDQUOT` for a user over quota.
fn is_full_io(cause: &(dyn std::error::Error + 'static)) -> bool {
    cause
        .downcast_ref::<std::io::Error>()
        .is_some_and(crate::daemon::is_disk_full)
}

/// The error's line (its context chain, outermost first), with what to do if a disk is full.
pub fn error_line(err: &anyhow::Error) -> String {
    let line = format!("{err:#}");
    let full = err.chain().any(is_full_io) || crate::store::db::is_disk_full(err);
    // SQLite's own words ("database or disk is full") say what, not what to do.
    if full && !line.contains("free space") {
        return format!("{line}: the disk is full; free space on it, then try again");
    }
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn a_full_disk_anywhere_in_the_chain_says_what_to_do_once() {
        let enospc = std::io::Error::from_raw_os_error(28);
        let err = Err::<(), _>(enospc)
            .context("writing the sealed document failed")
            .context("cannot seal the document")
            .unwrap_err();
        assert_eq!(
            error_line(&err),
            "cannot seal the document: writing the sealed document failed: No space left on \
             device (os error 28): the disk is full; free space on it, then try again"
        );
        let sqlite = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        let err = anyhow::Error::new(sqlite).context("cannot record the originator share");
        assert!(error_line(&err).ends_with("free space on it, then try again"));
        // The node's answer said it already: not twice.
        let said = anyhow::anyhow!("this node's disk is full: free space on that disk")
            .context("cannot send");
        assert_eq!(
            error_line(&said),
            "cannot send: this node's disk is full: free space on that disk"
        );
        // Other failures are left as they are.
        let other = anyhow::Error::new(std::io::Error::from_raw_os_error(13));
        assert_eq!(error_line(&other), format!("{other:#}"));
    }
}
