//! `teamsgw user status`, `teamsgw trunk status` and `teamsgw call list`: live state asked of
//! the running daemon over its admin endpoint (`/api/v1/registrations`, `/api/v1/trunk`,
//! `/api/v1/calls`, with `admin.token`), because it exists only in the daemon's memory.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::Value;

use crate::cli::provision::{Output, print_rows};
use crate::config::Settings;
use crate::daemon;

#[derive(Debug, Subcommand)]
pub enum TrunkCommand {
    /// Up/down of each Teams SIP proxy, from the running daemon.
    Status(Output),
}

#[derive(Debug, Subcommand)]
pub enum CallCommand {
    /// The calls up or being set up, from the running daemon.
    List(Output),
}

pub fn call_list(config: &Path, json: bool) -> ExitCode {
    show(
        config,
        "/api/v1/calls",
        json,
        &[
            "CALL ID",
            "DIRECTION",
            "ENTERPRISE",
            "USER",
            "CALLER",
            "CALLEE",
            "STATE",
            "SECONDS",
        ],
        |c| {
            vec![
                text(&c["call_id"]),
                text(&c["direction"]),
                text(&c["enterprise"]),
                text(&c["user"]),
                text(&c["caller"]),
                text(&c["callee"]),
                text(&c["state"]),
                text(&c["seconds"]),
            ]
        },
    )
}

/// Queries the daemon named by the config; prints a table or `--json`.
pub fn user_status(config: &Path, enterprise: Option<&str>, json: bool) -> ExitCode {
    let path = match enterprise {
        Some(e) => format!("/api/v1/registrations?enterprise={}", query_escape(e)),
        None => "/api/v1/registrations".to_owned(),
    };
    show(
        config,
        &path,
        json,
        &["UPN", "ENTERPRISE", "STATE", "NEXT ATTEMPT", "LAST ERROR"],
        |r| {
            vec![
                text(&r["upn"]),
                text(&r["enterprise"]),
                text(&r["state"]),
                relative(&r["next_attempt"]),
                text(&r["last_error"]),
            ]
        },
    )
}

pub fn trunk_status(config: &Path, json: bool) -> ExitCode {
    show(
        config,
        "/api/v1/trunk",
        json,
        &["PROXY", "UP", "LAST RESULT", "NEXT PROBE"],
        |p| {
            vec![
                text(&p["proxy"]),
                if p["up"] == Value::Bool(true) {
                    "up"
                } else {
                    "down"
                }
                .to_owned(),
                text(&p["last_result"]),
                relative(&p["next_probe"]),
            ]
        },
    )
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Unix seconds as people read them next to a table: `in 42s`, `3s ago`.
fn relative(v: &Value) -> String {
    let Some(at) = v.as_u64() else {
        return "-".to_owned();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if at >= now {
        format!("in {}s", at - now)
    } else {
        format!("{}s ago", now - at)
    }
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn show(
    config: &Path,
    path: &str,
    json: bool,
    header: &[&str],
    cells: impl Fn(&Value) -> Vec<String>,
) -> ExitCode {
    let settings = match Settings::load(config) {
        Ok(s) => s,
        Err(problems) => {
            daemon::report_problems(config, &problems);
            return ExitCode::FAILURE;
        }
    };
    match get(&settings, path) {
        Ok(Value::Array(items)) => {
            print_rows(json, &items, header, cells);
            ExitCode::SUCCESS
        }
        Ok(other) => {
            eprintln!("teamsgw: unexpected answer from the daemon: {other}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("teamsgw: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A GET on the admin listener; errors say what to fix.
fn get(settings: &Settings, path: &str) -> Result<Value, String> {
    let mut addr = settings.admin.listen;
    if addr.ip().is_unspecified() {
        let loopback = match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        addr = SocketAddr::new(loopback, addr.port());
    }
    let token = settings
        .admin
        .token
        .as_deref()
        .ok_or("admin.token is not set: the daemon's API (and this command) need it")?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map_err(|e| format!("admin.listen {addr}: is the daemon running? {e}"))?;
    let timeout = Some(Duration::from_secs(30));
    stream
        .set_read_timeout(timeout)
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("admin.listen {addr}: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|e| format!("admin.listen {addr}: {e}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("admin.listen: not an HTTP answer")?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("admin.listen: not an HTTP answer")?;
    let value: Value =
        serde_json::from_str(body).map_err(|e| format!("admin.listen: bad JSON ({e})"))?;
    if status == 200 {
        Ok(value)
    } else {
        Err(value["error"]
            .as_str()
            .map_or_else(|| format!("the daemon answered {status}"), str::to_owned))
    }
}
