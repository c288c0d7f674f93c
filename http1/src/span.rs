//! Positions in the caller's buffer: a parsed head borrows nothing, so it can
//! outlive a borrow of the buffer and be stored next to it.

/// A half-open byte range into the buffer the head was parsed from (u32
/// offsets keep a [`Header`] at 16 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// The bytes of this span in `buf` (the buffer the head was parsed from;
    /// another buffer gives other bytes, or an empty slice if out of range —
    /// never a panic).
    #[inline]
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start) as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// The span of `part`, a sub-slice of `buf` (httparse hands out such
    /// slices). A slice from elsewhere (httparse's static `""` for a missing
    /// reason phrase) becomes an empty span at 0. `buf` is never longer than
    /// `u32::MAX` here: heads are parsed from a window capped at that.
    #[inline]
    pub(crate) fn within(buf: &[u8], part: &[u8]) -> Span {
        // One subtraction and one compare: on the hot path, for every name
        // and value. A slice before `buf` wraps around to a huge offset.
        let offset = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
        if offset <= buf.len() && part.len() <= buf.len() - offset {
            let start = offset as u32;
            Span {
                start,
                end: start + part.len() as u32,
            }
        } else {
            Span::default()
        }
    }

    /// A sub-span: `range` is relative to this span's start.
    #[inline]
    pub(crate) fn slice(&self, from: usize, to: usize) -> Span {
        Span {
            start: self.start + from as u32,
            end: self.start + to as u32,
        }
    }
}

/// One header line: its name and its value, the value without surrounding
/// whitespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: Span,
    pub value: Span,
}

/// The protocol version of a head. httparse accepts no other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    /// The version as it is written on the wire.
    pub fn as_bytes(&self) -> &'static [u8] {
        match self {
            Version::Http10 => b"HTTP/1.0",
            Version::Http11 => b"HTTP/1.1",
        }
    }

    pub(crate) fn from_minor(minor: u8) -> Version {
        if minor == 0 {
            Version::Http10
        } else {
            Version::Http11
        }
    }
}
