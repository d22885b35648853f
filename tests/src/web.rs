//! A browser-shaped HTTP client for the console's plain-HTTP tests: it keeps the session
//! cookie the daemon sets, posts forms (`application/x-www-form-urlencoded`), and reads a
//! page's CSRF token, so a test can do what a browser does, or leave out what it would send.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::{Daemon, HttpResponse, Ports, test_config};

/// A ready daemon whose console signs in with `token` (`extra` config appended).
pub fn console_daemon(token: &str, extra: &str) -> Daemon {
    let ports = Ports::new();
    let config = test_config(&ports, extra)
        .replace(
            "[teams]\n",
            "[teams]\nbase_fqdn = \"teams.carrier.example\"\n",
        )
        .replace("[admin]\n", &format!("[admin]\ntoken = \"{token}\"\n"));
    let mut daemon = Daemon::start(&config, &ports);
    daemon.wait_ready(Duration::from_secs(30));
    daemon
}

pub struct WebClient {
    pub addr: SocketAddr,
    /// `name=value` of the session cookie, once one was set.
    pub cookie: Option<String>,
}

impl WebClient {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, cookie: None }
    }

    pub fn get(&mut self, path: &str) -> HttpResponse {
        self.send("GET", path, None)
    }

    /// Posts `fields` as a form.
    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> HttpResponse {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        self.send("POST", path, Some(&body))
    }

    /// Signs in with `token`; the response of the sign-in POST.
    pub fn sign_in(&mut self, token: &str) -> HttpResponse {
        self.post("/ui/sign-in", &[("token", token)])
    }

    fn send(&mut self, method: &str, path: &str, form: Option<&str>) -> HttpResponse {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        if let Some(c) = &self.cookie {
            request.push_str(&format!("Cookie: {c}\r\n"));
        }
        let body = form.unwrap_or("");
        if form.is_some() {
            request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let response = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad response: {response:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        for (name, value) in &headers {
            if name == "set-cookie" {
                let pair = value.split(';').next().unwrap_or("").to_owned();
                self.cookie = (!pair.ends_with('=')).then_some(pair);
            }
        }
        HttpResponse {
            status,
            headers,
            body: unchunk(body, &response),
        }
    }
}

/// The body, de-chunked when the response used chunked transfer coding.
fn unchunk(body: &str, response: &str) -> String {
    if !response
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value of the first `name="csrf"` field on a page.
pub fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field on the page:\n{page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// The text inside the element with `id="<id>"` (tags stripped, whitespace collapsed).
pub fn text_of(page: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let at = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no element #{id} on the page:\n{page}"));
    let start = at + page[at..].find('>').unwrap() + 1;
    let tag_start = page[..at].rfind('<').unwrap();
    let tag: String = page[tag_start + 1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let close = format!("</{tag}>");
    let end = start + page[start..].find(&close).unwrap();
    let mut text = String::new();
    let mut in_tag = false;
    for ch in page[start..end].chars() {
        match ch {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
