//! Validation of a chunked body (RFC 9112 §7.1) that the proxy passes through
//! verbatim: it must know where the body ends (the next pipelined request
//! starts there) and refuse framing a node could read another way, without
//! copying or decoding the data.

use crate::{ChunkError, Limits};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In the hex digits of a chunk size; `digits` read so far.
    Size {
        digits: u8,
    },
    /// In a chunk extension; `len` bytes so far, the `;` included.
    Ext {
        len: usize,
    },
    /// After the CR of a chunk-size line.
    SizeLf,
    /// In chunk data, `remaining` bytes to go.
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// After the CR of the final empty line.
    FinalLf,
    Done,
    Failed(ChunkError),
}

/// Incremental validator of a chunked body that is passed through verbatim.
///
/// Strict where a reader could disagree: sizes are 1–16 hex digits (either
/// case), nothing but `;extension` or CRLF after them (no whitespace);
/// every line ends in CRLF (a bare LF is refused, unlike in heads: chunk
/// lines are forwarded as received); an extension is capped
/// (`max_chunk_ext`, `;` included) and may hold no control character but
/// HTAB, and is not otherwise parsed; trailer lines are `token ":" value`
/// with no control character, capped together (`max_trailer_bytes`).
/// Which trailer fields are sent is not checked.
#[derive(Clone, Debug)]
pub struct ChunkedScanner {
    state: State,
    size: u64,
    remaining: u64,
    data_len: u64,
    trailer_bytes: usize,
    max_chunk_ext: usize,
    max_trailer_bytes: usize,
}

/// The outcome of one [`ChunkedScanner::scan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scan {
    /// How many of the input bytes belong to the chunked body.
    pub consumed: usize,
    /// The body (last chunk, trailers, final CRLF) ended within them; the
    /// bytes after `consumed` are the next message.
    pub done: bool,
}

impl ChunkedScanner {
    pub fn new(limits: &Limits) -> Self {
        ChunkedScanner {
            state: State::Size { digits: 0 },
            size: 0,
            remaining: 0,
            data_len: 0,
            trailer_bytes: 0,
            max_chunk_ext: limits.max_chunk_ext,
            max_trailer_bytes: limits.max_trailer_bytes,
        }
    }

    /// Decoded data bytes so far (for a body size cap).
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// The body's end has been scanned.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans `input`, the bytes following those already scanned. Returns
    /// how many of them belong to the body and whether it ends within them.
    /// Chunk data is skipped in O(1), not read byte by byte. After an error
    /// every call returns it again; after the end, `consumed` is 0.
    pub fn scan(&mut self, input: &[u8]) -> Result<Scan, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::Failed(e) => return Err(e),
                State::Data => {
                    let left = (input.len() - i) as u64;
                    let take = self.remaining.min(left);
                    // `take` ≤ the input's length, so it fits a usize.
                    i += take as usize;
                    self.remaining -= take;
                    self.data_len = self.data_len.saturating_add(take);
                    if self.remaining == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                _ => {}
            }
            let b = input[i];
            i += 1;
            if let Err(e) = self.step(b) {
                self.state = State::Failed(e);
                return Err(e);
            }
        }
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        Ok(Scan {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    /// One byte of framing (anything but chunk data).
    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        use ChunkError::*;
        if matches!(
            self.state,
            State::TrailerStart
                | State::TrailerName
                | State::TrailerValue
                | State::TrailerLf
                | State::FinalLf
        ) {
            self.trailer_bytes += 1;
            if self.trailer_bytes > self.max_trailer_bytes {
                return Err(TrailersTooLarge);
            }
        }
        self.state = match (self.state, hex(b)) {
            (State::Size { digits }, Some(digit)) => {
                if digits == 16 {
                    return Err(SizeOverflow);
                }
                self.size = (self.size << 4) | u64::from(digit);
                State::Size { digits: digits + 1 }
            }
            (state, _) => self.framing(state, b)?,
        };
        Ok(())
    }

    /// The transitions on a byte that is not a size digit.
    fn framing(&mut self, state: State, b: u8) -> Result<State, ChunkError> {
        use ChunkError::*;
        Ok(match (state, b) {
            (State::Size { digits: 0 }, _) => return Err(BadSize),
            (State::Size { .. }, b';') => self.ext(0)?,
            (State::Size { .. }, b'\r') => State::SizeLf,
            (State::Size { .. }, b'\n') => return Err(BadLineEnd),
            (State::Size { .. }, _) => return Err(BadSize),
            (State::Ext { .. }, b'\r') => State::SizeLf,
            (State::Ext { .. }, b'\n') => return Err(BadLineEnd),
            (State::Ext { len }, _) if is_text(b) => self.ext(len)?,
            (State::Ext { .. }, _) => return Err(BadSize),
            (State::SizeLf, b'\n') if self.size == 0 => State::TrailerStart,
            (State::SizeLf, b'\n') => {
                self.remaining = self.size;
                self.size = 0;
                State::Data
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size { digits: 0 },
            (State::SizeLf | State::DataCr | State::DataLf, _) => return Err(BadLineEnd),
            (State::TrailerStart, b'\r') => State::FinalLf,
            (State::TrailerStart, b'\n') => return Err(BadLineEnd),
            (State::TrailerStart | State::TrailerName, _) if is_tchar(b) => State::TrailerName,
            (State::TrailerName, b':') => State::TrailerValue,
            (State::TrailerStart | State::TrailerName, _) => return Err(BadTrailer),
            (State::TrailerValue, b'\r') => State::TrailerLf,
            (State::TrailerValue, b'\n') => return Err(BadLineEnd),
            (State::TrailerValue, _) if is_text(b) => State::TrailerValue,
            (State::TrailerValue, _) => return Err(BadTrailer),
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::FinalLf, b'\n') => State::Done,
            (State::TrailerLf | State::FinalLf, _) => return Err(BadLineEnd),
            // `scan` handles these before calling `step`.
            (State::Data | State::Done | State::Failed(_), _) => state,
        })
    }

    fn ext(&self, len: usize) -> Result<State, ChunkError> {
        if len + 1 > self.max_chunk_ext {
            return Err(ChunkError::ExtensionTooLong);
        }
        Ok(State::Ext { len: len + 1 })
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// HTAB, SP, visible ASCII and obs-text: what a field value may hold.
fn is_text(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// A `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
