//! baresip (Debian `baresip-core`) as a phone behind the PBX or as the Teams endpoint: it
//! plays a sine tone (`ausine`), records what it hears (`sndfile`), speaks G.711 and G.722
//! (G.711 preferred; an account's `audio_codecs` narrows it), auto-answers, and takes
//! commands over `ctrl_tcp` (netstring JSON). Media stays on loopback (`net_interface` is the listen address).
//! Killed on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, require_program};

/// How one baresip instance is set up.
pub struct BaresipSpec {
    /// The `accounts` line (`<sip:user@host>;param=...`).
    pub account: String,
    /// The tone it sends, Hz.
    pub tone_hz: u32,
    /// The address it listens on for SIP (UDP, TCP; TLS on the next port).
    pub listen: SocketAddr,
    /// TLS: a file with certificate and key (presented as client and server certificate),
    /// and the CA file that verifies the peer.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The DNS server it asks (baresip resolves names itself: see [`crate::dns`]).
    pub dns: Option<SocketAddr>,
    /// Logs every SIP message it sends or receives (`-s`), for [`Baresip::received_from`].
    pub sip_trace: bool,
}

pub struct Baresip {
    child: Child,
    dir: tempfile::TempDir,
    ctrl: SocketAddr,
    /// Its SIP address (UDP, TCP; TLS on the next port).
    listen: SocketAddr,
}

impl Baresip {
    pub fn start(spec: BaresipSpec) -> Baresip {
        require_program("baresip", "baresip-core");
        let dir = tempfile::tempdir().unwrap();
        let rec = dir.path().join("rec");
        std::fs::create_dir_all(&rec).unwrap();
        let ctrl: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let mut config = format!(
            "poll_method epoll\nsip_listen {listen}\nnet_interface {ip}\n\
             module_path /usr/lib/baresip/modules\n\
             module g711.so\nmodule g722.so\nmodule aubridge.so\nmodule ausine.so\nmodule sndfile.so\n\
             module srtp.so\nmodule account.so\nmodule menu.so\nmodule ctrl_tcp.so\n\
             audio_source ausine,{tone}\naudio_player aubridge,out\n\
             ausrc_srate 48000\nauplay_srate 48000\nausrc_channels 2\nauplay_channels 2\n\
             rtcp_mux yes\nctrl_tcp_listen {ctrl}\nsnd_path {rec}\n",
            listen = spec.listen,
            ip = spec.listen.ip(),
            tone = spec.tone_hz,
            rec = rec.display(),
        );
        if let Some(dns) = spec.dns {
            config.push_str(&format!("dns_server {dns}\n"));
        }
        if let Some((cert, ca)) = &spec.tls {
            config.push_str(&format!(
                "sip_certificate {}\nsip_cafile {}\n",
                cert.display(),
                ca.display()
            ));
        }
        std::fs::write(dir.path().join("config"), config).unwrap();
        std::fs::write(dir.path().join("accounts"), format!("{}\n", spec.account)).unwrap();
        let log = std::fs::File::create(dir.path().join("baresip.log")).unwrap();
        let mut cmd = Command::new("baresip");
        cmd.arg("-f").arg(dir.path());
        if spec.sip_trace {
            cmd.arg("-s");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let listen = spec.listen;
        let b = Baresip {
            child,
            dir,
            ctrl,
            listen,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(ctrl).is_err() {
            assert!(
                Instant::now() < deadline,
                "baresip did not start:\n{}",
                b.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        b
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("baresip.log")).unwrap_or_default()
    }

    /// Sends a ctrl_tcp command; returns its JSON answer.
    pub fn command(&self, command: &str, params: &str) -> String {
        let body = format!("{{\"command\":\"{command}\",\"params\":\"{params}\",\"token\":\"t\"}}");
        let mut s = TcpStream::connect(self.ctrl).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(format!("{}:{body},", body.len()).as_bytes())
            .unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // One netstring answer (events may come first; read until the response arrives).
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            if String::from_utf8_lossy(&out).contains("\"response\":true") {
                break;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    pub fn dial(&self, uri: &str) {
        self.command("dial", uri);
    }

    pub fn hangup(&self) {
        self.command("hangup", "");
    }

    /// Waits for a log line containing `what`.
    pub fn wait_log(&self, what: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(what) {
            assert!(
                Instant::now() < deadline,
                "baresip never logged {what:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `what` appears `n` times in the log.
    pub fn wait_count(&self, what: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count_log(what) < n {
            assert!(
                Instant::now() < deadline,
                "baresip logged {what:?} fewer than {n} times:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many times `what` appears in the log.
    pub fn count_log(&self, what: &str) -> usize {
        self.log().matches(what).count()
    }

    /// The SIP messages this endpoint received from `peer`, oldest first, as its SIP trace
    /// (`sip_trace`) logged them: each is a `# `-marked block, `<transport> <from> -> <to>`
    /// and then the message, up to the colour reset.
    pub fn received_from(&self, peer: SocketAddr) -> Vec<String> {
        self.received_where(|from, _| from == peer)
    }

    /// [`Baresip::received_from`] `peer`, and from other ports of its host to our listening
    /// ports: requests in a dialog come on connections of their own, to our Contact (RFC
    /// 3261 §12.2.1.1).
    pub fn received_from_host(&self, peer: SocketAddr) -> Vec<String> {
        let own = [self.listen.port(), self.listen.port() + 1];
        self.received_where(|from, to| {
            from == peer
                || (from.ip() == peer.ip()
                    && own.contains(&to.port())
                    && !own.contains(&from.port()))
        })
    }

    fn received_where(&self, wanted: impl Fn(SocketAddr, SocketAddr) -> bool) -> Vec<String> {
        self.log()
            .split("#\n")
            .skip(1)
            .filter_map(|block| {
                let (route, rest) = block.split_once('\n')?;
                // `<transport> <from> -> <to>`
                let (from, to) = route.split_once(" -> ")?;
                let to: SocketAddr = to.trim().parse().ok()?;
                let from: SocketAddr = from.split(' ').next_back()?.parse().ok()?;
                wanted(from, to).then(|| {
                    let end = rest.find("\x1b[").unwrap_or(rest.len());
                    rest[..end].trim_end().replace("\r\n", "\n")
                })
            })
            .collect()
    }

    /// The decoded audio of each call, oldest first: what this endpoint heard.
    pub fn heard(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("rec"))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with("-dec.wav"))
            .collect();
        files.sort();
        files
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dominant frequency (Hz, from zero crossings) and RMS level of a 16-bit PCM WAV, over
/// its middle (the first and last 0.5 s are left out: set-up and tear-down).
pub fn tone_of(wav: &Path) -> (f64, f64) {
    let data = std::fs::read(wav).unwrap();
    let (rate, channels, samples) =
        pcm16(&data).unwrap_or_else(|| panic!("{} is not 16-bit PCM WAV", wav.display()));
    tone_of_samples(rate, &mono_of(&samples, channels))
}

/// [`tone_of`] over the last `seconds` of the file (and its last 0.5 s left out): what an
/// endpoint heard after its call changed peers.
pub fn tone_of_tail(wav: &Path, seconds: f64) -> (f64, f64) {
    let data = std::fs::read(wav).unwrap();
    let (rate, channels, samples) =
        pcm16(&data).unwrap_or_else(|| panic!("{} is not 16-bit PCM WAV", wav.display()));
    let mono = mono_of(&samples, channels);
    let keep = (f64::from(rate) * (seconds + 1.0)) as usize;
    tone_of_samples(rate, &mono[mono.len().saturating_sub(keep)..])
}

/// Asserts that `heard` (frequency, RMS, as [`tone_of`] gives it) is a clear `hz` tone:
/// louder than RMS 500 and within 10 % of the frequency. `context` goes into the failure.
pub fn assert_tone(who: &str, (freq, rms): (f64, f64), hz: u32, context: &str) {
    let hz = f64::from(hz);
    assert!(
        rms > 500.0 && (freq - hz).abs() < hz / 10.0,
        "{who} heard {freq:.0} Hz at RMS {rms:.0}, not {hz:.0} Hz\n{context}"
    );
}

fn mono_of(samples: &[i16], channels: usize) -> Vec<f64> {
    samples
        .chunks(channels.max(1))
        .map(|c| c.iter().map(|&s| f64::from(s)).sum::<f64>() / c.len() as f64)
        .collect()
}

/// [`tone_of`] for mono samples at `rate` Hz: the first and last half second are left out
/// (ringing, call setup), and fewer than 0.1 s left gives (0, 0).
pub fn tone_of_samples(rate: u32, mono: &[f64]) -> (f64, f64) {
    let skip = rate as usize / 2;
    if mono.len() <= 2 * skip + rate as usize / 10 {
        return (0.0, 0.0);
    }
    let mid = &mono[skip..mono.len() - skip];
    let rms = (mid.iter().map(|s| s * s).sum::<f64>() / mid.len() as f64).sqrt();
    let crossings = mid
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    let seconds = mid.len() as f64 / f64::from(rate);
    (crossings as f64 / 2.0 / seconds, rms)
}

fn pcm16(data: &[u8]) -> Option<(u32, usize, Vec<i16>)> {
    if data.get(0..4)? != b"RIFF" || data.get(8..12)? != b"WAVE" {
        return None;
    }
    let mut at = 12;
    let (mut rate, mut channels) = (0u32, 0usize);
    while at + 8 <= data.len() {
        let id = &data[at..at + 4];
        let len = u32::from_le_bytes(data[at + 4..at + 8].try_into().ok()?) as usize;
        let body = data.get(at + 8..(at + 8 + len).min(data.len()))?;
        if id == b"fmt " {
            channels = usize::from(u16::from_le_bytes(body.get(2..4)?.try_into().ok()?));
            rate = u32::from_le_bytes(body.get(4..8)?.try_into().ok()?);
        } else if id == b"data" {
            let samples = body
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            return Some((rate, channels, samples));
        }
        at += 8 + len + (len & 1);
    }
    None
}
