//! A reader that refuses a line longer than [`MAX_LINE_BYTES`], so one endless line (`/dev/zero` as
//! input, a file without newlines) is an error naming its line instead of memory growing until the
//! process aborts. CSV and JSON Lines input go through it.

use std::io::{self, Read};

/// The longest line a text input may have: 64 MiB.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// The error a [`LineCap`] returns (inside an [`io::Error`]): line `line` (1-based) is too long.
#[derive(Debug, thiserror::Error)]
#[error("line {line} is longer than {} MiB; udfpool reads lines of at most that", MAX_LINE_BYTES >> 20)]
pub struct LineTooLong {
    /// The line.
    pub line: u64,
}

impl LineTooLong {
    /// The `LineTooLong` inside `e`, if that is what it is.
    pub fn within(e: &io::Error) -> Option<&LineTooLong> {
        e.get_ref().and_then(|inner| inner.downcast_ref::<LineTooLong>())
    }
}

/// Passes `inner`'s bytes through, counting the bytes since the last newline.
#[derive(Debug)]
pub struct LineCap<R> {
    inner: R,
    /// Bytes since the last newline.
    run: usize,
    /// Newlines passed.
    newlines: u64,
    /// Set once a line was too long: every later read fails the same way.
    exceeded: Option<u64>,
}

impl<R> LineCap<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self { inner, run: 0, newlines: 0, exceeded: None }
    }

    /// The wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

impl<R: Read> Read for LineCap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(line) = self.exceeded {
            return Err(io::Error::other(LineTooLong { line }));
        }
        let n = self.inner.read(buf)?;
        let read = &buf[..n];
        match read.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                self.newlines += read.iter().filter(|&&b| b == b'\n').count() as u64;
                // The bytes before the first newline ended the previous run; only a line wholly inside
                // this buffer could be longer than the cap, and the buffer is far smaller than it.
                self.run = n - last - 1;
            }
            None => self.run += n,
        }
        if self.run > MAX_LINE_BYTES {
            let line = self.newlines + 1;
            self.exceeded = Some(line);
            return Err(io::Error::other(LineTooLong { line }));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_line_is_refused_naming_it_and_short_lines_pass() {
        let text = b"a\nbb\n".to_vec();
        let mut out = Vec::new();
        LineCap::new(&text[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, text);
        let endless = io::repeat(b'z');
        let mut capped = LineCap::new(b"one\ntwo\n".chain(endless));
        let e = io::copy(&mut capped, &mut io::sink()).unwrap_err();
        assert_eq!(LineTooLong::within(&e).map(|l| l.line), Some(3), "{e}");
        assert!(capped.read(&mut [0; 8]).is_err(), "and stays refused");
    }
}
