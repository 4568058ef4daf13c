//! A real HTTP/1.1 server on 127.0.0.1 that plays scripted faults per path: statuses, Retry-After,
//! bodies cut off or stalled mid-transfer, throttled bodies, with or without Range support. It
//! records every request so tests can count them.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How to serve a path's body.
#[derive(Clone, Debug, Default)]
pub struct Serve {
    /// Answer `Range: bytes=N-` with 206.
    pub ranges: bool,
    /// Close the connection after this many body bytes (Content-Length still promises all).
    pub cut_after: Option<usize>,
    /// Send this many body bytes, then go silent until the client leaves or the server stops.
    pub stall_after: Option<usize>,
    /// Throttle to about this many bytes per second.
    pub rate: Option<u64>,
}

#[derive(Clone, Debug)]
pub enum Reply {
    /// An empty response with this status.
    Status(u16),
    /// A status with `Retry-After: <secs>`.
    RetryAfter(u16, u64),
    /// The path's file, served as described.
    Body(Serve),
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub body: Vec<u8>,
}

/// Answers a POST: status and body from the request body.
pub type PostHandler = Arc<dyn Fn(&[u8]) -> (u16, String) + Send + Sync>;

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    scripts: HashMap<String, VecDeque<Reply>>,
    /// How files are served once their script (if any) is used up.
    default_serve: Serve,
    posts: HashMap<String, PostHandler>,
    log: Vec<Request>,
}

pub struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::spawn(move || {
            while !sp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (st, sp) = (st.clone(), sp.clone());
                        thread::spawn(move || handle(conn, &st, &sp));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Server { addr, state, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
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

    pub fn set_default_serve(&self, serve: Serve) {
        self.state.lock().unwrap().default_serve = serve;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }

    /// GET requests made for `path`.
    pub fn gets(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path == path)
            .collect()
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

fn handle(mut conn: TcpStream, state: &Mutex<State>, stop: &AtomicBool) {
    conn.set_nonblocking(false).unwrap();
    let Some(req) = read_request(&conn) else {
        return;
    };
    let (reply, file) = {
        let mut st = state.lock().unwrap();
        st.log.push(req.clone());
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
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
        let scripted = st.scripts.get_mut(&req.path).and_then(|q| q.pop_front());
        let file = st.files.get(&req.path).cloned();
        let reply = scripted.unwrap_or_else(|| match file {
            Some(_) => Reply::Body(st.default_serve.clone()),
            None => Reply::Status(404),
        });
        (reply, file)
    };
    match reply {
        Reply::Status(code) => respond_empty(&mut conn, code, &[]),
        Reply::RetryAfter(code, secs) => {
            respond_empty(&mut conn, code, &[format!("Retry-After: {secs}")])
        }
        Reply::Body(serve) => match file {
            Some(body) => serve_body(&mut conn, &req, &body, &serve, stop),
            None => respond_empty(&mut conn, 404, &[]),
        },
    }
    let _ = conn.shutdown(Shutdown::Both);
}

fn read_request(conn: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut range = None;
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
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    std::io::Read::read_exact(&mut reader, &mut body).ok()?;
    Some(Request {
        method,
        path,
        range,
        body,
    })
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        206 => "Partial Content",
        402 => "Payment Required",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn respond_empty(conn: &mut TcpStream, code: u16, extra: &[String]) {
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

fn serve_body(conn: &mut TcpStream, req: &Request, body: &[u8], serve: &Serve, stop: &AtomicBool) {
    let start = match (&req.range, serve.ranges) {
        (Some(range), true) => range
            .strip_prefix("bytes=")
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n < body.len()),
        _ => None,
    };
    let head = match start {
        Some(s) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {s}-{}/{}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
            body.len() - s,
            body.len() - 1,
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
    let rest = &body[start.unwrap_or(0)..];
    let limit = serve
        .cut_after
        .or(serve.stall_after)
        .unwrap_or(rest.len())
        .min(rest.len());
    let began = Instant::now();
    let mut sent = 0usize;
    for chunk in rest[..limit].chunks(64 * 1024) {
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
        conn.set_read_timeout(Some(Duration::from_millis(50))).ok();
        let mut probe = [0u8; 1];
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            match std::io::Read::read(conn, &mut probe) {
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
