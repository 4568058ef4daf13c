//! A minimal W3C WebDriver client (HTTP/1.1 over a plain socket) for driving the real app through
//! tauri-driver; enough to find elements, type, click, read text, accept dialogs and screenshot.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct Session {
    port: u16,
    id: String,
}

/// One WebDriver call. tauri-driver's proxy now and then closes a connection without answering;
/// such a call is sent again (an unanswered call was not carried out).
fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    for _ in 0..10 {
        if let Some(v) = try_request(port, method, path, body) {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{method} {path}: no answer from tauri-driver");
}

fn try_request(port: u16, method: &str, path: &str, body: Option<&Value>) -> Option<Value> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect to tauri-driver");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // One write: WebKitWebDriver drops requests whose body arrives in a later packet.
    conn.write_all(format!("{head}{body}").as_bytes()).unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    if raw.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let rest = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Some(
        serde_json::from_str(&rest)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}: {head}\n{rest}")),
    )
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

/// The W3C key under which an element reference is given.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Session {
    pub fn new(port: u16, application: &str) -> Session {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "tauri-driver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "wry",
            "tauri:options": {"application": application}
        }}});
        let v = request(port, "POST", "/session", Some(&caps));
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Session { port, id }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.id);
        request(self.port, method, &full, body.as_ref())["value"].clone()
    }

    /// The element matching `css`, waiting up to 20 s for it.
    pub fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            );
            if let Some(id) = v[ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(Instant::now() < deadline, "no element {css}: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether an element matches `css` now (no waiting).
    pub fn exists(&self, css: &str) -> bool {
        let v = self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array().is_some_and(|a| !a.is_empty())
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn execute(&self, script: &str) -> Value {
        self.execute_with(script, json!([]))
    }

    /// Runs `script` with `args` (its `arguments`) and returns its value.
    pub fn execute_with(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Sizes the window's outer frame, as a user would.
    pub fn set_window_size(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// Presses keys on the keyboard (W3C key codes: "\u{E004}" Tab, "\u{E007}" Enter,
    /// " " Space), whatever has the focus: as a person at the keyboard does.
    pub fn press(&self, keys: &str) {
        let mut actions = Vec::new();
        for c in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": c.to_string()}));
            actions.push(json!({"type": "keyUp", "value": c.to_string()}));
        }
        self.call(
            "POST",
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        );
    }

    /// The id of the element that has the focus.
    pub fn focused(&self) -> String {
        self.execute("return document.activeElement ? document.activeElement.id : '';")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Presses Tab until the element with `id` has the focus (at most 40 times).
    pub fn tab_to(&self, id: &str) {
        for _ in 0..40 {
            if self.focused() == id {
                return;
            }
            self.press("\u{E004}");
        }
        panic!(
            "Tab never reached #{id}; the focus is on #{}",
            self.focused()
        );
    }

    pub fn click(&self, css: &str) {
        // A re-render (progress, ten times a second) may replace the element between finding
        // it and clicking it: find it again.
        for _ in 0..20 {
            let id = self.find(css);
            let v = self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
            match v.get("error") {
                None => return,
                Some(e) if e == "stale element reference" => continue,
                Some(_) => panic!("clicking {css}: {v}"),
            }
        }
        panic!("{css} kept being replaced while clicked")
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        // Empty the field first (WebKitWebDriver's element/clear drops the connection here).
        let element = json!({"element-6066-11e4-a52e-4f735466cecf": id});
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": "arguments[0].value = '';", "args": [element]})),
        );
        let v = self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
        assert!(v.get("error").is_none(), "typing into {css}: {v}");
    }

    /// Runs `script` in the page; it ends by calling `done(value)` (the last argument), whose
    /// value is returned.
    pub fn execute_async(&self, script: &str) -> Value {
        let script = format!("const done = arguments[arguments.length - 1]; {script}");
        self.call(
            "POST",
            "/execute/async",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// An attribute of the element, if it has it.
    pub fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let id = self.find(css);
        self.call("GET", &format!("/element/{id}/attribute/{name}"), None)
            .as_str()
            .map(str::to_string)
    }

    /// Sends keys (W3C key codes such as "\u{E014}", ArrowRight) to the element.
    pub fn keys(&self, css: &str, keys: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": keys})),
        );
    }

    /// Whether the element can be used (a button not disabled).
    pub fn enabled(&self, css: &str) -> bool {
        let id = self.find(css);
        self.call("GET", &format!("/element/{id}/enabled"), None)
            .as_bool()
            .unwrap_or(false)
    }

    pub fn text(&self, css: &str) -> String {
        // A re-render may replace the element between finding it and reading it: find it again.
        for _ in 0..20 {
            let id = self.find(css);
            let v = self.call("GET", &format!("/element/{id}/text"), None);
            match v.as_str() {
                Some(t) => return t.to_string(),
                None if v["error"] == "stale element reference" => continue,
                None => panic!("the text of {css}: {v}"),
            }
        }
        panic!("{css} kept being replaced while read")
    }

    /// The element's `textContent` (WebKitWebDriver reads an ellipsised line's text as "").
    pub fn content(&self, css: &str) -> String {
        self.find(css);
        let css = serde_json::to_string(css).unwrap();
        self.execute(&format!(
            "return document.querySelector({css}).textContent;"
        ))
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Waits until `css`'s text satisfies `ok`, returning it.
    pub fn wait_text(&self, css: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self.text(css);
            if ok(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never got there; last: {t:?}; message: {:?}",
                self.text("#message")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn screenshot(&self, path: &std::path::Path) {
        let v = self.call("GET", "/screenshot", None);
        let png = base64_decode(v.as_str().expect("screenshot data"));
        std::fs::write(path, png).unwrap();
    }

    pub fn quit(&self) {
        request(self.port, "DELETE", &format!("/session/{}", self.id), None);
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let table = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().filter(|b| **b == b'=').count();
        let n = chunk.iter().fold(0u32, |acc, b| (acc << 6) | table(*b)) << (6 * (4 - chunk.len()));
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    out
}
