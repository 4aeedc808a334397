//! Refuses HTTP/1 requests whose length is framed twice (`Content-Length` and
//! `Transfer-Encoding` in one head), the shape of request smuggling.
//!
//! RFC 9112 §6.3 lets a server either refuse such a request or let `Transfer-Encoding` win and
//! close the connection afterwards. hyper does the latter, and removes `Content-Length` from the
//! head before the service sees it, so the pipeline cannot tell. The safest front door refuses
//! (as nginx does): a server behind another proxy that trusted `Content-Length` would otherwise
//! disagree with us about where the request ends.
//!
//! [`Guard`] wraps a connection's reads and follows the HTTP/1 framing (heads, then bodies by
//! `Content-Length` or chunked) without holding back or copying a byte. When a head that declares
//! both lengths ends, it overwrites that head's final line feed with a NUL, so hyper's parser
//! refuses the head (400, connection closed) before any request is formed. Anything it does not
//! follow (the HTTP/2 preface, an upgrade, a framing hyper will refuse anyway) switches it off for
//! the rest of the connection; it never lets through what hyper would refuse, and costs nothing
//! on bodies but a subtraction.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest header name (or request-line prefix) the scanner keeps to classify a line.
const NAME_CAP: usize = 24;

/// A connection whose request heads are checked for double framing as they are read.
pub(crate) struct Guard<I> {
    inner: I,
    scanner: Scanner,
}

impl<I> Guard<I> {
    pub(crate) fn new(inner: I) -> Self {
        Self {
            inner,
            scanner: Scanner::default(),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Guard<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.scanner.feed(&mut buf.filled_mut()[before..]);
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Guard<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Where the scanner is in the byte stream of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Where {
    /// In a request head (request line or a header line).
    Head,
    /// In a body of known length: this many bytes remain.
    Length(u64),
    /// In a chunk-size line (size, then extensions, up to the line feed).
    ChunkSize,
    /// In chunk data: this many bytes remain, then CRLF.
    ChunkData(u64),
    /// In the CRLF after chunk data: this many bytes of it remain.
    ChunkEnd(u8),
    /// In the trailer section after the last chunk.
    Trailers,
    /// Not following any more (HTTP/2, an upgrade, framing hyper refuses).
    Off,
}

/// The HTTP/1 framing follower; pure, so that it can be tested on any split of the stream.
#[derive(Debug)]
pub(crate) struct Scanner {
    at: Where,
    /// The current line's first bytes, lowercased (up to [`NAME_CAP`]).
    line: [u8; NAME_CAP],
    line_len: usize,
    /// Whether the current line's bytes so far are all still in `line`.
    line_whole: bool,
    /// Whether the current line has a colon yet (header lines), and the value digits after it.
    in_value: bool,
    /// The line being scanned is the head's request line.
    request_line: bool,
    /// The current line is a `Content-Length` line; its value so far.
    length_line: bool,
    length_value: Option<u64>,
    /// The current line is a `Transfer-Encoding` line; whether its value ends in `chunked`.
    te_line: bool,
    te_tail: [u8; 7],
    /// What the current head declared.
    head: HeadFacts,
    /// Chunk size being read.
    chunk: u64,
    chunk_digits: bool,
    chunk_ext: bool,
    /// Trailer line had a byte other than CR.
    trailer_nonempty: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct HeadFacts {
    content_length: Option<u64>,
    /// A `Content-Length` line whose value did not parse (hyper refuses the head).
    length_invalid: bool,
    transfer_encoding: bool,
    chunked_last: bool,
    upgrade: bool,
}

impl HeadFacts {
    /// Both a `Content-Length` line (valid or not) and a `Transfer-Encoding` line.
    fn double_framed(&self) -> bool {
        self.transfer_encoding && (self.content_length.is_some() || self.length_invalid)
    }
}

impl Default for Scanner {
    fn default() -> Self {
        Self {
            at: Where::Head,
            line: [0; NAME_CAP],
            line_len: 0,
            line_whole: true,
            in_value: false,
            request_line: true,
            length_line: false,
            length_value: None,
            te_line: false,
            te_tail: [0; 7],
            head: HeadFacts::default(),
            chunk: 0,
            chunk_digits: false,
            chunk_ext: false,
            trailer_nonempty: false,
        }
    }
}

impl Scanner {
    /// Follows `bytes` (the next bytes the client sent); overwrites the final line feed of a
    /// doubly framed head with NUL.
    pub(crate) fn feed(&mut self, bytes: &mut [u8]) {
        let mut i = 0;
        while i < bytes.len() {
            match self.at {
                Where::Off => return,
                Where::Length(left) => {
                    let take = left.min((bytes.len() - i) as u64);
                    i += take as usize;
                    self.at = match left - take {
                        0 => self.next_head(),
                        rest => Where::Length(rest),
                    };
                }
                Where::ChunkData(left) => {
                    let take = left.min((bytes.len() - i) as u64);
                    i += take as usize;
                    self.at = match left - take {
                        0 => Where::ChunkEnd(2),
                        rest => Where::ChunkData(rest),
                    };
                }
                Where::ChunkEnd(left) => {
                    let expected = if left == 2 { b'\r' } else { b'\n' };
                    self.at = match (bytes[i] == expected, left) {
                        (false, _) => Where::Off,
                        (true, 2) => Where::ChunkEnd(1),
                        (true, _) => Where::ChunkSize,
                    };
                    i += 1;
                }
                Where::ChunkSize => {
                    self.chunk_size_byte(bytes[i]);
                    i += 1;
                }
                Where::Trailers => {
                    match bytes[i] {
                        b'\n' if !self.trailer_nonempty => self.at = self.next_head(),
                        b'\n' => self.trailer_nonempty = false,
                        b'\r' => {}
                        _ => self.trailer_nonempty = true,
                    }
                    i += 1;
                }
                Where::Head => {
                    let byte = bytes[i];
                    if byte == b'\n' {
                        if self.end_of_line() {
                            // The empty line: the head is complete.
                            if self.head.double_framed() {
                                bytes[i] = 0;
                                self.at = Where::Off;
                                return;
                            }
                            self.at = self.body();
                        }
                    } else {
                        self.head_byte(byte);
                    }
                    i += 1;
                }
            }
        }
    }

    fn head_byte(&mut self, byte: u8) {
        if !self.in_value {
            if byte == b':' && !self.request_line {
                self.in_value = true;
                let name = &self.line[..self.line_len];
                self.length_line = self.line_whole && name == b"content-length";
                self.te_line = self.line_whole && name == b"transfer-encoding";
                self.length_value = None;
                self.te_tail = [0; 7];
                return;
            }
            if self.line_len < NAME_CAP {
                self.line[self.line_len] = byte.to_ascii_lowercase();
                self.line_len += 1;
            } else {
                self.line_whole = false;
            }
            if self.request_line && self.line_len == 4 && &self.line[..4] == b"pri " {
                // The HTTP/2 connection preface: not HTTP/1 framing.
                self.at = Where::Off;
            }
            return;
        }
        if self.in_value && self.length_line {
            match byte {
                b'0'..=b'9' => {
                    let digit = u64::from(byte - b'0');
                    self.length_value = match self.length_value {
                        None => Some(digit),
                        Some(v) => v.checked_mul(10).and_then(|v| v.checked_add(digit)),
                    };
                    if self.length_value.is_none() {
                        self.head.length_invalid = true;
                    }
                }
                b' ' | b'\t' | b'\r' => {}
                _ => self.head.length_invalid = true,
            }
        }
        if self.in_value && self.te_line && !matches!(byte, b'\r' | b' ' | b'\t') {
            self.te_tail.rotate_left(1);
            self.te_tail[6] = byte.to_ascii_lowercase();
        }
    }

    /// Ends the current head line; returns whether it was the empty line.
    fn end_of_line(&mut self) -> bool {
        let empty =
            !self.in_value && (self.line_len == 0 || (self.line_len == 1 && self.line[0] == b'\r'));
        if self.request_line {
            self.request_line = false;
            if self.line_whole && self.line_len >= 8 && &self.line[..8] == b"connect " {
                self.head.upgrade = true;
            }
        } else if !empty && !self.in_value {
            // A header line without a colon: hyper refuses the head.
            self.at = Where::Off;
        } else if self.length_line {
            match self.length_value {
                Some(v) if self.head.content_length.is_none_or(|prev| prev == v) => {
                    self.head.content_length = Some(v);
                }
                _ => self.head.length_invalid = true,
            }
        } else if self.te_line {
            self.head.transfer_encoding = true;
            // Each Transfer-Encoding line replaces what the last one ended with.
            self.head.chunked_last = &self.te_tail == b"chunked";
        } else if self.in_value && self.line_whole && &self.line[..self.line_len] == b"upgrade" {
            self.head.upgrade = true;
        }
        self.line_len = 0;
        self.line_whole = true;
        self.in_value = false;
        self.length_line = false;
        self.te_line = false;
        empty
    }

    /// Where the body of the head just completed starts.
    fn body(&mut self) -> Where {
        let head = self.head;
        if head.upgrade || head.length_invalid {
            return Where::Off;
        }
        if head.transfer_encoding {
            if !head.chunked_last {
                return Where::Off;
            }
            self.chunk = 0;
            self.chunk_digits = false;
            self.chunk_ext = false;
            return Where::ChunkSize;
        }
        match head.content_length {
            Some(n) if n > 0 => Where::Length(n),
            _ => self.next_head(),
        }
    }

    fn next_head(&mut self) -> Where {
        self.head = HeadFacts::default();
        self.request_line = true;
        self.line_len = 0;
        self.line_whole = true;
        self.in_value = false;
        self.trailer_nonempty = false;
        Where::Head
    }

    fn chunk_size_byte(&mut self, byte: u8) {
        if self.chunk_ext {
            if byte == b'\n' {
                self.end_chunk_size();
            }
            return;
        }
        match byte {
            b'\n' => self.end_chunk_size(),
            b';' | b' ' | b'\t' | b'\r' => self.chunk_ext = true,
            _ => match (byte as char).to_digit(16) {
                Some(d) => {
                    self.chunk_digits = true;
                    match self
                        .chunk
                        .checked_mul(16)
                        .and_then(|c| c.checked_add(u64::from(d)))
                    {
                        Some(c) => self.chunk = c,
                        None => self.at = Where::Off,
                    }
                }
                None => self.at = Where::Off,
            },
        }
    }

    fn end_chunk_size(&mut self) {
        if !self.chunk_digits {
            self.at = Where::Off;
            return;
        }
        let size = self.chunk;
        self.chunk = 0;
        self.chunk_digits = false;
        self.chunk_ext = false;
        self.at = if size == 0 {
            self.trailer_nonempty = false;
            Where::Trailers
        } else {
            Where::ChunkData(size)
        };
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Feeds `stream` in pieces cut at `cuts`; returns what hyper would read.
    fn scan(stream: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = stream.to_vec();
        let mut scanner = Scanner::default();
        let mut start = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        for cut in cuts.into_iter().chain([stream.len()]) {
            if cut > start {
                scanner.feed(&mut out[start..cut]);
                start = cut;
            }
        }
        out
    }

    fn poisoned(out: &[u8]) -> bool {
        out.contains(&0)
    }

    const CL_TE: &[u8] =
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    const TE_CL: &[u8] =
        b"POST /a HTTP/1.1\r\nHost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n0\r\n\r\n";

    #[test]
    fn a_head_with_both_lengths_is_spoiled_at_its_end() {
        for stream in [CL_TE, TE_CL] {
            let out = scan(stream, &[]);
            let end = stream.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 3;
            assert_eq!(out[end], 0);
            assert_eq!(out.iter().filter(|b| **b == 0).count(), 1);
        }
    }

    #[test]
    fn well_framed_requests_pass_untouched_even_when_bodies_look_like_heads() {
        let body = b"Content-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut stream = Vec::new();
        stream.extend_from_slice(
            format!(
                "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        stream.extend_from_slice(body);
        stream.extend_from_slice(
            b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        stream.extend_from_slice(format!("{:x};ext=1\r\n", body.len()).as_bytes());
        stream.extend_from_slice(body);
        stream.extend_from_slice(b"\r\n0\r\nX-Trailer: 1\r\n\r\n");
        stream.extend_from_slice(b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
        let out = scan(&stream, &[]);
        assert_eq!(out, stream);
        // ...and the request after them is still followed.
        let mut then = stream.clone();
        then.extend_from_slice(CL_TE);
        assert!(poisoned(&scan(&then, &[])));
    }

    #[test]
    fn the_http2_preface_and_upgrades_switch_it_off() {
        let mut h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        h2.extend_from_slice(CL_TE);
        assert!(!poisoned(&scan(&h2, &[])));
        let mut upgrade =
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
                .to_vec();
        upgrade.extend_from_slice(CL_TE);
        assert!(!poisoned(&scan(&upgrade, &[])));
    }

    proptest! {
        /// However the stream is cut into reads, the same byte is spoiled (or none).
        #[test]
        fn the_verdict_does_not_depend_on_how_reads_split_the_stream(
            cuts in proptest::collection::vec(0usize..400, 0..12),
            which in 0usize..4,
        ) {
            let ok: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: y\r\n\r\n";
            let streams: [Vec<u8>; 4] = [
                CL_TE.to_vec(),
                TE_CL.to_vec(),
                ok.to_vec(),
                [ok, CL_TE].concat(),
            ];
            let stream = &streams[which];
            prop_assert_eq!(scan(stream, &cuts), scan(stream, &[]));
        }

        /// Arbitrary bytes never panic it.
        #[test]
        fn any_bytes_are_followed_without_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..8),
        ) {
            let _ = scan(&bytes, &cuts);
        }
    }
}
