//! A body streamed from one connection to the other by its framing, never
//! held whole: `Content-Length` bytes, chunks passed through as they are
//! (each size line, extension and trailer checked by
//! [`http1::ChunkedScanner`]), or everything until the sender closes.
//! What follows the body in the read buffer (a pipelined request) stays
//! there for the next exchange.

use std::io;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::buffers::{Inbound, BUF_SIZE};

/// How a body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Only answers: the node closes the connection at the end.
    UntilClose,
}

/// Why a body could not be passed on.
#[derive(Debug)]
pub enum CopyError {
    /// The sender closed before the body's end.
    Truncated,
    Read(io::Error),
    Write(io::Error),
    /// Invalid chunked framing.
    Chunk(http1::ChunkError),
    /// More data than the cap allows.
    TooLarge,
}

impl std::fmt::Display for CopyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CopyError::Truncated => f.write_str("the body ended early"),
            CopyError::Read(e) => write!(f, "reading the body: {e}"),
            CopyError::Write(e) => write!(f, "writing the body: {e}"),
            CopyError::Chunk(e) => write!(f, "invalid chunked framing: {e:?}"),
            CopyError::TooLarge => f.write_str("the body is over the size cap"),
        }
    }
}

#[derive(Debug)]
enum State {
    Length(u64),
    Chunked(http1::ChunkedScanner),
    UntilClose,
    Done,
}

/// A body in passage.
#[derive(Debug)]
pub struct BodyCopy {
    state: State,
    /// Data bytes at most (chunked bodies; a length is checked before).
    max: u64,
    passed: u64,
}

impl BodyCopy {
    pub fn new(framing: Framing, limits: &http1::Limits, max: u64) -> Self {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(http1::ChunkedScanner::new(limits)),
            Framing::UntilClose => State::UntilClose,
        };
        BodyCopy {
            state,
            max,
            passed: 0,
        }
    }

    /// No body at all.
    pub fn none() -> Self {
        BodyCopy {
            state: State::Done,
            max: 0,
            passed: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Bytes of the body passed on so far (framing included).
    pub fn passed(&self) -> u64 {
        self.passed
    }

    /// How many of the bytes at the front of `inbound` belong to the body,
    /// and moves the state past them.
    fn claim(&mut self, available: &[u8]) -> Result<usize, CopyError> {
        let n = match &mut self.state {
            State::Done => 0,
            State::Length(rest) => {
                let n = usize::try_from(*rest)
                    .unwrap_or(usize::MAX)
                    .min(available.len());
                *rest -= n as u64;
                if *rest == 0 {
                    self.state = State::Done;
                }
                n
            }
            State::Chunked(scanner) => {
                let scan = scanner.scan(available).map_err(CopyError::Chunk)?;
                if scanner.data_len() > self.max {
                    return Err(CopyError::TooLarge);
                }
                if scan.done {
                    self.state = State::Done;
                }
                scan.consumed
            }
            State::UntilClose => available.len(),
        };
        self.passed += n as u64;
        Ok(n)
    }

    /// Moves the body bytes already read (at the front of `inbound`) into
    /// `out`, behind a head, so that they leave in the head's write.
    pub fn take_buffered(
        &mut self,
        inbound: &mut Inbound,
        out: &mut Vec<u8>,
    ) -> Result<(), CopyError> {
        let n = self.claim(inbound.data())?;
        out.extend_from_slice(&inbound.data()[..n]);
        inbound.consume(n);
        Ok(())
    }

    /// Streams the rest of the body from `src` to `dst`, reading into
    /// `inbound` (bytes past the body's end stay there). At the end of the
    /// stream an until-close body is done; any other is [`CopyError::Truncated`].
    pub async fn copy_rest<R, W>(
        &mut self,
        src: &mut R,
        inbound: &mut Inbound,
        dst: &mut W,
    ) -> Result<(), CopyError>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        while !self.is_done() {
            if inbound.is_empty() {
                let read = inbound
                    .read_from(src, BUF_SIZE)
                    .await
                    .map_err(CopyError::Read)?;
                if read == 0 {
                    if matches!(self.state, State::UntilClose) {
                        self.state = State::Done;
                        break;
                    }
                    return Err(CopyError::Truncated);
                }
            }
            let n = self.claim(inbound.data())?;
            if n > 0 {
                dst.write_all(&inbound.data()[..n])
                    .await
                    .map_err(CopyError::Write)?;
                inbound.consume(n);
            }
        }
        Ok(())
    }

    /// Reads the rest of the body and drops it.
    pub async fn discard<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        src: &mut R,
        inbound: &mut Inbound,
    ) -> Result<(), CopyError> {
        self.copy_rest(src, inbound, &mut tokio::io::sink()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pass(framing: Framing, input: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CopyError> {
        let mut copy = BodyCopy::new(framing, &http1::Limits::default(), 1 << 20);
        let mut src = input;
        let mut inbound = Inbound::new();
        let mut out = Vec::new();
        copy.copy_rest(&mut src, &mut inbound, &mut out).await?;
        Ok((out, inbound.data().to_vec()))
    }

    #[tokio::test]
    async fn bodies_end_where_their_framing_says() {
        let (body, rest) = pass(Framing::Length(3), b"abcGET").await.unwrap();
        assert_eq!(
            (body.as_slice(), rest.as_slice()),
            (&b"abc"[..], &b"GET"[..])
        );
        let chunked = b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nGET /";
        let (body, rest) = pass(Framing::Chunked, chunked).await.unwrap();
        assert_eq!(body, &chunked[..chunked.len() - 5]);
        assert_eq!(rest, b"GET /");
        let (body, _) = pass(Framing::UntilClose, b"all of it").await.unwrap();
        assert_eq!(body, b"all of it");
        assert!(matches!(
            pass(Framing::Length(10), b"short").await,
            Err(CopyError::Truncated)
        ));
        assert!(matches!(
            pass(Framing::Chunked, b"zz\r\n").await,
            Err(CopyError::Chunk(_))
        ));
    }

    #[tokio::test]
    async fn a_chunked_body_over_the_cap_stops() {
        let mut copy = BodyCopy::new(Framing::Chunked, &http1::Limits::default(), 4);
        let mut src: &[u8] = b"5\r\nabcde\r\n0\r\n\r\n";
        let mut inbound = Inbound::new();
        let mut out = Vec::new();
        assert!(matches!(
            copy.copy_rest(&mut src, &mut inbound, &mut out).await,
            Err(CopyError::TooLarge)
        ));
    }
}
