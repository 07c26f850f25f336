//! A lean HTTP/1.1 keep-alive client connection: the worker's own task writes a prebuilt request
//! and parses the answer in place, with one read buffer reused for every exchange.
//!
//! Why not hyper's client: its connection runs in a task of its own, so every request crosses two
//! channels and wakes two tasks, and builds an `http::Request` and a `HeaderMap` per call. On this
//! 2-core machine the load generator shares the cores with the cluster it measures, and hyper's
//! client cost 24-33 µs of CPU per operation: a third of the machine at Tessera's rates, taken from
//! the nodes. This client does a `write` and (usually) one `read` per exchange, and nothing else.
//!
//! It parses what an HTTP/1.1 server may send a client that sends no `Expect` and no `Upgrade`:
//! a status line and headers (by `httparse`), informational `1xx` heads (skipped), then a body
//! framed by `Content-Length`, by `Transfer-Encoding: chunked` (chunk extensions and trailers
//! skipped), by its absence (`204`, `304`: none), or by the end of the connection. A malformed or
//! oversized answer is an error; the caller then drops the connection.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most header lines an answer may have.
const MAX_HEADERS: usize = 64;
/// The longest answer head (status line and headers).
const MAX_HEAD_BYTES: usize = 64 << 10;
/// The longest answer body: far above anything the benchmark reads, so a broken length fails fast.
const MAX_BODY_BYTES: usize = 64 << 20;
/// How much the buffer grows by for each read.
const READ_CHUNK: usize = 8 << 10;

/// One complete answer. `body` is valid until the next exchange.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The HTTP status.
    pub status: u16,
    /// The `X-Siblings` header, if it is a number.
    pub siblings: Option<u64>,
    /// The body, de-chunked.
    pub body: &'a [u8],
}

/// One open connection. Dropping it closes the connection.
pub struct Http1Connection {
    stream: TcpStream,
    /// Bytes read and not yet consumed by an answer; `buf[..filled]` is valid.
    buf: Vec<u8>,
    filled: usize,
    /// A chunked body, de-chunked (a `Content-Length` body is borrowed from `buf` instead).
    decoded: Vec<u8>,
    /// The last answer said the server closes the connection after it.
    closing: bool,
}

impl Http1Connection {
    /// Connects to `addr`, with Nagle off as a server's client would have it.
    pub async fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: vec![0; READ_CHUNK],
            filled: 0,
            decoded: Vec::new(),
            closing: false,
        })
    }

    /// Whether another request may be sent: the server did not say it closes the connection.
    pub fn reusable(&self) -> bool {
        !self.closing
    }

    /// Sends `request` (a whole HTTP/1.1 request, head and body) and reads its whole answer.
    /// An error leaves the connection in an unknown state: drop it.
    pub async fn exchange(&mut self, request: &[u8]) -> io::Result<Reply<'_>> {
        if self.closing {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the server closed this connection after its last answer",
            ));
        }
        self.stream.write_all(request).await?;
        // Bytes before `start` belong to answers already returned.
        let mut start = 0;
        let (head, framing) = loop {
            let parsed = self.parse_head(start)?;
            match parsed {
                Parsed::Partial => self.read_more(MAX_HEAD_BYTES).await?,
                Parsed::Informational(len) => start += len,
                Parsed::Head(head, framing) => break (head, framing),
            }
        };
        let body_start = start + head.len;
        let (body_range, end) = match framing {
            Framing::Empty => (body_start..body_start, body_start),
            Framing::Length(len) => {
                if len > MAX_BODY_BYTES {
                    return Err(invalid(format!("a body of {len} bytes is too long")));
                }
                while self.filled < body_start + len {
                    self.read_more(body_start + len).await?;
                }
                (body_start..body_start + len, body_start + len)
            }
            Framing::Chunked => {
                self.decoded.clear();
                let mut cursor = body_start;
                let end = loop {
                    match dechunk(&self.buf[..self.filled], cursor, &mut self.decoded)? {
                        Dechunk::Done(end) => break end,
                        Dechunk::More(next) => {
                            cursor = next;
                            if self.decoded.len() > MAX_BODY_BYTES {
                                return Err(invalid("a chunked body is too long".to_owned()));
                            }
                            self.read_more(MAX_HEAD_BYTES + 2 * MAX_BODY_BYTES).await?;
                        }
                    }
                };
                (0..0, end)
            }
            Framing::UntilClose => {
                while self.read_or_eof(body_start + MAX_BODY_BYTES).await? {}
                self.closing = true;
                (body_start..self.filled, self.filled)
            }
        };
        self.closing |= head.close;
        // Keep what follows this answer (nothing, for a closed-loop client) for the next one.
        let rest = self.filled - end;
        let body = match framing {
            Framing::Chunked => {
                self.buf.copy_within(end..self.filled, 0);
                self.filled = rest;
                self.decoded.as_slice()
            }
            _ if rest == 0 => {
                self.filled = 0;
                &self.buf[body_range]
            }
            _ => {
                // Rare: copy the body out so the buffer can shift.
                self.decoded.clear();
                self.decoded.extend_from_slice(&self.buf[body_range]);
                self.buf.copy_within(end..self.filled, 0);
                self.filled = rest;
                self.decoded.as_slice()
            }
        };
        Ok(Reply {
            status: head.status,
            siblings: head.siblings,
            body,
        })
    }

    fn parse_head(&self, start: usize) -> io::Result<Parsed> {
        parse_head(&self.buf[start..self.filled])
    }

    /// Reads at least one more byte, growing the buffer up to `limit` bytes; the end of the
    /// connection here is an error (the answer is incomplete).
    async fn read_more(&mut self, limit: usize) -> io::Result<()> {
        if self.read_or_eof(limit).await? {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed mid-answer",
            ))
        }
    }

    /// Reads more bytes; `false` at the end of the connection.
    async fn read_or_eof(&mut self, limit: usize) -> io::Result<bool> {
        if self.filled == self.buf.len() {
            if self.buf.len() >= limit {
                return Err(invalid(format!("an answer longer than {limit} bytes")));
            }
            let grown = (self.buf.len() * 2).min(limit.max(self.buf.len() + READ_CHUNK));
            self.buf.resize(grown, 0);
        }
        let n = self.stream.read(&mut self.buf[self.filled..]).await?;
        self.filled += n;
        Ok(n > 0)
    }
}

fn invalid(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

/// What an answer's head says.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    /// Bytes of the status line and headers, blank line included.
    len: usize,
    status: u16,
    siblings: Option<u64>,
    /// `Connection: close`, or an HTTP/1.0 answer without `Connection: keep-alive`.
    close: bool,
}

/// How the body after a head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// The head is not all here yet.
    Partial,
    /// A `1xx` head of this many bytes, to skip: the real answer follows.
    Informational(usize),
    Head(Head, Framing),
}

/// Parses the head at the start of `bytes`.
fn parse_head(bytes: &[u8]) -> io::Result<Parsed> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(error) => return Err(invalid(format!("a malformed answer head: {error}"))),
    };
    let status = response
        .code
        .ok_or_else(|| invalid("an answer without a status".to_owned()))?;
    if (100..200).contains(&status) && status != 101 {
        return Ok(Parsed::Informational(len));
    }
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut siblings = None;
    let mut close = response.version == Some(0);
    for header in response.headers.iter() {
        let value = header.value;
        if header.name.eq_ignore_ascii_case("content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| invalid("a malformed Content-Length".to_owned()))?;
            if length.is_some_and(|earlier| earlier != parsed) {
                return Err(invalid("conflicting Content-Lengths".to_owned()));
            }
            length = Some(parsed);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked must be the last coding; anything else leaves only the close to frame it.
            chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if !chunked {
                close = true;
            }
        } else if header.name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    close = false;
                }
            }
        } else if header.name.eq_ignore_ascii_case("x-siblings") {
            siblings = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        }
    }
    let framing = if status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        // RFC 9112 6.3: chunked wins over any Content-Length.
        Framing::Chunked
    } else if let Some(length) = length {
        Framing::Length(length)
    } else {
        close = true;
        Framing::UntilClose
    };
    Ok(Parsed::Head(
        Head {
            len,
            status,
            siblings,
            close,
        },
        framing,
    ))
}

/// Where de-chunking stopped.
#[derive(Debug, PartialEq, Eq)]
enum Dechunk {
    /// The body ended; the answer's last byte is just before this offset.
    Done(usize),
    /// More bytes are needed; resume at this offset (the start of an incomplete chunk).
    More(usize),
}

/// De-chunks `bytes` from `cursor`, a chunk boundary, appending each complete chunk's data to
/// `out` (so resuming at the returned offset appends nothing twice).
fn dechunk(bytes: &[u8], mut cursor: usize, out: &mut Vec<u8>) -> io::Result<Dechunk> {
    loop {
        let Some(line_end) = find_crlf(bytes, cursor) else {
            return Ok(Dechunk::More(cursor));
        };
        let line = &bytes[cursor..line_end];
        let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size_text)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| invalid("a malformed chunk size".to_owned()))?;
        let data_start = line_end + 2;
        if size == 0 {
            // Trailer lines, then a blank line.
            let mut at = data_start;
            loop {
                let Some(end) = find_crlf(bytes, at) else {
                    return Ok(Dechunk::More(cursor));
                };
                if end == at {
                    return Ok(Dechunk::Done(end + 2));
                }
                at = end + 2;
            }
        }
        let data_end = data_start
            .checked_add(size)
            .filter(|&end| end <= MAX_BODY_BYTES.saturating_mul(2))
            .ok_or_else(|| invalid(format!("a chunk of {size} bytes is too long")))?;
        if bytes.len() < data_end + 2 {
            return Ok(Dechunk::More(cursor));
        }
        if &bytes[data_end..data_end + 2] != b"\r\n" {
            return Err(invalid("a chunk without its CRLF".to_owned()));
        }
        out.extend_from_slice(&bytes[data_start..data_end]);
        cursor = data_end + 2;
    }
}

fn find_crlf(bytes: &[u8], from: usize) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(2)
        .position(|pair| pair == b"\r\n")
        .map(|at| from + at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn head(bytes: &[u8]) -> (Head, Framing) {
        match parse_head(bytes).unwrap() {
            Parsed::Head(head, framing) => (head, framing),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn heads_say_how_their_body_is_framed() {
        let (h, f) = head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-siblings: 2\r\n\r\nhello");
        assert_eq!(
            (h.status, h.siblings, h.close, h.len),
            (200, Some(2), false, 53)
        );
        assert_eq!(f, Framing::Length(5));
        let (h, f) = head(b"HTTP/1.1 300 Multiple Choices\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n");
        assert_eq!((h.status, f), (300, Framing::Chunked));
        let (h, f) = head(b"HTTP/1.1 204 No Content\r\nConnection: keep-alive, Close\r\n\r\n");
        assert_eq!((h.close, f), (true, Framing::Empty));
        let (h, f) = head(b"HTTP/1.1 200 OK\r\n\r\n");
        assert_eq!((h.close, f), (true, Framing::UntilClose));
        let (h, _) = head(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n");
        assert!(h.close, "HTTP/1.0 closes unless it says keep-alive");
        let (h, _) =
            head(b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n");
        assert!(!h.close);
        let (h, _) = head(b"HTTP/1.1 200 OK\r\nx-siblings: many\r\ncontent-length: 0\r\n\r\n");
        assert_eq!(h.siblings, None);
    }

    #[test]
    fn partial_informational_and_broken_heads() {
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(),
            Parsed::Partial
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n").unwrap(),
            Parsed::Informational(25)
        );
        for broken in [
            &b"HTTP/1.1 2x0 OK\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            b"SMTP ready\r\n\r\n",
        ] {
            assert!(
                parse_head(broken).is_err(),
                "{}",
                String::from_utf8_lossy(broken)
            );
        }
    }

    #[test]
    fn dechunks_across_any_split() {
        let body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nx-trailer: t\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..=body.len() {
            // Feed the first `split` bytes, then everything, resuming where it stopped.
            let mut out = Vec::new();
            let cursor = match dechunk(&body[..split], 0, &mut out).unwrap() {
                Dechunk::Done(at) => {
                    assert_eq!(at, end);
                    assert_eq!(out, b"Wikipedia");
                    continue;
                }
                Dechunk::More(cursor) => cursor,
            };
            assert_eq!(dechunk(body, cursor, &mut out).unwrap(), Dechunk::Done(end));
            assert_eq!(out, b"Wikipedia", "split at {split}");
        }
        assert!(dechunk(b"zz\r\n", 0, &mut Vec::new()).is_err());
        assert!(dechunk(b"2\r\nabc\r\n", 0, &mut Vec::new()).is_err());
    }

    /// A server that answers each request (read until a blank line, or a read of any bytes)
    /// with the next of `answers`, each written in pieces of `piece` bytes.
    async fn scripted(answers: Vec<&'static [u8]>, piece: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            for answer in answers {
                if socket.read(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                for part in answer.chunks(piece) {
                    if socket.write_all(part).await.is_err() {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
            }
        });
        addr
    }

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

    #[tokio::test]
    async fn reads_answers_split_anywhere_on_one_connection() {
        for piece in [1, 3, 7, 1000] {
            let addr = scripted(
                vec![
                    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-siblings: 3\r\n\r\nhello",
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 300 MC\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                    b"HTTP/1.1 204 No Content\r\n\r\n",
                    b"HTTP/1.1 503 Unavailable\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                ],
                piece,
            )
            .await;
            let mut connection = Http1Connection::open(addr).await.unwrap();
            let reply = connection.exchange(REQUEST).await.unwrap();
            assert_eq!(
                (reply.status, reply.siblings, reply.body),
                (200, Some(3), &b"hello"[..])
            );
            let reply = connection.exchange(REQUEST).await.unwrap();
            assert_eq!((reply.status, reply.body), (300, &b"abc"[..]));
            let reply = connection.exchange(REQUEST).await.unwrap();
            assert_eq!((reply.status, reply.body), (204, &b""[..]));
            assert!(connection.reusable());
            let reply = connection.exchange(REQUEST).await.unwrap();
            assert_eq!((reply.status, reply.body), (503, &b"{}"[..]));
            assert!(!connection.reusable(), "the server said it closes");
            assert!(connection.exchange(REQUEST).await.is_err());
        }
    }

    #[tokio::test]
    async fn a_body_until_close_ends_with_the_connection() {
        let addr = scripted(vec![b"HTTP/1.1 200 OK\r\n\r\nall of it"], 4).await;
        let mut connection = Http1Connection::open(addr).await.unwrap();
        let reply = connection.exchange(REQUEST).await.unwrap();
        assert_eq!((reply.status, reply.body), (200, &b"all of it"[..]));
        assert!(!connection.reusable());
    }

    #[tokio::test]
    async fn a_truncated_or_malformed_answer_is_an_error() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\ncontent-",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab",
            b"garbage\r\n\r\n",
        ] {
            let addr = scripted(vec![answer], 1000).await;
            let mut connection = Http1Connection::open(addr).await.unwrap();
            assert!(
                connection.exchange(REQUEST).await.is_err(),
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
    }
}
