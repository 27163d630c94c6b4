//! `Read` for readers whose bytes already sit in their own buffer ([`BufRead`]).

use std::io::{self, BufRead};

/// One `read` served from `reader`'s buffer: copies what fits of the bytes it holds (waiting
/// for more only when it holds none) and consumes them.
pub fn read_buffered<R: BufRead + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let left = reader.fill_buf()?;
    let n = left.len().min(buf.len());
    if let (Some(to), Some(from)) = (buf.get_mut(..n), left.get(..n)) {
        to.copy_from_slice(from);
    }
    reader.consume(n);
    Ok(n)
}
