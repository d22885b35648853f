//! RFC 4028 session timers, one per leg. Calls that "drop after 15 to 30 minutes" are calls
//! where the party named by `refresher=` never refreshed (teams-direct-routing.md §3.5). Each
//! leg keeps its own interval and refresher, so a PBX without timers and Teams with them never
//! have to agree. This module only decides: the call sends the refresh re-INVITE or the BYE.

use std::time::{Duration, Instant};

use teamsgw_sip::Message;
use teamsgw_sip::message::HeaderName;

/// RFC 4028 §4: no interval below 90 s is ever asked for or accepted.
pub const MIN_SE: Duration = Duration::from_secs(90);

/// The longest interval we keep: a larger Session-Expires is lowered to it in our answer
/// (§9 lets the UAS reduce it), so no peer's number can overflow a deadline.
pub const MAX_SE: Duration = Duration::from_secs(86_400);

/// The session timer of one leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionTimer {
    pub interval: Duration,
    /// We send the refreshes; else the peer does and we watch for them.
    pub we_refresh: bool,
    /// The peer said `Supported: timer`: our answers carry `Require: timer` (§9).
    pub peer_supports: bool,
    /// The last refresh (or the answer that started the session).
    last: Instant,
}

/// A request's interval was below our minimum: answer 422 with `Min-SE` (§8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooSmall(pub Duration);

/// `Session-Expires: <seconds>[;refresher=uac|uas]`.
fn session_expires(msg: &Message) -> Option<(Duration, Option<bool>)> {
    let value = msg.header(HeaderName::SessionExpires)?;
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split(';').map(str::trim);
    let seconds: u64 = parts.next()?.parse().ok()?;
    let refresher_is_uac = parts.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| value.trim().eq_ignore_ascii_case("uac"))
    });
    Some((Duration::from_secs(seconds).min(MAX_SE), refresher_is_uac))
}

/// `Min-SE` of a 422 (§6); `None` above [`MAX_SE`], which we will not keep (the INVITE then
/// fails with the 422 rather than retrying with it).
pub fn min_se(msg: &Message) -> Option<Duration> {
    let value = msg.header(HeaderName::MinSe)?;
    let seconds: u64 = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
    let min = Duration::from_secs(seconds);
    (min <= MAX_SE).then_some(min)
}

fn supports_timer(msg: &Message) -> bool {
    msg.values(HeaderName::Supported)
        .chain(msg.values(HeaderName::Require))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"timer"))
}

impl SessionTimer {
    /// As UAS of `request` (the first INVITE or a refresh). The interval is the request's own
    /// Session-Expires, else `ours` when given (our timer on a leg whose peer offers none).
    /// Without `refresher=`, the refresher is the UAC if it supports timers, else us (§9).
    pub fn as_uas(
        request: &Message,
        ours: Option<Duration>,
        now: Instant,
    ) -> Result<Option<Self>, TooSmall> {
        let peer_supports = supports_timer(request);
        let (interval, refresher_is_uac) = match session_expires(request) {
            Some((interval, _)) if interval < MIN_SE => return Err(TooSmall(MIN_SE)),
            Some((interval, r)) => (interval, r),
            None => match ours {
                Some(interval) => (interval, None),
                None => return Ok(None),
            },
        };
        let peer_refreshes = refresher_is_uac.unwrap_or(peer_supports) && peer_supports;
        Ok(Some(Self {
            interval,
            we_refresh: !peer_refreshes,
            peer_supports,
            last: now,
        }))
    }

    /// As UAC, from the 2xx to our INVITE that asked for `asked`. The 2xx's Session-Expires
    /// decides (§7.2); a UAS that ignored ours has none, so we refresh on our own at the
    /// interval we asked for: harmless to it, and it finds a dead peer.
    pub fn as_uac(response: &Message, asked: Duration, now: Instant) -> Self {
        let (interval, we_refresh, peer_supports) = match session_expires(response) {
            Some((interval, r)) => (interval.max(MIN_SE), r.unwrap_or(true), true),
            None => (asked, true, false),
        };
        Self {
            interval,
            we_refresh,
            peer_supports,
            last: now,
        }
    }

    /// When to act: send our refresh at half the interval (§7.4), or, when the peer refreshes,
    /// give up at the interval less min(32 s, a third of it) (§10).
    pub fn deadline(&self) -> Instant {
        if self.we_refresh {
            self.last + self.interval / 2
        } else {
            let margin = (self.interval / 3).min(Duration::from_secs(32));
            self.last + self.interval - margin
        }
    }

    /// `Session-Expires` for our answer (we are the UAS of the request being answered).
    pub fn answer_header(&self) -> String {
        let who = if self.we_refresh { "uas" } else { "uac" };
        format!("{};refresher={who}", self.interval.as_secs())
    }

    /// `Session-Expires` for our refresh re-INVITE (we are its UAC and stay the refresher).
    pub fn refresh_header(&self) -> String {
        format!("{};refresher=uac", self.interval.as_secs())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn invite(extra: &str) -> Message {
        let text = format!(
            "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:c@d>;tag=1\r\n\
             To: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(bytes::Bytes::from(text)).unwrap()
    }

    #[test]
    fn uas_honours_the_offer_and_its_refresher_rfc4028_9() {
        let t0 = Instant::now();
        let t = SessionTimer::as_uas(
            &invite("Session-Expires: 1800;refresher=uac\r\nSupported: timer\r\n"),
            None,
            t0,
        )
        .unwrap()
        .unwrap();
        assert_eq!((t.interval.as_secs(), t.we_refresh), (1800, false));
        assert_eq!(t.answer_header(), "1800;refresher=uac");
        // The peer refreshes: we give up 32 s before the end (§10).
        assert_eq!(t.deadline(), t0 + Duration::from_secs(1768));

        // No refresher named and the UAC supports timers: it refreshes. Compact `x` form.
        let t = SessionTimer::as_uas(&invite("x: 600\r\nk: timer\r\n"), None, t0)
            .unwrap()
            .unwrap();
        assert!(!t.we_refresh);
        // refresher=uas: we refresh at half the interval (§7.4).
        let t = SessionTimer::as_uas(
            &invite("Session-Expires: 600;refresher=uas\r\nSupported: timer\r\n"),
            None,
            t0,
        )
        .unwrap()
        .unwrap();
        assert!(t.we_refresh);
        assert_eq!(t.deadline(), t0 + Duration::from_secs(300));
        // A UAC without timer support cannot refresh: we do (§9).
        let t = SessionTimer::as_uas(&invite("Session-Expires: 600\r\n"), None, t0)
            .unwrap()
            .unwrap();
        assert!(t.we_refresh && !t.peer_supports);
    }

    #[test]
    fn too_small_is_422_with_min_se_and_no_offer_uses_ours_rfc4028_8_1() {
        let t0 = Instant::now();
        assert_eq!(
            SessionTimer::as_uas(&invite("Session-Expires: 60\r\n"), None, t0),
            Err(TooSmall(MIN_SE))
        );
        assert_eq!(SessionTimer::as_uas(&invite(""), None, t0), Ok(None));
        let ours = SessionTimer::as_uas(&invite(""), Some(Duration::from_secs(1800)), t0)
            .unwrap()
            .unwrap();
        assert!(ours.we_refresh);
        assert_eq!(ours.answer_header(), "1800;refresher=uas");
    }
}
