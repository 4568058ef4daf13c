//! A real HTTP/1.1 server on 127.0.0.1 that plays scripted faults per path: statuses, Retry-After,
//! bodies cut off or stalled mid-transfer, throttled bodies, with or without Range support. It
//! records every request so tests can count them. [`Server::start_tls`] serves the same over HTTPS
//! with a certificate the test made (see `tls.rs`).

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How to serve a path's body.
#[derive(Clone, Debug, Default)]
pub struct Serve {
    /// Answer `Range: bytes=N-`, `bytes=N-M` and `bytes=-N` with 206.
    pub ranges: bool,
    /// Send noise without a length until the client leaves (the path's file is ignored).
    pub endless: bool,
    /// Close the connection after this many body bytes (Content-Length still promises all).
    pub cut_after: Option<usize>,
    /// Send this many body bytes, then go silent until the client leaves or the server stops.
    pub stall_after: Option<usize>,
    /// Throttle to about this many bytes per second.
    pub rate: Option<u64>,
    /// Send this many body bytes, go silent this long, then send the rest (at `rate`, if set).
    pub pause: Option<(usize, Duration)>,
}

#[derive(Clone, Debug)]
pub enum Reply {
    /// An empty response with this status.
    Status(u16),
    /// A status with `Retry-After: <secs>`.
    RetryAfter(u16, u64),
    /// A redirect: the status (301, 302, 307, 308) with `Location: <url>`.
    Redirect(u16, String),
    /// The path's file, served as described.
    Body(Serve),
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

/// Whether a request may pass (an Enterprise factory's credentials check).
pub type Gate = Arc<dyn Fn(&Request) -> bool + Send + Sync>;

/// Answers a POST: status and body from the request body.
pub type PostHandler = Arc<dyn Fn(&[u8]) -> (u16, String) + Send + Sync>;

/// The status for a path the test did not put (404 unless set).
pub type MissingHandler = Arc<dyn Fn(&str) -> u16 + Send + Sync>;

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    scripts: HashMap<String, VecDeque<Reply>>,
    /// How files are served once their script (if any) is used up.
    default_serve: Serve,
    posts: HashMap<String, PostHandler>,
    missing: Option<MissingHandler>,
    gate: Option<Gate>,
    log: Vec<Request>,
    handshakes_failed: usize,
}

/// A client connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Conn {
    /// Completes the handshake, so a refused certificate is seen here and not as a bad request.
    fn accept_tls(mut tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> Option<Conn> {
        let mut tls = rustls::ServerConnection::new(config).ok()?;
        tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp).ok()?;
        }
        tcp.set_read_timeout(None).ok()?;
        Some(Conn::Tls(Box::new(rustls::StreamOwned::new(tls, tcp))))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(tcp) => tcp,
            Conn::Tls(tls) => &tls.sock,
        }
    }

    fn shutdown(&mut self) {
        if let Conn::Tls(tls) = self {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        let _ = self.tcp().shutdown(Shutdown::Both);
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.read(buf),
            Conn::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.write(buf),
            Conn::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(tcp) => tcp.flush(),
            Conn::Tls(tls) => tls.flush(),
        }
    }
}

pub struct Server {
    addr: SocketAddr,
    scheme: &'static str,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(None)
    }

    /// The same server over HTTPS, presenting `config`'s certificate. Handshakes that fail (the
    /// client refused the certificate) are counted in [`Server::handshakes_failed`].
    pub fn start_tls(config: Arc<rustls::ServerConfig>) -> Server {
        Self::start_with(Some(config))
    }

    fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> Server {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let (st, sp, tls) = (st.clone(), sp.clone(), tls.clone());
                        thread::spawn(move || {
                            tcp.set_nonblocking(false).unwrap();
                            let conn = match tls {
                                None => Conn::Plain(tcp),
                                Some(config) => match Conn::accept_tls(tcp, config) {
                                    Some(conn) => conn,
                                    None => {
                                        st.lock().unwrap().handshakes_failed += 1;
                                        return;
                                    }
                                },
                            };
                            handle(conn, &st, &sp)
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server {
            addr,
            scheme,
            state,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        self.state.lock().unwrap().files.insert(path.into(), bytes);
    }

    /// Puts the file and a `<path>.sha256` sidecar naming it, as Image Factory serves them.
    pub fn put_with_sidecar(&self, path: &str, bytes: Vec<u8>) {
        let name = path.rsplit('/').next().unwrap();
        let sidecar = format!("{}  {name}\n", super::sha256_hex(&bytes));
        self.put(&format!("{path}.sha256"), sidecar.into_bytes());
        self.put(path, bytes);
    }

    /// Replies used in order for the next requests of `path`; afterwards the file is served.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(path.into(), replies.into());
    }

    /// Answers POSTs to `path` with `handler`.
    pub fn on_post(&self, path: &str, handler: PostHandler) {
        self.state
            .lock()
            .unwrap()
            .posts
            .insert(path.into(), handler);
    }

    /// How paths the test did not put are answered (an Image Factory answers 400, 402 or 404).
    pub fn on_missing(&self, handler: MissingHandler) {
        self.state.lock().unwrap().missing = Some(handler);
    }

    /// Answers 401 to every request `gate` refuses; the others are served by their path without
    /// its query (where the credentials the gate checked travel).
    pub fn require(&self, gate: Gate) {
        self.state.lock().unwrap().gate = Some(gate);
    }

    pub fn set_default_serve(&self, serve: Serve) {
        self.state.lock().unwrap().default_serve = serve;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }

    /// GET requests for `path`'s body: not the range requests that read an archive's records
    /// (`bytes=-N`, `bytes=N-M`), but a resume (`bytes=N-`) counts.
    pub fn body_gets(&self, path: &str) -> usize {
        self.gets(path)
            .iter()
            .filter(|r| {
                r.range
                    .as_deref()
                    .is_none_or(|r| r.ends_with('-') && !r.starts_with("bytes=-"))
            })
            .count()
    }

    /// GET requests made for `path`.
    pub fn gets(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path == path)
            .collect()
    }

    /// TLS connections whose handshake failed (the client refused the certificate).
    pub fn handshakes_failed(&self) -> usize {
        self.state.lock().unwrap().handshakes_failed
    }

    pub fn clear_log(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn handle(conn: Conn, state: &Mutex<State>, stop: &AtomicBool) {
    // Requests are read byte-wise through a BufReader; responses written through it unbuffered.
    let mut reader = BufReader::new(conn);
    let Some(mut req) = read_request(&mut reader) else {
        return;
    };
    let conn = reader.get_mut();
    let (reply, file) = {
        let mut st = state.lock().unwrap();
        st.log.push(req.clone());
        if let Some(gate) = st.gate.clone() {
            if !gate(&req) {
                drop(st);
                respond_empty(conn, 401, &[]);
                conn.shutdown();
                return;
            }
            req.path = req.path.split('?').next().unwrap_or_default().to_string();
        }
        if req.method == "POST" {
            let handler = st.posts.get(&req.path).cloned();
            drop(st);
            let (code, body) = handler.map_or((404, String::new()), |h| h(&req.body));
            let head = format!(
                "HTTP/1.1 {code} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                reason(code),
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body.as_bytes());
            conn.shutdown();
            return;
        }
        let scripted = st.scripts.get_mut(&req.path).and_then(|q| q.pop_front());
        let file = st.files.get(&req.path).cloned();
        let reply = scripted.unwrap_or_else(|| match file {
            Some(_) => Reply::Body(st.default_serve.clone()),
            None => Reply::Status(st.missing.as_ref().map_or(404, |h| h(&req.path))),
        });
        (reply, file)
    };
    match reply {
        Reply::Status(code) => respond_empty(conn, code, &[]),
        Reply::RetryAfter(code, secs) => {
            respond_empty(conn, code, &[format!("Retry-After: {secs}")])
        }
        Reply::Redirect(code, to) => respond_empty(conn, code, &[format!("Location: {to}")]),
        Reply::Body(serve) if serve.endless => serve_endless(conn, stop),
        Reply::Body(serve) => match file {
            Some(body) => serve_body(conn, &req, &body, &serve, stop),
            None => respond_empty(conn, 404, &[]),
        },
    }
    conn.shutdown();
}

fn read_request(reader: &mut BufReader<Conn>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut range = None;
    let mut authorization = None;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
            if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_string());
            }
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        range,
        authorization,
        body,
    })
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn respond_empty(conn: &mut Conn, code: u16, extra: &[String]) {
    let mut head = format!(
        "HTTP/1.1 {code} {}\r\nContent-Length: 0\r\nConnection: close\r\n",
        reason(code)
    );
    for h in extra {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
}

/// The bytes `[start, end)` a `Range` header asks for, when it can be served.
fn parse_range(range: &str, len: usize) -> Option<(usize, usize)> {
    let (a, b) = range.strip_prefix("bytes=")?.split_once('-')?;
    match (a.trim(), b.trim()) {
        ("", n) => {
            let n: usize = n.parse().ok()?;
            (n > 0 && len > 0).then(|| (len.saturating_sub(n), len))
        }
        (a, "") => {
            let a: usize = a.parse().ok()?;
            (a < len).then_some((a, len))
        }
        (a, b) => {
            let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b && a < len).then(|| (a, (b + 1).min(len)))
        }
    }
}

fn serve_endless(conn: &mut Conn, stop: &AtomicBool) {
    let head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let chunk = super::noise(64 * 1024, 77);
    while !stop.load(Ordering::Relaxed) {
        if conn.write_all(&chunk).is_err() {
            return;
        }
    }
}

fn serve_body(conn: &mut Conn, req: &Request, body: &[u8], serve: &Serve, stop: &AtomicBool) {
    let span = match (&req.range, serve.ranges) {
        (Some(range), true) => parse_range(range, body.len()),
        _ => None,
    };
    let head = match span {
        Some((s, e)) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {s}-{}/{}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
            e - s,
            e - 1,
            body.len()
        ),
        None => format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ),
    };
    if conn.write_all(head.as_bytes()).is_err() || req.method == "HEAD" {
        return;
    }
    let (s, e) = span.unwrap_or((0, body.len()));
    let rest = &body[s..e];
    let limit = serve
        .cut_after
        .or(serve.stall_after)
        .unwrap_or(rest.len())
        .min(rest.len());
    let mut began = Instant::now();
    let mut sent = 0usize;
    let mut pause = serve.pause;
    for chunk in rest[..limit].chunks(64 * 1024) {
        if let Some((_, silence)) = pause.take_if(|(at, _)| sent >= *at) {
            let _ = conn.flush();
            thread::sleep(silence);
            // The rate is of the time spent sending.
            began += silence;
        }
        if conn.write_all(chunk).is_err() {
            return;
        }
        sent += chunk.len();
        if let Some(rate) = serve.rate {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                thread::sleep(wait);
            }
        }
    }
    if serve.stall_after.is_some() {
        let _ = conn.flush();
        let until = Instant::now() + Duration::from_secs(60);
        // Silent until the client gives up (its read fails) or the test ends.
        conn.tcp()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .ok();
        let mut probe = [0u8; 1];
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            match conn.read(&mut probe) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
    }
}
