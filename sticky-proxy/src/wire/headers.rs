//! One way to read a request's headers, whatever holds them: the parsed
//! head of the proxy's own HTTP/1 path (spans into the read buffer, no
//! copy) or an `http::HeaderMap` (the admin listener, unit tests). Routing
//! ([`crate::affinity`]) and the budgets ([`crate::limits`]) read through it.

use http::HeaderMap;
use http1::RequestHead;

/// Read access to a request's header fields.
pub trait Headers {
    /// Every value of the field `name` (lower case), in order.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;

    /// The first value of `name`.
    fn first<'a>(&'a self, name: &'a str) -> Option<&'a [u8]> {
        self.values(name).next()
    }
}

impl Headers for HeaderMap {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name).iter().map(http::HeaderValue::as_bytes)
    }
}

/// A parsed request head and the buffer its spans point into.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
}

impl Headers for Head<'_> {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let buf = self.buf;
        self.head
            .headers
            .iter()
            .filter(move |h| h.name.of(buf).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |h| h.value.of(buf))
    }
}

impl<'a> Head<'a> {
    pub fn new(buf: &'a [u8], head: &'a RequestHead) -> Self {
        Head { buf, head }
    }

    pub fn method(&self) -> &'a [u8] {
        self.head.method.of(self.buf)
    }

    /// The origin-form target (path and query); for an absolute-form
    /// request, its path and query.
    pub fn path_and_query(&self) -> &'a [u8] {
        match &self.head.target_form {
            http1::Target::Absolute { path_and_query, .. } => path_and_query.of(self.buf),
            _ => self.head.target.of(self.buf),
        }
    }
}
