//! Hand-written HTTP/1.1 over a `TcpStream`.
//!
//! Two reasons to bypass `reqwest`:
//! - URL parsing in any real client rewrites the path (`..` and `%2e%2e`
//!   segments are removed), so path tricks must be sent byte for byte;
//! - the sibling test needs `Expect: 100-continue` under its own control: send
//!   the head, wait for `100 Continue` (the handler has started and taken its
//!   snapshot), and only then send the body.
//!
//! Every request sent here carries `Connection: close`, so a response ends
//! where the stream ends and no keep-alive bookkeeping is needed.

use std::net::SocketAddr;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::resp::Resp;
use crate::DEADLINE;

/// Sends one request with the target sent verbatim (no normalisation, no
/// encoding) and returns the final response (1xx interim answers skipped).
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let what = format!("raw {method} {}", short(target));
    let fut = async {
        let mut conn = RawConn::connect(addr).await;
        conn.write(&head(addr, method, target, headers, Some(body.len())))
            .await;
        conn.write(body).await;
        conn.read_response().await
    };
    match tokio::time::timeout(DEADLINE, fut).await {
        Ok(r) => r,
        Err(_) => panic!("{what}: no response within {DEADLINE:?}"),
    }
}

/// The bytes of a request head: request line, `Host`, `Connection: close`,
/// `Content-Length` when given, the extra headers, and the blank line.
pub fn head(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    content_length: Option<usize>,
) -> Vec<u8> {
    let mut h = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(n) = content_length {
        h.push_str(&format!("Content-Length: {n}\r\n"));
    }
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// One raw connection, with what has been read but not yet consumed.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl RawConn {
    /// Connects to the node.
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => panic!("connect {addr}: {e}"),
        };
        let _ = stream.set_nodelay(true);
        RawConn {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }

    /// Writes all bytes. A failure is tolerated: the server may answer early
    /// (say with a 400) and close before reading everything we send; the
    /// response is still readable then.
    pub async fn write(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    /// Reads more bytes into the buffer; false at end of stream (or on a
    /// reset, which ends the stream just the same for our purposes).
    async fn fill(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads one response head (status line and headers), leaving whatever
    /// follows it in the buffer. Panics if the stream ends first.
    pub async fn read_head(&mut self) -> (u16, HeaderMap) {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head_bytes: Vec<u8> = self.buf.drain(..end + 4).collect();
                return parse_head(&head_bytes);
            }
            if !self.fill().await {
                panic!(
                    "connection closed before a complete response head; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
    }

    /// Reads the final response: skips 1xx heads, then reads the body by
    /// `Content-Length`, chunked coding, or to the end of the stream.
    pub async fn read_response(&mut self) -> Resp {
        let (status, headers) = loop {
            let (status, headers) = self.read_head().await;
            if !(100..200).contains(&status) {
                break (status, headers);
            }
        };
        let chunked = headers.get("transfer-encoding").is_some_and(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .to_ascii_lowercase()
                .contains("chunked")
        });
        let length = headers
            .get("content-length")
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .and_then(|s| s.trim().parse::<usize>().ok());
        let body = if chunked {
            while self.fill().await {}
            decode_chunked(&self.buf)
        } else if let Some(n) = length {
            while self.buf.len() < n && self.fill().await {}
            let n = n.min(self.buf.len());
            self.buf.drain(..n).collect()
        } else {
            while self.fill().await {}
            std::mem::take(&mut self.buf)
        };
        Resp {
            status,
            headers,
            body,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(bytes: &[u8]) -> (u16, HeaderMap) {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            panic!("bad header line {line:?}");
        };
        let name = HeaderName::from_bytes(k.trim().as_bytes())
            .unwrap_or_else(|e| panic!("bad header name {k:?}: {e}"));
        let value = HeaderValue::from_bytes(v.trim().as_bytes())
            .unwrap_or_else(|e| panic!("bad header value {v:?}: {e}"));
        headers.append(name, value);
    }
    (status, headers)
}

fn decode_chunked(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(data, b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_string();
        let Ok(size) = usize::from_str_radix(&size_text, 16) else {
            break;
        };
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

fn short(s: &str) -> String {
    if s.len() > 120 {
        let mut cut = 120;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...({} bytes)", &s[..cut], s.len())
    } else {
        s.to_string()
    }
}
