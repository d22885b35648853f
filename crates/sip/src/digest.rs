//! Digest authentication, client side (RFC 7616, RFC 2617, as used by SIP in RFC 3261 §22).
//!
//! [`DigestClient`] answers 401/407 challenges and keeps one session per realm, so the next
//! request to the same realm carries credentials up front with an incremented nonce count.
//! It tells a wrong password apart from an expired nonce: a request that already carried our
//! credentials and is challenged again without `stale=true` is an authentication failure.

use std::collections::HashMap;
use std::fmt::Write as _;

use md5::Md5;
use sha2::{Digest as _, Sha256};

use crate::message::{Auth, HeaderName, Message};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    fn parse(s: &[u8]) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_slice() {
            b"MD5" => Self::Md5,
            b"MD5-SESS" => Self::Md5Sess,
            b"SHA-256" => Self::Sha256,
            b"SHA-256-SESS" => Self::Sha256Sess,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    fn hash(self, data: &str) -> String {
        let bytes: Vec<u8> = match self {
            Self::Md5 | Self::Md5Sess => Md5::digest(data.as_bytes()).to_vec(),
            Self::Sha256 | Self::Sha256Sess => Sha256::digest(data.as_bytes()).to_vec(),
        };
        bytes.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    fn is_session(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("no challenge in the response")]
    NoChallenge,
    #[error("no supported Digest challenge (algorithm or qop not supported)")]
    Unsupported,
    #[error("credentials rejected for realm {0:?}")]
    Rejected(String),
}

/// One parsed `WWW-Authenticate`/`Proxy-Authenticate` Digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// The server offered qop=auth (we never use auth-int).
    pub qop_auth: bool,
    pub stale: bool,
    /// From Proxy-Authenticate (answered with Proxy-Authorization).
    pub proxy: bool,
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

impl Challenge {
    /// `None` when the challenge is not Digest or asks for what we do not support.
    pub fn from_auth(auth: &Auth<'_>, proxy: bool) -> Option<Self> {
        if !auth.scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let algorithm = match auth.param("algorithm") {
            Some(a) => Algorithm::parse(a)?,
            None => Algorithm::Md5,
        };
        let qop = auth.param("qop");
        let qop_auth = qop.is_some_and(|q| {
            q.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"auth"))
        });
        if qop.is_some() && !qop_auth {
            return None; // only auth-int offered
        }
        Some(Self {
            realm: text(auth.param("realm")?),
            nonce: text(auth.param("nonce")?),
            opaque: auth.param("opaque").map(text),
            algorithm,
            qop_auth,
            stale: auth
                .param("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case(b"true")),
            proxy,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// The request-digest of RFC 7616 §3.4.1 (qop=auth) or RFC 2617 §3.2.2.1 (no qop).
#[allow(clippy::too_many_arguments)]
pub fn response(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    nc: u32,
    cnonce: &str,
    qop_auth: bool,
    method: &str,
    uri: &str,
) -> String {
    let mut ha1 = algorithm.hash(&format!("{username}:{realm}:{password}"));
    if algorithm.is_session() {
        ha1 = algorithm.hash(&format!("{ha1}:{nonce}:{cnonce}"));
    }
    let ha2 = algorithm.hash(&format!("{method}:{uri}"));
    if qop_auth {
        algorithm.hash(&format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}"))
    } else {
        algorithm.hash(&format!("{ha1}:{nonce}:{ha2}"))
    }
}

/// A challenge being answered, with its nonce count.
#[derive(Debug, Clone)]
struct Session {
    challenge: Challenge,
    nc: u32,
}

impl Session {
    fn header(
        &mut self,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> (&'static str, String) {
        self.nc += 1;
        let c = &self.challenge;
        let digest = response(
            c.algorithm,
            &credentials.username,
            &c.realm,
            &credentials.password,
            &c.nonce,
            self.nc,
            cnonce,
            c.qop_auth,
            method,
            uri,
        );
        let mut v = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{digest}\", algorithm={}",
            quote(&credentials.username),
            quote(&c.realm),
            quote(&c.nonce),
            c.algorithm.as_str()
        );
        if c.qop_auth {
            let _ = write!(
                v,
                ", cnonce=\"{}\", qop=auth, nc={:08x}",
                quote(cnonce),
                self.nc
            );
        }
        if let Some(opaque) = &c.opaque {
            let _ = write!(v, ", opaque=\"{}\"", quote(opaque));
        }
        let name = if c.proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        (name, v)
    }
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Answers challenges and remembers realms for the requests that follow.
#[derive(Debug, Default)]
pub struct DigestClient {
    sessions: HashMap<(String, bool), Session>,
}

impl DigestClient {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a 401/407 to `previous` (the request it answers). Returns `Err(Rejected)` when
    /// `previous` already carried our credentials for a challenged realm and the challenge is
    /// not `stale=true`: the password is wrong, retrying cannot help.
    pub fn on_challenge(
        &mut self,
        previous: &Message,
        challenge_response: &Message,
    ) -> Result<(), DigestError> {
        let challenges: Vec<Challenge> = challenge_response
            .www_authenticate()
            .filter_map(Result::ok)
            .filter_map(|a| Challenge::from_auth(&a, false))
            .chain(
                challenge_response
                    .proxy_authenticate()
                    .filter_map(Result::ok)
                    .filter_map(|a| Challenge::from_auth(&a, true)),
            )
            .collect();
        let any = challenge_response
            .header(HeaderName::WwwAuthenticate)
            .is_some()
            || challenge_response
                .header(HeaderName::ProxyAuthenticate)
                .is_some();
        if challenges.is_empty() {
            return Err(if any {
                DigestError::Unsupported
            } else {
                DigestError::NoChallenge
            });
        }
        // Per realm, the first supported challenge wins (servers list their preference first).
        let mut seen = Vec::new();
        for c in challenges {
            let key = (c.realm.clone(), c.proxy);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key.clone());
            if sent_credentials_for(previous, &c) && !c.stale {
                self.sessions.remove(&key);
                return Err(DigestError::Rejected(c.realm));
            }
            self.sessions.insert(
                key,
                Session {
                    challenge: c,
                    nc: 0,
                },
            );
        }
        Ok(())
    }

    /// Authorization headers for a request to `uri`, one per remembered realm.
    pub fn authorize(
        &mut self,
        credentials: &Credentials,
        method: &str,
        uri: &str,
    ) -> Vec<(&'static str, String)> {
        let cnonce = new_cnonce();
        self.sessions
            .values_mut()
            .map(|s| s.header(credentials, method, uri, &cnonce))
            .collect()
    }

    pub fn forget(&mut self) {
        self.sessions.clear();
    }
}

fn sent_credentials_for(previous: &Message, challenge: &Challenge) -> bool {
    let mut sent = if challenge.proxy {
        Box::new(previous.proxy_authorization()) as Box<dyn Iterator<Item = _>>
    } else {
        Box::new(previous.authorization())
    };
    sent.any(|a| {
        a.ok()
            .and_then(|a| a.param("realm").map(|r| r == challenge.realm.as_bytes()))
            .unwrap_or(false)
    })
}

fn new_cnonce() -> String {
    let mut bytes = [0u8; 12];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No OS randomness: a time-based cnonce still changes per request.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes.copy_from_slice(&t.to_le_bytes()[..12]);
    }
    bytes.iter().fold(String::with_capacity(24), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    #[test]
    fn rfc7616_3_9_1_examples_md5_and_sha256() {
        let r = |alg| {
            response(
                alg,
                "Mufasa",
                "http-auth@example.org",
                "Circle of Life",
                NONCE,
                1,
                CNONCE,
                true,
                "GET",
                "/dir/index.html",
            )
        };
        assert_eq!(r(Algorithm::Md5), "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(
            r(Algorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc2617_3_5_example_without_cnonce_change() {
        // RFC 2617 §3.5: the same Mufasa example with MD5 and qop=auth.
        let r = response(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            1,
            "0a4f113b",
            true,
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    fn msg(text: &str) -> Message {
        Message::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap()
    }

    fn register(auth: Option<&str>) -> Message {
        msg(&format!(
            "REGISTER sip:pbx.example.com SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\nFrom: <sip:2001@pbx.example.com>;tag=1\nTo: <sip:2001@pbx.example.com>\nCall-ID: r1\nCSeq: 1 REGISTER\n{}Content-Length: 0\n\n",
            auth.map(|a| format!("Authorization: {a}\n"))
                .unwrap_or_default()
        ))
    }

    fn challenge(header: &str, extra: &str) -> Message {
        msg(&format!(
            "SIP/2.0 401 Unauthorized\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\nFrom: <sip:2001@pbx.example.com>;tag=1\nTo: <sip:2001@pbx.example.com>;tag=x\nCall-ID: r1\nCSeq: 1 REGISTER\n{header}: Digest realm=\"pbx.example.com\", nonce=\"abc\", qop=\"auth\"{extra}\nContent-Length: 0\n\n"
        ))
    }

    fn creds() -> Credentials {
        Credentials {
            username: "2001".into(),
            password: "secret".into(),
        }
    }

    #[test]
    fn answers_then_reuses_the_realm_with_an_incrementing_nonce_count_rfc7616_3_4() {
        let mut client = DigestClient::new();
        client
            .on_challenge(&register(None), &challenge("WWW-Authenticate", ""))
            .unwrap();
        let first = client.authorize(&creds(), "REGISTER", "sip:pbx.example.com");
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].0, "Authorization");
        assert!(first[0].1.contains("nc=00000001") && first[0].1.contains("qop=auth"));
        let second = client.authorize(&creds(), "REGISTER", "sip:pbx.example.com");
        assert!(second[0].1.contains("nc=00000002"), "{}", second[0].1);
        // The header we write parses back with our own parser and verifies.
        let m = register(Some(&second[0].1));
        let a = m.authorization().next().unwrap().unwrap();
        let expected = response(
            Algorithm::Md5,
            "2001",
            "pbx.example.com",
            "secret",
            "abc",
            2,
            std::str::from_utf8(a.param("cnonce").unwrap()).unwrap(),
            true,
            "REGISTER",
            "sip:pbx.example.com",
        );
        assert_eq!(a.param("response").unwrap(), expected.as_bytes());
    }

    #[test]
    fn proxy_challenges_get_proxy_authorization_rfc3261_22_3() {
        let mut client = DigestClient::new();
        client
            .on_challenge(
                &register(None),
                &challenge("Proxy-Authenticate", ", algorithm=SHA-256"),
            )
            .unwrap();
        let h = client.authorize(&creds(), "INVITE", "sip:bob@example.com");
        assert_eq!(h[0].0, "Proxy-Authorization");
        assert!(h[0].1.contains("algorithm=SHA-256"));
    }

    #[test]
    fn challenged_again_is_a_wrong_password_unless_stale_rfc7616_3_3() {
        let mut client = DigestClient::new();
        client
            .on_challenge(&register(None), &challenge("WWW-Authenticate", ""))
            .unwrap();
        let (_, value) = client
            .authorize(&creds(), "REGISTER", "sip:pbx.example.com")
            .remove(0);
        let authed = register(Some(&value));
        // stale=true: the nonce expired, our password was fine; answer again.
        assert!(
            client
                .on_challenge(&authed, &challenge("WWW-Authenticate", ", stale=true"))
                .is_ok()
        );
        assert!(
            client.authorize(&creds(), "REGISTER", "sip:pbx.example.com")[0]
                .1
                .contains("nc=00000001")
        );
        // No stale: rejected.
        assert_eq!(
            client.on_challenge(&authed, &challenge("WWW-Authenticate", "")),
            Err(DigestError::Rejected("pbx.example.com".into()))
        );
    }

    #[test]
    fn unsupported_challenges_are_reported() {
        let mut client = DigestClient::new();
        let m = challenge("WWW-Authenticate", ", algorithm=SHA-512-256");
        assert_eq!(
            client.on_challenge(&register(None), &m),
            Err(DigestError::Unsupported)
        );
        let basic = msg(
            "SIP/2.0 401 X\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: r\nCSeq: 1 REGISTER\nWWW-Authenticate: Basic realm=\"x\"\n\n",
        );
        assert_eq!(
            client.on_challenge(&register(None), &basic),
            Err(DigestError::Unsupported)
        );
    }

    #[test]
    fn no_qop_uses_the_rfc2617_form() {
        let mut client = DigestClient::new();
        let m = msg(
            "SIP/2.0 401 X\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: r\nCSeq: 1 REGISTER\nWWW-Authenticate: Digest realm=\"r\", nonce=\"n\", opaque=\"o\"\n\n",
        );
        client.on_challenge(&register(None), &m).unwrap();
        let v = &client.authorize(&creds(), "REGISTER", "sip:r")[0].1;
        assert!(
            !v.contains("qop") && !v.contains("cnonce") && v.contains("opaque=\"o\""),
            "{v}"
        );
        let expected = response(
            Algorithm::Md5,
            "2001",
            "r",
            "secret",
            "n",
            1,
            "",
            false,
            "REGISTER",
            "sip:r",
        );
        assert!(v.contains(&expected));
    }
}
