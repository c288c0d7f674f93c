//! Read buffers that exist only while bytes are in them.
//!
//! hyper keeps an 8 KiB read buffer per connection for its whole life (and
//! reserves it again before every read, idle or not); at 10,000 idle
//! keep-alive clients that is most of the proxy's memory. Here a connection
//! holds an [`Inbound`] that is empty while idle: a buffer is taken from the
//! process-wide [`BufPool`] when the stream is readable, and goes back as
//! soon as every byte in it has been passed on.

use std::sync::{Mutex, OnceLock, PoisonError};

use tokio::io::{AsyncRead, AsyncReadExt};

/// Capacity of a pooled buffer: one read of a typical head plus a small
/// body, or a slice of a large body.
pub const BUF_SIZE: usize = 16 * 1024;

/// Buffers kept for reuse; more are freed. Bounded so that a burst does not
/// pin its peak memory for ever.
const MAX_POOLED: usize = 1024;

/// A stack of free buffers of [`BUF_SIZE`].
#[derive(Debug, Default)]
pub struct BufPool {
    free: Mutex<Vec<Vec<u8>>>,
}

impl BufPool {
    /// The process's pool.
    pub fn global() -> &'static BufPool {
        static POOL: OnceLock<BufPool> = OnceLock::new();
        POOL.get_or_init(BufPool::default)
    }

    pub fn take(&self) -> Vec<u8> {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUF_SIZE))
    }

    /// Returns a buffer; one grown past four times the size (a large head)
    /// is freed rather than kept.
    pub fn give(&self, mut buf: Vec<u8>) {
        if buf.capacity() < BUF_SIZE || buf.capacity() > 4 * BUF_SIZE {
            return;
        }
        buf.clear();
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < MAX_POOLED {
            free.push(buf);
        }
    }

    /// Buffers waiting for reuse (for tests and metrics).
    pub fn pooled(&self) -> usize {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Bytes read from a stream and not yet passed on: the rest of a head, the
/// start of a body, a pipelined request. No buffer while empty.
#[derive(Debug, Default)]
pub struct Inbound {
    buf: Option<Vec<u8>>,
    start: usize,
}

impl Inbound {
    pub fn new() -> Self {
        Inbound::default()
    }

    /// The unconsumed bytes.
    pub fn data(&self) -> &[u8] {
        match &self.buf {
            Some(buf) => buf.get(self.start..).unwrap_or_default(),
            None => &[],
        }
    }

    pub fn len(&self) -> usize {
        self.data().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a buffer is held (false while idle).
    pub fn holds_buffer(&self) -> bool {
        self.buf.is_some()
    }

    /// Marks `n` bytes as passed on; the buffer goes back to the pool when
    /// nothing is left in it.
    pub fn consume(&mut self, n: usize) {
        self.start = self.start.saturating_add(n);
        if self.start >= self.buf.as_ref().map_or(0, Vec::len) {
            self.release();
        }
    }

    /// Drops every byte and gives the buffer back.
    pub fn release(&mut self) {
        self.start = 0;
        if let Some(buf) = self.buf.take() {
            BufPool::global().give(buf);
        }
    }

    /// Reads once from `stream`, appending to what is here (at most `max`
    /// bytes in all are held: the caller's limit, e.g. the head size).
    /// Returns the bytes read; 0 is the end of the stream.
    pub async fn read_from<S: AsyncRead + Unpin + ?Sized>(
        &mut self,
        stream: &mut S,
        max: usize,
    ) -> std::io::Result<usize> {
        let buf = self.room(max);
        let n = stream.read_buf(buf).await?;
        if n == 0 && self.is_empty() {
            self.release();
        }
        Ok(n)
    }

    /// A buffer with free space for the next read, the consumed prefix
    /// dropped first. Room is at least one pooled buffer's worth, or what is
    /// left under `max`.
    fn room(&mut self, max: usize) -> &mut Vec<u8> {
        let start = std::mem::take(&mut self.start);
        let buf = self.buf.get_or_insert_with(|| BufPool::global().take());
        if start > 0 {
            buf.drain(..start.min(buf.len()));
        }
        let want = max.saturating_sub(buf.len()).clamp(1, BUF_SIZE);
        if buf.capacity() - buf.len() < want {
            buf.reserve(want);
        }
        buf
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_buffer_is_held_only_while_bytes_are() {
        let mut inbound = Inbound::new();
        assert!(!inbound.holds_buffer());
        let mut source: &[u8] = b"hello world";
        inbound.read_from(&mut source, 1024).await.unwrap();
        assert_eq!(inbound.data(), b"hello world");
        inbound.consume(6);
        assert_eq!(inbound.data(), b"world");
        assert!(inbound.holds_buffer());
        inbound.consume(5);
        assert!(!inbound.holds_buffer(), "given back once passed on");
        // The end of the stream leaves nothing held.
        let mut empty: &[u8] = b"";
        assert_eq!(inbound.read_from(&mut empty, 1024).await.unwrap(), 0);
        assert!(!inbound.holds_buffer());
    }

    #[tokio::test]
    async fn reads_append_after_the_unconsumed_rest() {
        let mut inbound = Inbound::new();
        let mut first: &[u8] = b"GET / HT";
        inbound.read_from(&mut first, 1024).await.unwrap();
        inbound.consume(4);
        let mut second: &[u8] = b"TP/1.1";
        inbound.read_from(&mut second, 1024).await.unwrap();
        assert_eq!(inbound.data(), b"/ HTTP/1.1");
    }
}
