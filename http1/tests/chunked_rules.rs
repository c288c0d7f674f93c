//! The chunk-framing rules: a body in one piece and what the scanner answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http1::{ChunkError, ChunkedScanner, Limits, Scan};

/// `Ok((data_len, consumed))` for a body that ends, or the error.
type Want = Result<(u64, usize), ChunkError>;

fn scan(input: &[u8], limits: &Limits) -> Result<(u64, Scan), ChunkError> {
    let mut s = ChunkedScanner::new(limits);
    let r = s.scan(input)?;
    Ok((s.data_len(), r))
}

#[test]
fn chunk_rows() {
    use ChunkError::*;
    let ext_ok = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(1023));
    let ext_long = format!("5;{}\r\nhello\r\n0\r\n\r\n", "a".repeat(1024));
    let trailers_ok = format!("0\r\nX: {}\r\n\r\n", "t".repeat(8192 - 7));
    let trailers_long = format!("0\r\nX: {}\r\n\r\n", "t".repeat(8192 - 6));
    let rows: Vec<(&str, &[u8], Want)> = vec![
        ("one chunk", b"5\r\nhello\r\n0\r\n\r\n", Ok((5, 15))),
        ("empty body", b"0\r\n\r\n", Ok((0, 5))),
        ("two chunks", b"1\r\na\r\n2\r\nbc\r\n0\r\n\r\n", Ok((3, 18))),
        (
            "extension",
            b"5;name=value\r\nhello\r\n0\r\n\r\n",
            Ok((5, 26)),
        ),
        (
            "quoted extension",
            b"5;a=\"b c\";d\r\nhello\r\n0;last\r\n\r\n",
            Ok((5, 30)),
        ),
        (
            "extension at the limit",
            ext_ok.as_bytes(),
            Ok((5, ext_ok.len())),
        ),
        (
            "uppercase hex",
            b"A\r\n0123456789\r\n0\r\n\r\n",
            Ok((10, 20)),
        ),
        (
            "lowercase hex",
            b"a\r\n0123456789\r\n0\r\n\r\n",
            Ok((10, 20)),
        ),
        (
            "leading zeros",
            b"0005\r\nhello\r\n000\r\n\r\n",
            Ok((5, 20)),
        ),
        (
            "16 digits",
            b"000000000000000A\r\n0123456789\r\n0\r\n\r\n",
            Ok((10, 35)),
        ),
        ("trailers", b"0\r\nX-T: 1\r\nY:2\r\nZ:\r\n\r\n", Ok((0, 22))),
        (
            "trailers at the limit",
            trailers_ok.as_bytes(),
            Ok((0, trailers_ok.len())),
        ),
        (
            "a request after",
            b"0\r\n\r\nGET / HTTP/1.1\r\n",
            Ok((0, 5)),
        ),
        (
            "data that looks like framing",
            b"5\r\n0\r\n\r\n\r\n0\r\n\r\n",
            Ok((5, 15)),
        ),
        (
            "17 digits",
            b"00000000000000001\r\nx\r\n0\r\n\r\n",
            Err(SizeOverflow),
        ),
        ("u64 overflow", b"10000000000000000\r\n", Err(SizeOverflow)),
        ("no digits", b"\r\n", Err(BadSize)),
        ("not hex", b"g\r\n", Err(BadSize)),
        ("0x prefix", b"0x5\r\nhello\r\n0\r\n\r\n", Err(BadSize)),
        ("signed", b"-5\r\nhello\r\n0\r\n\r\n", Err(BadSize)),
        ("leading space", b" 5\r\nhello\r\n0\r\n\r\n", Err(BadSize)),
        ("trailing space", b"5 \r\nhello\r\n0\r\n\r\n", Err(BadSize)),
        (
            "space before extension",
            b"5 ;a\r\nhello\r\n0\r\n\r\n",
            Err(BadSize),
        ),
        ("trailing junk", b"5x\r\nhello\r\n0\r\n\r\n", Err(BadSize)),
        (
            "bare LF after size",
            b"5\nhello\r\n0\r\n\r\n",
            Err(BadLineEnd),
        ),
        (
            "bare CR after size",
            b"5\rhello\r\n0\r\n\r\n",
            Err(BadLineEnd),
        ),
        (
            "bare LF after data",
            b"5\r\nhello\n0\r\n\r\n",
            Err(BadLineEnd),
        ),
        (
            "bare CR after data",
            b"5\r\nhello\r0\r\n\r\n",
            Err(BadLineEnd),
        ),
        (
            "no CRLF after data",
            b"5\r\nhello0\r\n\r\n",
            Err(BadLineEnd),
        ),
        (
            "data longer than its size",
            b"5\r\nhello!\r\n0\r\n\r\n",
            Err(BadLineEnd),
        ),
        ("bare LF after the last chunk", b"0\n\r\n", Err(BadLineEnd)),
        ("bare LF ending the body", b"0\r\n\n", Err(BadLineEnd)),
        ("bare CR ending the body", b"0\r\n\rX", Err(BadLineEnd)),
        (
            "extension over the limit",
            ext_long.as_bytes(),
            Err(ExtensionTooLong),
        ),
        (
            "control char in extension",
            b"5;a\x01\r\nhello\r\n0\r\n\r\n",
            Err(BadSize),
        ),
        (
            "NUL in extension",
            b"5;a\0\r\nhello\r\n0\r\n\r\n",
            Err(BadSize),
        ),
        (
            "bare LF in extension",
            b"5;a\nhello\r\n0\r\n\r\n",
            Err(BadLineEnd),
        ),
        (
            "trailers over the limit",
            trailers_long.as_bytes(),
            Err(TrailersTooLarge),
        ),
        ("trailer without colon", b"0\r\nX\r\n\r\n", Err(BadTrailer)),
        (
            "trailer with empty name",
            b"0\r\n: v\r\n\r\n",
            Err(BadTrailer),
        ),
        (
            "SP before colon in trailer",
            b"0\r\nX : v\r\n\r\n",
            Err(BadTrailer),
        ),
        (
            "obs-fold in trailers",
            b"0\r\nX: a\r\n b\r\n\r\n",
            Err(BadTrailer),
        ),
        (
            "NUL in trailer value",
            b"0\r\nX: a\0\r\n\r\n",
            Err(BadTrailer),
        ),
        ("bare LF in trailers", b"0\r\nX: a\n\r\n", Err(BadLineEnd)),
        (
            "bare CR in trailers",
            b"0\r\nX: a\rb\r\n\r\n",
            Err(BadLineEnd),
        ),
    ];
    let limits = Limits::default();
    let mut wrong = Vec::new();
    for (name, input, want) in &rows {
        let got = scan(input, &limits).map(|(len, s)| {
            assert!(s.done, "{name}: not done: {s:?}");
            (len, s.consumed)
        });
        if got != *want {
            wrong.push(format!("{name}: {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn incomplete_and_after_the_end() {
    let limits = Limits::default();
    let mut s = ChunkedScanner::new(&limits);
    assert_eq!(
        s.scan(b"ffffffffffffffff\r\n"),
        Ok(Scan {
            consumed: 18,
            done: false
        })
    );
    // A huge chunk is skipped, not read: consumed whole, counted as data.
    let mb = vec![0u8; 1 << 20];
    assert_eq!(
        s.scan(&mb),
        Ok(Scan {
            consumed: mb.len(),
            done: false
        })
    );
    assert_eq!(s.data_len(), 1 << 20);

    let mut s = ChunkedScanner::new(&limits);
    assert_eq!(
        s.scan(b"0\r\n\r\n"),
        Ok(Scan {
            consumed: 5,
            done: true
        })
    );
    assert!(s.is_done());
    assert_eq!(
        s.scan(b"more"),
        Ok(Scan {
            consumed: 0,
            done: true
        })
    );
    assert_eq!(
        s.scan(b""),
        Ok(Scan {
            consumed: 0,
            done: true
        })
    );

    let mut s = ChunkedScanner::new(&limits);
    assert_eq!(
        s.scan(b"5\r\nhel"),
        Ok(Scan {
            consumed: 6,
            done: false
        })
    );
    assert_eq!(
        s.scan(b""),
        Ok(Scan {
            consumed: 0,
            done: false
        })
    );
    assert_eq!(
        s.scan(b"lo\r\n0\r\n\r"),
        Ok(Scan {
            consumed: 8,
            done: false
        })
    );
    assert_eq!(
        s.scan(b"\nrest"),
        Ok(Scan {
            consumed: 1,
            done: true
        })
    );
    assert_eq!(s.data_len(), 5);
}

#[test]
fn an_error_is_final() {
    let mut s = ChunkedScanner::new(&Limits::default());
    assert_eq!(s.scan(b"z"), Err(ChunkError::BadSize));
    assert_eq!(s.scan(b"0\r\n\r\n"), Err(ChunkError::BadSize));
    assert_eq!(s.scan(b""), Err(ChunkError::BadSize));
    let small = Limits {
        max_chunk_ext: 4,
        max_trailer_bytes: 6,
        ..Limits::default()
    };
    assert_eq!(scan(b"1;abc\r\nx\r\n0\r\n\r\n", &small).map(|r| r.0), Ok(1));
    assert_eq!(
        scan(b"1;abcd\r\nx\r\n", &small).map(|r| r.0),
        Err(ChunkError::ExtensionTooLong)
    );
    assert_eq!(scan(b"0\r\nX:\r\n\r\n", &small).map(|r| r.0), Ok(0));
    assert_eq!(
        scan(b"0\r\nX:1\r\n\r\n", &small).map(|r| r.0),
        Err(ChunkError::TrailersTooLarge)
    );
}
