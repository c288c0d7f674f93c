//! Property tests of the chunked scanner: no panic on any input, the same
//! answer whatever the read boundaries, and agreement with a reference
//! decoder on valid and mutated bodies. `PROPTEST_CASES` sets the number of
//! cases (256 by default; `make fuzz` runs many more).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{chunked, chunked_request, framing_byte, mutate, mutation, reference, Reading, NEXT};
use http1::{ChunkError, ChunkedScanner, Limits, RequestHead};
use proptest::prelude::*;
use proptest::sample::Index;

/// Feeds `input` cut at `cuts`; `Ok((consumed, done, data_len))`.
fn feed(input: &[u8], cuts: &[Index], limits: &Limits) -> Result<(usize, bool, u64), ChunkError> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
    at.push(0);
    at.push(input.len());
    at.sort_unstable();
    let mut s = ChunkedScanner::new(limits);
    let mut consumed = 0;
    for w in at.windows(2) {
        let piece = &input[w[0]..w[1]];
        let r = s.scan(piece)?;
        assert!(r.consumed <= piece.len());
        consumed += r.consumed;
        if r.done {
            return Ok((consumed, true, s.data_len()));
        }
        // Not done: every byte was the body's.
        assert_eq!(r.consumed, piece.len());
    }
    Ok((consumed, false, s.data_len()))
}

fn scanner_reading(input: &[u8], limits: &Limits) -> (Reading, u64) {
    let mut s = ChunkedScanner::new(limits);
    match s.scan(input) {
        Ok(r) if r.done => (
            Reading::Valid {
                end: r.consumed,
                data_len: s.data_len(),
            },
            s.data_len(),
        ),
        Ok(_) => (Reading::Incomplete, s.data_len()),
        Err(_) => (Reading::Invalid, s.data_len()),
    }
}

fn small_limits() -> impl Strategy<Value = Limits> {
    (0usize..40, 0usize..80).prop_map(|(ext, trailers)| Limits {
        max_chunk_ext: ext,
        max_trailer_bytes: trailers,
        ..Limits::default()
    })
}

proptest! {
    #[test]
    fn any_bytes_never_panic(
        input in prop::collection::vec(framing_byte(), 0..400),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
        limits in small_limits(),
    ) {
        let one = scanner_reading(&input, &limits).0;
        let pieces = feed(&input, &cuts, &limits);
        match (one, pieces) {
            (Reading::Valid { end, .. }, Ok((consumed, true, _))) => prop_assert_eq!(end, consumed),
            (Reading::Incomplete, Ok((_, false, _))) | (Reading::Invalid, Err(_)) => {}
            (one, pieces) => prop_assert!(false, "one piece {:?}, in pieces {:?}", one, pieces),
        }
    }

    #[test]
    fn pieces_agree_with_one_piece(
        body in chunked(),
        cuts in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let limits = Limits::default();
        let mut input = body.bytes.clone();
        input.extend(NEXT);
        let whole = feed(&input, &[], &limits).unwrap();
        prop_assert_eq!(whole, (body.bytes.len(), true, body.data_len));
        prop_assert_eq!(feed(&input, &cuts, &limits).unwrap(), whole);
        // Without the pipelined request, the same; and every strict prefix is incomplete.
        prop_assert_eq!(feed(&body.bytes, &cuts, &limits).unwrap(), whole);
        let cut = cuts.first().map_or(0, |c| c.index(body.bytes.len()));
        prop_assert_eq!(feed(&body.bytes[..cut], &[], &limits).unwrap().1, false);
    }

    #[test]
    fn agrees_with_the_reference_on_valid_bodies(body in chunked()) {
        let limits = Limits::default();
        let mut input = body.bytes.clone();
        input.extend(NEXT);
        let want = Reading::Valid { end: body.bytes.len(), data_len: body.data_len };
        prop_assert_eq!(reference(&input, limits.max_chunk_ext, limits.max_trailer_bytes), want);
        prop_assert_eq!(scanner_reading(&input, &limits).0, want);
    }

    #[test]
    fn agrees_with_the_reference_on_mutated_bodies(
        body in chunked(),
        m in mutation(),
        cuts in prop::collection::vec(any::<Index>(), 0..4),
        limits in prop_oneof![Just(Limits::default()), small_limits()],
    ) {
        let mut input = body.bytes.clone();
        input.extend(NEXT);
        mutate(&mut input, &body.framing, &m);
        let want = reference(&input, limits.max_chunk_ext, limits.max_trailer_bytes);
        let (got, _) = scanner_reading(&input, &limits);
        match want {
            // The scanner may see an error in a line the reference has not
            // read to its end.
            Reading::Incomplete => {
                prop_assert!(!matches!(got, Reading::Valid { .. }), "{:?}", got)
            }
            _ => prop_assert_eq!(got, want),
        }
        if let Reading::Valid { end, data_len } = want {
            prop_assert_eq!(feed(&input, &cuts, &limits).unwrap(), (end, true, data_len));
        }
    }

    #[test]
    fn sizes_of_any_width(
        line in "[0-9a-fA-F]{1,20}(;[a-z]{0,3})?\r\n",
        tail in prop::collection::vec(framing_byte(), 0..40),
    ) {
        let mut input = line.into_bytes();
        input.extend(tail);
        let limits = Limits::default();
        let want = reference(&input, limits.max_chunk_ext, limits.max_trailer_bytes);
        let got = scanner_reading(&input, &limits).0;
        match want {
            Reading::Incomplete => prop_assert!(!matches!(got, Reading::Valid { .. }), "{:?}", got),
            _ => prop_assert_eq!(got, want),
        }
    }

    #[test]
    fn limits_hold_to_the_byte(body in chunked()) {
        let just = Limits { max_chunk_ext: body.max_ext, max_trailer_bytes: body.trailer_bytes, ..Limits::default() };
        prop_assert_eq!(feed(&body.bytes, &[], &just).unwrap(), (body.bytes.len(), true, body.data_len));
        let trailers = Limits { max_trailer_bytes: body.trailer_bytes - 1, ..just };
        prop_assert_eq!(feed(&body.bytes, &[], &trailers), Err(ChunkError::TrailersTooLarge));
        if body.max_ext > 0 {
            let ext = Limits { max_chunk_ext: body.max_ext - 1, ..just };
            prop_assert_eq!(feed(&body.bytes, &[], &ext), Err(ChunkError::ExtensionTooLong));
        }
    }

    #[test]
    fn a_chunked_request_ends_where_the_next_begins(
        req in chunked_request(),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let limits = Limits::default();
        let wire = req.wire();
        let head = RequestHead::parse(&wire, &limits).unwrap().unwrap();
        prop_assert_eq!(head.body, http1::RequestBody::Chunked);
        let (consumed, done, _) = feed(&wire[head.len..], &cuts, &limits).unwrap();
        prop_assert!(done);
        let next = &wire[head.len + consumed..];
        prop_assert_eq!(next, NEXT);
        let next_head = RequestHead::parse(next, &limits).unwrap().unwrap();
        prop_assert_eq!(next_head.path(next), b"/next");
    }
}
