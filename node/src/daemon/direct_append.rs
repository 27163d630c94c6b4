//! Appending a transfer's bytes to its partial file past the page cache (`O_DIRECT`).
//!
//! A received document is written once and not read again by the node (it was verified as it
//! arrived), yet a buffered write copies every byte into the page cache, which the kernel must
//! find pages for, write back and reclaim: on the virtual machines nodes run on, that cost
//! more CPU than the transfer's network stack and varied from run to run (first-touched guest
//! pages fault into the hypervisor). Direct I/O writes from one reused, aligned buffer
//! instead. It needs every write to start, and be as long as, a multiple of [`DIRECT_ALIGN`]
//! bytes from an aligned address, so the bytes are gathered in a buffer of [`DIRECT_BUFFER`]
//! bytes that always starts at an aligned file offset: a block the file holds in part is read
//! back into it first, and written again whole.
//!
//! Only whole blocks of real bytes are ever written directly, so the file never holds more
//! than the bytes appended: a flush writes the last, partial block through the page cache
//! (and keeps it in the buffer, for the next direct write to rewrite whole). Where the file
//! system refuses direct I/O (tmpfs on older kernels, say), the appender writes through the
//! page cache as before.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};

/// Alignment of direct writes: offset, length and buffer address (the largest logical block
/// size of common disks).
pub const DIRECT_ALIGN: usize = 4096;
/// Bytes gathered before one direct write.
pub const DIRECT_BUFFER: usize = 1024 * 1024;

/// Appends to a file from a given length on, directly where the file system allows it.
#[derive(Debug)]
pub struct DirectAppender {
    file: File,
    direct: bool,
    /// Backing store of the buffer; the buffer is `storage[start..start + DIRECT_BUFFER]`.
    storage: Vec<u8>,
    start: usize,
    /// Bytes in the buffer.
    len: usize,
    /// The file offset of the buffer's first byte (aligned while `direct`).
    at: u64,
    /// Direct writes at or past this offset fail as on a file system that refuses them.
    #[cfg(test)]
    refuse_direct_from: Option<u64>,
}

impl DirectAppender {
    /// Appends to `file` (open for writing, not in append mode) after its first `held` bytes,
    /// which it must hold.
    pub fn new(file: File, held: u64) -> io::Result<Self> {
        let storage = vec![0u8; DIRECT_BUFFER + DIRECT_ALIGN];
        let start = storage.as_ptr().align_offset(DIRECT_ALIGN);
        let mut appender = Self {
            file,
            direct: false,
            storage,
            start,
            len: 0,
            at: held,
            #[cfg(test)]
            refuse_direct_from: None,
        };
        if start >= DIRECT_ALIGN {
            return Ok(appender);
        }
        // The block the file holds in part is written again whole: read its bytes back first
        // (through the page cache, which has them if they were written just now).
        let tail = usize::try_from(held % DIRECT_ALIGN as u64).unwrap_or(0);
        let block_start = held - tail as u64;
        if tail > 0 {
            let into = appender
                .storage
                .get_mut(start..start + tail)
                .unwrap_or_default();
            appender.file.read_exact_at(into, block_start)?;
        }
        if set_direct(&appender.file, true).is_ok() {
            appender.direct = true;
            appender.at = block_start;
            appender.len = tail;
        }
        Ok(appender)
    }

    /// Whether writes go past the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// The file, e.g. for an fsync.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Appends `bytes`: written at once through the page cache, or directly as they are when
    /// they are whole blocks at an aligned address and nothing is gathered, or else gathered
    /// for a direct write of whole blocks.
    pub fn append(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if self.direct
            && self.len == 0
            && (bytes.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN)
            && bytes.len().is_multiple_of(DIRECT_ALIGN)
        {
            if self.try_direct_at(bytes, self.at)? {
                self.at += bytes.len() as u64;
                return Ok(());
            }
            // Refused: this and every later write through the page cache, below.
            self.fall_back()?;
        }
        while self.direct && !bytes.is_empty() {
            let len = self.len;
            let room = self.buffer_mut().get_mut(len..).unwrap_or_default();
            let n = room.len().min(bytes.len());
            let (now, later) = bytes.split_at(n);
            if let Some(to) = room.get_mut(..n) {
                to.copy_from_slice(now);
            }
            self.len += n;
            bytes = later;
            // Full, or ending at a block boundary: written, so that the next aligned chunk
            // goes out as it is.
            if self.len == DIRECT_BUFFER
                || (bytes.is_empty() && self.len.is_multiple_of(DIRECT_ALIGN))
            {
                self.write_blocks(self.len)?;
            }
        }
        // Through the page cache (what is gathered first, so that nothing is out of order).
        if !bytes.is_empty() {
            self.write_gathered_buffered()?;
            self.file.write_all_at(bytes, self.at)?;
            self.at += bytes.len() as u64;
        }
        Ok(())
    }

    /// Puts every byte appended into the file (not yet fsynced).
    pub fn flush(&mut self) -> io::Result<()> {
        if !self.direct {
            return self.write_gathered_buffered();
        }
        let whole = self.len - self.len % DIRECT_ALIGN;
        if whole > 0 {
            self.write_blocks(whole)?;
        }
        if self.direct && self.len > 0 {
            // The last, partial block through the page cache, at its exact length; it stays
            // in the buffer for the next direct write to rewrite whole.
            set_direct(&self.file, false)?;
            let tail = self.buffer().get(..self.len).unwrap_or_default();
            if let Err(e) = self.file.write_all_at(tail, self.at) {
                self.direct = false;
                return Err(e);
            }
            if set_direct(&self.file, true).is_err() {
                // Written already: on through the page cache.
                self.direct = false;
                self.at += self.len as u64;
                self.len = 0;
            }
        }
        if !self.direct {
            return self.write_gathered_buffered();
        }
        Ok(())
    }

    /// Writes the buffer's first `n` bytes (whole blocks) directly, and moves what follows
    /// them to the front. If the file system refuses, everything gathered goes through the
    /// page cache instead, and every later write.
    fn write_blocks(&mut self, n: usize) -> io::Result<()> {
        let blocks = self.buffer().get(..n).unwrap_or_default();
        if !self.try_direct_at(blocks, self.at)? {
            self.fall_back()?;
            return self.write_gathered_buffered();
        }
        self.at += n as u64;
        let (len, start) = (self.len, self.start);
        self.storage.copy_within(start + n..start + len, start);
        self.len -= n;
        Ok(())
    }

    /// After a fall back to the page cache: writes what is gathered, at its offset.
    fn write_gathered_buffered(&mut self) -> io::Result<()> {
        if self.len > 0 {
            let gathered = self.buffer().get(..self.len).unwrap_or_default();
            self.file.write_all_at(gathered, self.at)?;
            self.at += self.len as u64;
            self.len = 0;
        }
        Ok(())
    }

    /// Writes `bytes` directly at `at`: `Ok(false)` if the file system refused direct I/O
    /// (`EINVAL`: it needs another alignment, say); the caller then [`Self::fall_back`]s and
    /// writes them again through the page cache.
    fn try_direct_at(&self, bytes: &[u8], at: u64) -> io::Result<bool> {
        #[cfg(test)]
        let refused = self.refuse_direct_from.is_some_and(|from| at >= from);
        #[cfg(not(test))]
        let refused = false;
        let written = if refused {
            Err(io::Error::from_raw_os_error(
                rustix::io::Errno::INVAL.raw_os_error(),
            ))
        } else {
            self.file.write_all_at(bytes, at)
        };
        match written {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// From now on, every write through the page cache.
    fn fall_back(&mut self) -> io::Result<()> {
        tracing::debug!("the file system refused a direct write: writing through the page cache");
        set_direct(&self.file, false)?;
        self.direct = false;
        Ok(())
    }

    fn buffer(&self) -> &[u8] {
        self.storage
            .get(self.start..self.start + DIRECT_BUFFER)
            .unwrap_or_default()
    }

    fn buffer_mut(&mut self) -> &mut [u8] {
        self.storage
            .get_mut(self.start..self.start + DIRECT_BUFFER)
            .unwrap_or_default()
    }
}

/// Turns `O_DIRECT` on or off for `file`.
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let mut flags = fcntl_getfl(file)?;
    flags.set(OFlags::DIRECT, on);
    fcntl_setfl(file, flags)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::fs::OpenOptions;

    use super::super::block_buf::BlockBuf;
    use super::*;

    /// Bytes that differ at every offset, so a byte in the wrong place shows.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
            .collect()
    }

    fn open(path: &std::path::Path) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap()
    }

    #[test]
    fn appends_land_in_order_across_flushes_and_reopenings_at_unaligned_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.partial");
        let data = pattern(3 * DIRECT_BUFFER + 12_345, 7);
        // Pieces of awkward sizes, a flush after some (the header check does one), and the
        // file reopened where a resumed transfer would reopen it.
        let cuts = [1, 4095, 4097, 70_000, DIRECT_BUFFER, 5, DIRECT_BUFFER + 3];
        let mut written = 0usize;
        let mut appender = DirectAppender::new(open(&path), 0).unwrap();
        for (i, cut) in cuts.iter().cycle().enumerate() {
            if written == data.len() {
                break;
            }
            let end = (written + cut).min(data.len());
            appender.append(&data[written..end]).unwrap();
            written = end;
            if i % 3 == 1 {
                appender.flush().unwrap();
                assert_eq!(std::fs::read(&path).unwrap(), &data[..written]);
            }
            if i % 4 == 2 {
                appender.flush().unwrap();
                drop(appender);
                let held = std::fs::metadata(&path).unwrap().len();
                assert_eq!(held, written as u64);
                appender = DirectAppender::new(open(&path), held).unwrap();
            }
        }
        appender.flush().unwrap();
        appender.file().sync_all().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn whole_aligned_blocks_go_out_as_they_are_and_gathered_bytes_at_a_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.partial");
        let data = pattern(4 * DIRECT_ALIGN, 9);
        let mut appender = DirectAppender::new(open(&path), 0).unwrap();
        let len = || std::fs::metadata(&path).unwrap().len();
        appender
            .append(&BlockBuf::from_slice(&data[..2 * DIRECT_ALIGN]))
            .unwrap();
        assert_eq!(len(), 2 * DIRECT_ALIGN as u64, "written at once");
        // Bytes that do not end at a block boundary wait for the ones that do.
        appender
            .append(&data[2 * DIRECT_ALIGN..2 * DIRECT_ALIGN + 100])
            .unwrap();
        if appender.is_direct() {
            assert_eq!(len(), 2 * DIRECT_ALIGN as u64);
        }
        appender
            .append(&data[2 * DIRECT_ALIGN + 100..3 * DIRECT_ALIGN])
            .unwrap();
        assert_eq!(len(), 3 * DIRECT_ALIGN as u64);
        appender
            .append(&BlockBuf::from_slice(&data[3 * DIRECT_ALIGN..]))
            .unwrap();
        appender.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn a_file_system_refusing_direct_writes_midway_still_gets_every_byte_in_place() {
        let data = pattern(3 * DIRECT_BUFFER + 777, 5);
        let chunk = 256 * 1024;
        for refuse_from in [
            0,
            4096,
            8192,
            DIRECT_BUFFER as u64,
            2 * DIRECT_BUFFER as u64,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("doc.partial");
            let mut appender = DirectAppender::new(open(&path), 0).unwrap();
            let was_direct = appender.is_direct();
            appender.refuse_direct_from = Some(refuse_from);
            // A header check's flush, then chunks that end at block boundaries (the first
            // gathered, the others whole), then pieces off every boundary.
            appender.append(&data[..100]).unwrap();
            appender.flush().unwrap();
            let mut at = 100;
            let mut next = 4096;
            while next <= 2 * DIRECT_BUFFER {
                appender
                    .append(&BlockBuf::from_slice(&data[at..next]))
                    .unwrap();
                at = next;
                next += chunk;
            }
            for piece in data[at..].chunks(DIRECT_BUFFER / 3 + 1) {
                appender.append(piece).unwrap();
            }
            appender.flush().unwrap();
            assert_eq!(
                std::fs::read(&path).unwrap(),
                data,
                "direct writes refused from {refuse_from}"
            );
            if was_direct {
                assert!(!appender.is_direct(), "refused from {refuse_from}");
            }
        }
    }

    #[test]
    fn a_direct_write_refused_while_an_append_is_half_gathered_loses_none_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.partial");
        let data = pattern(2 * DIRECT_BUFFER + 4321, 11);
        let mut appender = DirectAppender::new(open(&path), 0).unwrap();
        appender.refuse_direct_from = Some(0);
        // The buffer fills, and its write is refused, in the middle of this append.
        let first = DIRECT_BUFFER + 500;
        appender.append(&data[..first]).unwrap();
        appender.append(&data[first..]).unwrap();
        appender.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert!(!appender.is_direct());
    }

    #[test]
    fn nothing_but_appended_bytes_reaches_the_file_before_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.partial");
        let data = pattern(DIRECT_BUFFER + 100, 3);
        let mut appender = DirectAppender::new(open(&path), 0).unwrap();
        appender.append(&data).unwrap();
        // What a crash now would leave: a prefix of what was appended, never more.
        let on_disk = std::fs::read(&path).unwrap();
        assert!(on_disk.len() <= data.len());
        assert_eq!(on_disk, &data[..on_disk.len()]);
        if appender.is_direct() {
            assert_eq!(on_disk.len(), DIRECT_BUFFER);
        }
    }
}
