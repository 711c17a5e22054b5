//! The HTTP/1.1 wire of the lean client ([`super::Client`]): a POST written as one buffer, an
//! answer's head parsed with `httparse`, and its body's framing (a length, chunks, or the
//! connection's close) taken off the bytes read, as RFC 9112 §6 reads a response.
//!
//! Nothing here does I/O: the client reads into a buffer and hands it over, so every rule
//! can be tested on bytes alone.

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
use smallvec::SmallVec;

/// Longest head an answer may have: its status line and headers, or a chunk's size line and
/// the trailers after the last chunk.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header lines an answer's head may have.
pub const MAX_HEADERS: usize = 100;

/// Longest body written into the request's buffer, so that head and body leave in one
/// write; a longer one is sent from where it is, after the head, rather than copied (and
/// the buffer, kept with its connection, stays small).
pub const INLINE_BODY: usize = 16 * 1024;

/// Writes a POST of `body` to `target` into `out` (cleared first): the request line, the
/// headers `headers` adds, `Host` unless it added one, `Content-Length`, and the body if it
/// is no longer than [`INLINE_BODY`]. Returns what is left to send after `out`: nothing, or
/// the whole body.
pub fn write_post<'b>(
    out: &mut Vec<u8>,
    target: &str,
    host: &HeaderValue,
    headers: impl FnOnce(&mut Lines<'_>),
    body: &'b [u8],
) -> &'b [u8] {
    let inline = body.len() <= INLINE_BODY;
    out.clear();
    out.reserve(256 + target.len() + if inline { body.len() } else { 0 });
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut lines = Lines { out, host: false };
    headers(&mut lines);
    let Lines {
        out,
        host: has_host,
    } = lines;
    if !has_host {
        line(out, HOST.as_str().as_bytes(), host.as_bytes());
    }
    let mut digits = itoa::Buffer::new();
    line(
        out,
        CONTENT_LENGTH.as_str().as_bytes(),
        digits.format(body.len()).as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    if !inline {
        return body;
    }
    out.extend_from_slice(body);
    &[]
}

/// The header lines of a request being written. A [`HeaderName`] and a [`HeaderValue`] hold
/// nothing a header line cannot carry (no line breaks), so each goes out as it is.
pub struct Lines<'a> {
    out: &'a mut Vec<u8>,
    host: bool,
}

impl Lines<'_> {
    /// Adds a header line; the body's framing is the writer's, so a `Content-Length` or
    /// `Transfer-Encoding` given here is left out.
    pub fn add(&mut self, name: &HeaderName, value: &HeaderValue) {
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING {
            return;
        }
        self.host |= name == HOST;
        line(self.out, name.as_str().as_bytes(), value.as_bytes());
    }

    /// Adds every header of `map`.
    pub fn extend(&mut self, map: &HeaderMap) {
        for (name, value) in map {
            self.add(name, value);
        }
    }
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// What the start of the read buffer holds.
#[derive(Debug)]
pub enum Head {
    /// Not a whole head yet.
    Partial,
    /// An interim (1xx) answer, taken off the buffer: the final one follows.
    Interim,
    /// The final answer's head, `len` bytes long.
    Final(Final),
}

/// A final answer's head, and how its body is framed.
#[derive(Debug)]
pub struct Final {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// Whether the connection may carry another request once this body was read.
    pub reuse: bool,
}

/// How an answer's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// After this many bytes (0: there is no body).
    Length(u64),
    /// After the last chunk and its trailers.
    Chunked,
    /// When the upstream closes the connection.
    Close,
}

/// Parses the head at the start of `buf` (RFC 9112 §4 and §6.3, for the answer to a POST)
/// and, once it is whole, takes it off the buffer. The header values share the head's bytes.
pub fn parse_head(buf: &mut BytesMut) -> Result<Head, String> {
    if buf.is_empty() {
        return Ok(Head::Partial);
    }
    // Left uninitialized: most heads fill a few of the hundred.
    let mut lines = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        &buf[..],
        &mut lines,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(format!("answer head longer than {MAX_HEAD} bytes"));
        }
        Ok(httparse::Status::Partial) => return Ok(Head::Partial),
        Err(e) => return Err(format!("invalid answer head: {e}")),
    };
    let code = resp.code.unwrap_or_default();
    let status = StatusCode::from_u16(code).map_err(|_| format!("invalid status {code}"))?;
    if status.is_informational() {
        // 101 would switch protocols, which a POST here never asks for.
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(String::from("unexpected 101 Switching Protocols"));
        }
        buf.advance(len);
        return Ok(Head::Interim);
    }
    let version = match resp.version {
        Some(0) => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    // Where each name and value lie in the head, so that the values can be slices of it
    // (no copy each) once it is split off the buffer.
    let start = buf.as_ptr() as usize;
    let at = |part: &[u8]| {
        let from = if part.is_empty() {
            0
        } else {
            part.as_ptr() as usize - start
        };
        from..from + part.len()
    };
    let places: SmallVec<[_; 16]> = resp
        .headers
        .iter()
        .map(|h| (at(h.name.as_bytes()), at(h.value)))
        .collect();
    let head = buf.split_to(len).freeze();
    let mut headers = HeaderMap::with_capacity(places.len());
    let mut said = Framed::default();
    for (name, value) in places {
        let name = HeaderName::from_bytes(&head[name.clone()]).map_err(|_| {
            format!(
                "invalid header name {:?}",
                String::from_utf8_lossy(&head[name])
            )
        })?;
        let value = HeaderValue::from_maybe_shared(head.slice(value))
            .map_err(|_| format!("invalid value of header {name}"))?;
        said.note(&name, &value);
        headers.append(name, value);
    }
    let mut reuse = match version {
        Version::HTTP_10 => said.keep_alive,
        _ => !said.close,
    };
    let framing = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        Framing::Length(0)
    } else if said.transfer_encoding {
        // A length beside chunks may be a smuggling attempt: the chunks count, and the
        // connection carries nothing after this answer (RFC 9112 §6.3, point 3).
        if said.length.is_some() || version == Version::HTTP_10 {
            reuse = false;
        }
        if said.chunked_last {
            Framing::Chunked
        } else {
            Framing::Close
        }
    } else if let Some(length) = said.length {
        Framing::Length(length.map_err(String::from)?)
    } else {
        Framing::Close
    };
    if framing == Framing::Close {
        reuse = false;
    }
    Ok(Head::Final(Final {
        status,
        version,
        headers,
        framing,
        reuse,
    }))
}

/// What an answer's head says of its framing and its connection, noted header by header as
/// the head is read (rather than looked up again by name).
#[derive(Default)]
struct Framed {
    transfer_encoding: bool,
    /// Whether the last coding of all `Transfer-Encoding` headers is `chunked`.
    chunked_last: bool,
    /// The `Content-Length`, once one came: every one (and every item of a list) must be
    /// the same number, or the framing cannot be trusted (RFC 9112 §6.3, point 5).
    length: Option<Result<u64, &'static str>>,
    /// `Connection` tokens.
    close: bool,
    keep_alive: bool,
}

impl Framed {
    fn note(&mut self, name: &HeaderName, value: &HeaderValue) {
        if name == TRANSFER_ENCODING {
            self.transfer_encoding = true;
            if let Some(last) = tokens(value).last() {
                self.chunked_last = last.eq_ignore_ascii_case("chunked");
            }
        } else if name == CONTENT_LENGTH {
            for item in value.as_bytes().split(|&b| b == b',') {
                let n = decimal(item.trim_ascii()).ok_or("invalid content-length");
                self.length = Some(match (self.length, n) {
                    (Some(Err(e)), _) | (_, Err(e)) => Err(e),
                    (Some(Ok(m)), Ok(n)) if m != n => Err("conflicting content-length values"),
                    (_, n) => n,
                });
            }
        } else if name == CONNECTION {
            for token in tokens(value) {
                self.close |= token.eq_ignore_ascii_case("close");
                self.keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
}

/// A length as digits only (no sign, no spaces), at most 19 of them so it cannot overflow.
fn decimal(digits: &[u8]) -> Option<u64> {
    let valid = !digits.is_empty() && digits.len() <= 19 && digits.iter().all(u8::is_ascii_digit);
    valid.then(|| digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The comma-separated tokens of a header value, trimmed.
fn tokens(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Takes an answer's body off the bytes read, as its framing says.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    /// Trailer bytes seen so far, against [`MAX_HEAD`].
    trailers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// This many body bytes are still to come.
    Length(u64),
    /// A chunk's size line is next.
    Size,
    /// This many bytes of the current chunk are still to come.
    Chunk(u64),
    /// The line break that ends a chunk's data is next.
    ChunkEnd,
    /// Trailer lines, up to an empty one.
    Trailers,
    /// Everything until the connection closes.
    Close,
    Done,
}

/// What [`Decoder::decode`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Data(Bytes),
    /// More bytes must be read first.
    More,
    /// The body is complete.
    End,
}

impl Decoder {
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size,
            Framing::Close => State::Close,
        };
        Decoder { state, trailers: 0 }
    }

    /// Whether the body ended (every byte of it taken off the buffer).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The next piece of the body in `buf` (removed from it), or what stops it.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Step, String> {
        loop {
            match self.state {
                State::Done => return Ok(Step::End),
                State::Length(left) | State::Chunk(left) => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    let take = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    let left = left - take as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::ChunkEnd,
                        _ => State::Chunk(left),
                    };
                    return Ok(Step::Data(buf.split_to(take).freeze()));
                }
                State::Close => {
                    if buf.is_empty() {
                        return Ok(Step::More);
                    }
                    return Ok(Step::Data(buf.split().freeze()));
                }
                State::ChunkEnd => {
                    if buf.len() < 2 {
                        return Ok(Step::More);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(String::from(
                            "invalid chunked body: no line break after a chunk",
                        ));
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Size => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::More);
                    };
                    let size = chunk_size(&line)?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Chunk(size)
                    };
                }
                State::Trailers => {
                    let Some(line) = take_line(buf)? else {
                        return Ok(Step::More);
                    };
                    if line.is_empty() {
                        self.state = State::Done;
                    } else {
                        // Trailers carry nothing the gateway reads.
                        self.trailers += line.len() + 2;
                        if self.trailers > MAX_HEAD {
                            return Err(format!(
                                "chunked body's trailers longer than {MAX_HEAD} bytes"
                            ));
                        }
                    }
                }
            }
        }
    }

    /// The connection closed: the end of a body framed by the close, an error for any other.
    pub fn closed(&mut self) -> Result<(), String> {
        match self.state {
            State::Close | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(String::from(
                "connection closed before the answer's body ended",
            )),
        }
    }
}

/// Takes one CRLF-ended line (without its CRLF) off the front of `buf`; `None` while it has
/// not all come.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, String> {
    let Some(lf) = memchr::memchr(b'\n', buf) else {
        if buf.len() > MAX_HEAD {
            return Err(format!("chunked body's line longer than {MAX_HEAD} bytes"));
        }
        return Ok(None);
    };
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err(String::from(
            "invalid chunked body: a line not ended by CRLF",
        ));
    }
    let mut line = buf.split_to(lf + 1);
    line.truncate(lf - 1);
    Ok(Some(line))
}

/// A chunk's size from its size line: hex digits, then optional whitespace and extensions
/// (`;name=value`), which carry nothing the gateway reads.
fn chunk_size(line: &[u8]) -> Result<u64, String> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = line[digits..].trim_ascii_start();
    if digits == 0 || digits > 16 || !(rest.is_empty() || rest[0] == b';') {
        return Err(String::from("invalid chunked body: a bad chunk size"));
    }
    Ok(line[..digits]
        .iter()
        .fold(0u64, |n, &d| (n << 4) | u64::from(hex_value(d))))
}

fn hex_value(d: u8) -> u8 {
    match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => d - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Final {
        match parse_head(&mut BytesMut::from(text)).unwrap() {
            Head::Final(f) => f,
            other => panic!("not a final head: {other:?}"),
        }
    }

    /// Decodes `wire` given in pieces of `step` bytes, as reads would bring it; the body, and
    /// whether it ended.
    fn decode_in_pieces(
        framing: Framing,
        wire: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, bool), String> {
        let mut decoder = Decoder::new(framing);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut pieces = wire.chunks(step);
        loop {
            match decoder.decode(&mut buf)? {
                Step::Data(d) => body.extend_from_slice(&d),
                Step::End => return Ok((body, buf.is_empty())),
                Step::More => match pieces.next() {
                    Some(p) => buf.extend_from_slice(p),
                    None => {
                        decoder.closed()?;
                        return Ok((body, false));
                    }
                },
            }
        }
    }

    #[test]
    fn a_post_is_one_buffer_with_host_and_length() {
        let mut out = b"left over".to_vec();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-two", HeaderValue::from_static("a"));
        headers.append("x-two", HeaderValue::from_static("b"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("999"));
        headers.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        let host = HeaderValue::from_static("h:1");
        write_post(&mut out, "/mcp?x=1", &host, |l| l.extend(&headers), b"{}");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /mcp?x=1 HTTP/1.1\r\ncontent-type: application/json\r\n\
             x-two: a\r\nx-two: b\r\nhost: h:1\r\ncontent-length: 2\r\n\r\n{}"
        );
        let mut out = Vec::new();
        let mine = HeaderValue::from_static("mine");
        write_post(&mut out, "/", &host, |l| l.add(&HOST, &mine), b"");
        assert_eq!(
            out,
            b"POST / HTTP/1.1\r\nhost: mine\r\ncontent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn a_long_body_is_left_out_of_the_buffer() {
        let host = HeaderValue::from_static("h");
        let mut out = Vec::new();
        let body = vec![b' '; INLINE_BODY];
        assert!(write_post(&mut out, "/", &host, |_| {}, &body).is_empty());
        assert!(out.ends_with(&body));
        let body = vec![b' '; INLINE_BODY + 1];
        let rest = write_post(&mut out, "/", &host, |_| {}, &body);
        assert_eq!(rest.len(), body.len());
        let head = format!(
            "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        assert_eq!(out, head.as_bytes());
    }

    #[test]
    fn the_head_says_how_the_body_ends() {
        let f = head(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{",
        );
        assert_eq!(
            (f.status, f.framing, f.reuse),
            (StatusCode::OK, Framing::Length(11), true)
        );
        assert_eq!(f.headers["content-type"], "application/json");
        let f = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
        assert_eq!((f.framing, f.reuse), (Framing::Chunked, true));
        let f = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert_eq!((f.framing, f.reuse), (Framing::Close, false));
        let f = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n");
        assert_eq!((f.framing, f.reuse), (Framing::Chunked, false));
        let f = head("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n");
        assert_eq!((f.framing, f.reuse), (Framing::Close, false));
        let f = head("HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(
            (f.status, f.framing, f.reuse),
            (StatusCode::ACCEPTED, Framing::Length(0), true)
        );
        let f = head("HTTP/1.1 204 No Content\r\ntransfer-encoding: chunked\r\n\r\n");
        assert_eq!((f.framing, f.reuse), (Framing::Length(0), true));
        let f =
            head("HTTP/1.1 200 OK\r\nconnection: keep-alive, Close\r\ncontent-length: 1\r\n\r\n");
        assert_eq!((f.framing, f.reuse), (Framing::Length(1), false));
        let f = head("HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n");
        assert_eq!((f.version, f.reuse), (Version::HTTP_10, false));
        let f = head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 1\r\n\r\n");
        assert!(f.reuse);
        let f = head("HTTP/1.1 200 OK\r\ncontent-length: 7, 7\r\ncontent-length: 7\r\n\r\n");
        assert_eq!(f.framing, Framing::Length(7));
    }

    #[test]
    fn a_head_that_cannot_be_trusted_is_an_error() {
        for bad in [
            "HTTP/1.1 200 OK\r\ncontent-length: 7\r\ncontent-length: 8\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 7, 8\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: \r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            "HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 20 Twenty\r\n\r\n",
        ] {
            assert!(
                parse_head(&mut BytesMut::from(bad)).is_err(),
                "{bad:?} was taken"
            );
        }
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: 1\r\n")).collect();
        let text = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert!(parse_head(&mut BytesMut::from(text.as_str())).is_err());
        let long = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD));
        assert!(parse_head(&mut BytesMut::from(long.as_str())).is_err());
        assert!(matches!(
            parse_head(&mut BytesMut::from(&long.as_bytes()[..1000])),
            Ok(Head::Partial)
        ));
    }

    #[test]
    fn interim_answers_are_taken_off_the_buffer() {
        let mut buf = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"[..]);
        assert!(matches!(parse_head(&mut buf), Ok(Head::Interim)));
        assert_eq!(buf, &b"HTTP/1.1 200 OK\r\n"[..]);
        assert!(matches!(parse_head(&mut buf), Ok(Head::Partial)));
        assert_eq!(buf.len(), 17, "a partial head stays in the buffer");
    }

    #[test]
    fn a_whole_head_is_taken_off_the_buffer_and_its_values_kept() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\nMcp-Session-Id: s-1\r\nx-empty:\r\ncontent-length: 2\r\n\r\n{}"[..],
        );
        let Ok(Head::Final(f)) = parse_head(&mut buf) else {
            panic!("not a final head");
        };
        assert_eq!(buf, &b"{}"[..]);
        assert_eq!(f.headers["mcp-session-id"], "s-1");
        assert_eq!(f.headers["x-empty"], "");
        assert_eq!(f.headers["content-length"], "2");
        assert_eq!(f.headers.len(), 3);
    }

    #[test]
    fn a_length_ends_the_body_whatever_the_pieces() {
        for step in [1, 2, 5, 100] {
            assert_eq!(
                decode_in_pieces(Framing::Length(11), b"hello worldNEXT", step)
                    .unwrap()
                    .0,
                b"hello world"
            );
        }
        let (body, clean) = decode_in_pieces(Framing::Length(5), b"hello", 3).unwrap();
        assert_eq!((body.as_slice(), clean), (&b"hello"[..], true));
        assert!(decode_in_pieces(Framing::Length(6), b"hello", 3).is_err());
        assert_eq!(
            decode_in_pieces(Framing::Length(0), b"", 1).unwrap(),
            (vec![], true)
        );
    }

    #[test]
    fn chunks_end_at_the_last_chunk_and_its_trailers() {
        let wire = b"5\r\nhello\r\n1;ext=\"a;b\"\r\n \r\nA \r\n0123456789\r\n0\r\nx-t: 1\r\n\r\n";
        for step in [1, 2, 3, 7, 1000] {
            let (body, clean) = decode_in_pieces(Framing::Chunked, wire, step).unwrap();
            assert_eq!(body, b"hello 0123456789", "in pieces of {step}");
            assert!(clean);
        }
        let (body, _) = decode_in_pieces(Framing::Chunked, b"0\r\n\r\n", 1).unwrap();
        assert!(body.is_empty());
        // 0xfF bytes announced, none came.
        assert!(decode_in_pieces(Framing::Chunked, b"fF\r\n", 4).is_err());
    }

    #[test]
    fn a_chunked_body_that_breaks_its_framing_is_an_error() {
        for bad in [
            &b"5\r\nhelloX\r\n0\r\n\r\n"[..],
            b"5\nhello\r\n0\r\n\r\n",
            b"g\r\n",
            b"\r\n",
            b"; ext\r\n",
            b"11111111111111111\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhel",
        ] {
            assert!(
                decode_in_pieces(Framing::Chunked, bad, 2).is_err(),
                "{:?} was taken",
                String::from_utf8_lossy(bad)
            );
        }
        let mut endless = b"5".to_vec();
        endless.extend(std::iter::repeat_n(b' ', MAX_HEAD + 1));
        assert!(decode_in_pieces(Framing::Chunked, &endless, 4096).is_err());
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..(MAX_HEAD / 10) {
            trailers.extend_from_slice(b"x-t: 1234\r\n");
        }
        assert!(decode_in_pieces(Framing::Chunked, &trailers, 4096).is_err());
    }

    #[test]
    fn a_body_framed_by_the_close_ends_with_it() {
        let (body, clean) = decode_in_pieces(Framing::Close, b"data: 1\n\ndata: 2\n\n", 4).unwrap();
        assert_eq!(body, b"data: 1\n\ndata: 2\n\n");
        assert!(!clean);
    }
}
