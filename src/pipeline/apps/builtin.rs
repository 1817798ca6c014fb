//! The apps built into pktpath: echo, discard, a small HTTP responder, stall (never reads), and the client the
//! simulated outbound runs use. Each does what it can on its socket without blocking, every round.

use std::io;

use super::io::{App, AppIo};

const CHUNK: usize = 16 * 1024;

/// An app's read buffer, allocated on first use and kept: a round reads into it without zeroing 16 KiB anew.
fn read_buffer(buf: &mut Vec<u8>) -> &mut [u8] {
    if buf.len() < CHUNK {
        buf.resize(CHUNK, 0);
    }
    buf
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Writes `pending` out as far as the socket takes it; true when all of it went.
fn flush(io: &mut dyn AppIo, pending: &mut Vec<u8>) -> bool {
    while !pending.is_empty() {
        match io.write(pending) {
            Ok(0) => return false,
            Ok(n) => {
                pending.drain(..n);
            }
            Err(_) => return false,
        }
    }
    true
}

#[derive(Default)]
pub struct Echo {
    buf: Vec<u8>,
    pending: Vec<u8>,
    eof: bool,
    shut: bool,
}

impl App for Echo {
    fn service(&mut self, io: &mut dyn AppIo) {
        if !flush(io, &mut self.pending) {
            return;
        }
        if !self.eof {
            let buf = read_buffer(&mut self.buf);
            match io.read(buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    // Write straight from the read buffer; only what the socket refuses waits in `pending`.
                    let mut sent = 0;
                    while sent < n {
                        match io.write(&buf[sent..n]) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => sent += k,
                        }
                    }
                    self.pending.extend_from_slice(&buf[sent..n]);
                }
                Err(e) if would_block(&e) => {}
                Err(_) => self.eof = true,
            }
        }
        if self.eof && self.pending.is_empty() && !self.shut {
            io.shutdown_write();
            self.shut = true;
        }
    }
}

#[derive(Default)]
pub struct Discard {
    buf: Vec<u8>,
    shut: bool,
}

impl App for Discard {
    fn service(&mut self, io: &mut dyn AppIo) {
        if self.shut {
            return;
        }
        match io.read(read_buffer(&mut self.buf)) {
            Ok(0) => {
                io.shutdown_write();
                self.shut = true;
            }
            Ok(_) => {}
            Err(e) if would_block(&e) => {}
            Err(_) => {
                io.shutdown_write();
                self.shut = true;
            }
        }
    }
}

/// The page the `http` app serves.
pub const HTTP_BODY: &str = "<!doctype html>\n<html><head><title>pktpath</title></head>\n<body><h1>Hello from pktpath</h1>\n<p>This page crossed every hop: app, conn_buffer, socket_buffer, stack, frame_buffer, wire.</p></body></html>\n";

/// Requests longer than this without a blank line get a 431 and the connection is closed.
const HTTP_MAX_HEAD: usize = 16 * 1024;

#[derive(Default)]
pub struct Http {
    buf: Vec<u8>,
    head: Vec<u8>,
    response: Option<Vec<u8>>,
    shut: bool,
}

impl Http {
    fn respond(head: &[u8]) -> Vec<u8> {
        let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
        let (status, body) = if line.starts_with(b"GET ") {
            ("200 OK", HTTP_BODY.to_string())
        } else if head.len() >= HTTP_MAX_HEAD {
            (
                "431 Request Header Fields Too Large",
                "request head too large\n".to_string(),
            )
        } else {
            (
                "405 Method Not Allowed",
                "only GET is served here\n".to_string(),
            )
        };
        format!(
            "HTTP/1.1 {status}\r\nServer: pktpath\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

impl App for Http {
    fn service(&mut self, io: &mut dyn AppIo) {
        if let Some(resp) = &mut self.response
            && flush(io, resp)
            && !self.shut
        {
            io.shutdown_write();
            self.shut = true;
        }
        let buf = read_buffer(&mut self.buf);
        match io.read(buf) {
            Ok(0) => {
                if self.response.is_none() {
                    self.response = Some(Self::respond(&self.head));
                }
            }
            Ok(n) if self.response.is_none() => {
                self.head.extend_from_slice(&buf[..n]);
                let complete = self.head.windows(4).any(|w| w == b"\r\n\r\n")
                    || self.head.windows(2).any(|w| w == b"\n\n");
                if complete || self.head.len() >= HTTP_MAX_HEAD {
                    self.response = Some(Self::respond(&self.head));
                }
            }
            // After the response, whatever else the client sends is read and dropped.
            Ok(_) => {}
            Err(_) => {}
        }
        if let Some(resp) = &mut self.response
            && flush(io, resp)
            && !self.shut
        {
            io.shutdown_write();
            self.shut = true;
        }
    }
}

pub struct Stall;

impl App for Stall {
    fn service(&mut self, _io: &mut dyn AppIo) {}
}

/// The app behind an outbound connection in `sim --outbound`: it writes its payload, closes its sending side,
/// and reads the reply until the server closes.
pub struct Client {
    buf: Vec<u8>,
    payload: Vec<u8>,
    sent: usize,
    shut: bool,
    eof: bool,
}

impl Client {
    pub fn new(payload: Vec<u8>) -> Self {
        Client {
            buf: Vec::new(),
            payload,
            sent: 0,
            shut: false,
            eof: false,
        }
    }
}

impl App for Client {
    fn service(&mut self, io: &mut dyn AppIo) {
        if self.sent < self.payload.len() {
            let end = (self.sent + CHUNK).min(self.payload.len());
            if let Ok(n) = io.write(&self.payload[self.sent..end]) {
                self.sent += n;
            }
        }
        if self.sent == self.payload.len() && !self.shut {
            io.shutdown_write();
            self.shut = true;
        }
        if !self.eof {
            match io.read(read_buffer(&mut self.buf)) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if would_block(&e) => {}
                Err(_) => self.eof = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_get_with_the_page() {
        let resp = String::from_utf8(Http::respond(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")).unwrap();
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(resp.ends_with(HTTP_BODY));
        assert!(resp.contains(&format!("Content-Length: {}\r\n", HTTP_BODY.len())));
        let resp = String::from_utf8(Http::respond(b"POST / HTTP/1.1\r\n\r\n")).unwrap();
        assert!(resp.starts_with("HTTP/1.1 405 "));
    }
}
