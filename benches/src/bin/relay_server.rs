//! The relay under load, as its own process so its CPU time can be measured and pinned.
//! Driven by `benches/benches/relay_load.rs` over stdin/stdout:
//!   `alloc N`            -> `ports T1 P1 T2 P2 ...` (Teams and PBX port of each session)
//!   `apply I TEAMS PBX`  -> `ok` (peer addresses of session I; fixed test keys)
//!   `allocs`             -> `allocs N` (heap allocations so far)
//! Arguments: PORT_MIN PORT_MAX [BIND_ADDRESS, default 127.0.0.1]. With
//! `RELAY_SERVER_PAYLOAD_MAP=1` every session renumbers telephone-event 101 <-> 96 (a map that
//! is not the identity, so every packet takes the rewrite path; the bench's PCMU packets keep
//! their number).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, Write};
use std::time::Duration;

use teamsgw_benches::{CountingAllocator, allocations};
use teamsgw_media::relay::{PbxParams, TeamsParams};
use teamsgw_media::srtp::{MasterKey, Suite};
use teamsgw_media::{MediaMetrics, Relay, RelayConfig, SessionParams};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

pub const TEAMS_KEY: [u8; 30] = [0x11; 30];
pub const RELAY_KEY: [u8; 30] = [0x22; 30];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (port_min, port_max): (u16, u16) = (args[0].parse().unwrap(), args[1].parse().unwrap());
    let bind = args
        .get(2)
        .map_or("127.0.0.1", String::as_str)
        .parse()
        .unwrap();
    // Like the daemon (multi-thread runtime), on the one core the bench pins it to. A
    // current-thread runtime measured the same.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let payload_map = if std::env::var("RELAY_SERVER_PAYLOAD_MAP").is_ok_and(|v| v == "1") {
        teamsgw_media::payload_map::PayloadMap::new(&[(101, 96)])
    } else {
        teamsgw_media::payload_map::PayloadMap::identity()
    };
    runtime.block_on(async move {
        let config = RelayConfig {
            bind,
            port_min,
            port_max,
            timeout: Duration::from_secs(3600),
            batch_window: Duration::from_micros(
                std::env::var("RELAY_BATCH_WINDOW_US")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1000),
            ),
            // RELAY_RAW_SOCKET=1: send through the raw socket (A/B of the two send paths).
            raw_socket: std::env::var("RELAY_RAW_SOCKET").is_ok_and(|v| v == "1"),
            pbx_media_source: Default::default(),
        };
        let (relay, _events) = Relay::new(config, MediaMetrics::new().unwrap()).unwrap();
        let mut sessions = Vec::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if tx.blocking_send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = rx.recv().await {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let reply = match parts.as_slice() {
                ["alloc", n] => {
                    let mut ports = String::from("ports");
                    for _ in 0..n.parse::<usize>().unwrap() {
                        let s = relay.allocate().unwrap();
                        ports.push_str(&format!(" {} {}", s.teams_port(), s.pbx_port()));
                        sessions.push(s);
                    }
                    ports
                }
                ["apply", i, teams, pbx] => {
                    sessions[i.parse::<usize>().unwrap()].apply(SessionParams {
                        teams: TeamsParams {
                            remote: Some(teams.parse().unwrap()),
                            suite: Suite::AesCm128HmacSha1_80,
                            remote_key: MasterKey::from_bytes(&TEAMS_KEY).unwrap(),
                            local_key: MasterKey::from_bytes(&RELAY_KEY).unwrap(),
                            send: true,
                        },
                        pbx: PbxParams {
                            remote_rtp: Some(pbx.parse().unwrap()),
                            remote_rtcp: None,
                            rtcp_mux: false,
                            send: true,
                        },
                        payload_map: payload_map.clone(),
                        teams_cn: None,
                    });
                    "ok".to_owned()
                }
                ["allocs"] => format!("allocs {}", allocations().0),
                _ => "error".to_owned(),
            };
            let mut out = std::io::stdout().lock();
            writeln!(out, "{reply}").unwrap();
            out.flush().unwrap();
        }
    });
}
