//! Who is calling, and how the call got here, carried from one side's conventions to the
//! other's: privacy (RFC 3323, RFC 3325) and call history (History-Info, RFC 7044, from Teams;
//! Diversion, RFC 5806, from PBXs; mapped as RFC 7544 says).
//!
//! Trust decides what crosses (RFC 3325 §5): Teams is a trusted peer, so it gets a
//! P-Asserted-Identity even for an anonymous caller, with `Privacy: id` to hide it from the
//! user; a PBX is not, so it never gets one. It authenticates the Teams user by digest and is
//! asked for privacy with `Privacy: id` (RFC 3323 §4.2), which is why the From URI towards
//! it stays the user's own: a PBX that lets a device call only as itself still accepts it.

use teamsgw_sip::Message;
use teamsgw_sip::message::{NameAddr, Uri, unescape};

use super::routing::{NumberFormat, PbxRoute, RoutingView, to_e164};

/// Entries beyond this are dropped: a real diversion chain is a handful of hops.
const MAX_HISTORY: usize = 10;

/// RFC 3323 §4.2: `id` (RFC 3325 §9.3) or `user` asks that the caller's identity be hidden; a
/// From of `anonymous` (RFC 3323 §4.1.1.3) says the same.
pub fn caller_is_anonymous(request: &Message) -> bool {
    let asked = request
        .privacy()
        .any(|v| v.eq_ignore_ascii_case(b"id") || v.eq_ignore_ascii_case(b"user"));
    let anonymous_from = request
        .from()
        .and_then(Result::ok)
        .is_some_and(|f| match f.uri {
            Uri::Sip(s) => {
                s.user.is_some_and(|u| u.eq_ignore_ascii_case(b"anonymous"))
                    || matches!(s.host, teamsgw_sip::message::Host::Name(h)
                        if h.eq_ignore_ascii_case("anonymous.invalid"))
            }
            _ => false,
        });
    asked || anonymous_from
}

/// Towards Teams on a call from a PBX: From, and the identity headers for the INVITE.
/// `caller` is the number routing found (E.164 when it could be), `anonymous` is `"anonymous"`
/// when there was none.
pub fn towards_teams(
    anonymous: bool,
    display: &str,
    caller: &str,
    fqdn: &str,
) -> (String, Vec<(&'static str, String)>) {
    let known = caller != "anonymous";
    // The caller came from the PBX: checked against the URI user grammar (RFC 3261 §25.1).
    let caller = teamsgw_sip::message::escape_user(caller);
    let asserted = format!("<sip:{caller}@{fqdn};user=phone>");
    let mut headers = Vec::new();
    if known {
        headers.push(("P-Asserted-Identity", asserted.clone()));
    }
    if anonymous {
        headers.push(("Privacy", "id".to_owned()));
        let from = "\"Anonymous\" <sip:anonymous@anonymous.invalid>".to_owned();
        return (from, headers);
    }
    (format!("{display}{asserted}"), headers)
}

/// How a retargeting cause reads as a Diversion reason (RFC 7544 §4, Table 1).
fn diversion_reason(cause: u16) -> &'static str {
    match cause {
        302 => "unconditional",
        486 => "user-busy",
        408 => "no-answer",
        480 | 487 => "deflection",
        503 => "unavailable",
        _ => "unknown",
    }
}

/// How a Diversion reason reads as a History-Info cause (RFC 7544 §5, Table 2, with erratum
/// 3071: `unavailable` is 503).
fn history_cause(reason: &str) -> u16 {
    match reason.to_ascii_lowercase().as_str() {
        "unconditional" => 302,
        "user-busy" => 486,
        "no-answer" => 408,
        "deflection" => 480,
        "unavailable" => 503,
        _ => 404,
    }
}

/// One History-Info entry: the target's number, the cause it was retargeted with (its own
/// escaped Reason, RFC 4244 style) and the cause it was reached by (`cause=` in its URI,
/// RFC 7044 §9.1, RFC 4458), and whether it asked for history privacy.
struct HistoryEntry {
    number: String,
    left_by: Option<u16>,
    reached_by: Option<u16>,
    private: bool,
}

fn history_entry(a: &NameAddr<'_>) -> Option<HistoryEntry> {
    let Uri::Sip(s) = a.uri else { return None };
    let user = unescape(s.user?);
    let number = std::str::from_utf8(&user)
        .ok()?
        .split(';')
        .next()?
        .to_owned();
    let reached_by = s
        .params
        .get(b"cause")
        .flatten()
        .and_then(|c| std::str::from_utf8(c).ok()?.parse().ok());
    let headers = s.headers.map(unescape).unwrap_or_default();
    let headers = String::from_utf8_lossy(&headers).to_ascii_lowercase();
    let left_by = headers.split('&').find_map(|h| {
        let reason = h.strip_prefix("reason=")?;
        let cause = reason
            .split(';')
            .find_map(|p| p.trim().strip_prefix("cause="))?;
        cause.parse().ok()
    });
    let private = headers.contains("privacy=history");
    Some(HistoryEntry {
        number,
        left_by,
        reached_by,
        private,
    })
}

/// Teams' History-Info as Diversion towards a PBX that wants it (RFC 7544 §4): every entry
/// but the last diverted the call; the most recent diversion comes first (RFC 5806 §4).
/// A diverting number that is a user of this enterprise becomes its PBX extension.
pub fn diversion_from_history(
    request: &Message,
    view: &RoutingView,
    enterprise_id: &str,
    pbx: &PbxRoute,
) -> Option<String> {
    let entries: Vec<HistoryEntry> = request
        .history_info()
        .filter_map(Result::ok)
        .filter_map(|a| history_entry(&a))
        .take(MAX_HISTORY)
        .collect();
    if entries.len() < 2 {
        return None;
    }
    let mut out = Vec::new();
    for (i, e) in entries[..entries.len() - 1].iter().enumerate().rev() {
        let cause = e.left_by.or(entries[i + 1].reached_by).unwrap_or(404);
        let user = match view.user_by_number(enterprise_id, &e.number) {
            Some(u) => u.extension.clone(),
            None => match pbx.number_format {
                NumberFormat::E164 => e.number.clone(),
                NumberFormat::Digits => e.number.trim_start_matches('+').to_owned(),
            },
        };
        let privacy = if e.private { "full" } else { "off" };
        out.push(format!(
            "<sip:{user}@{}>;reason={};counter=1;privacy={privacy}",
            pbx.domain,
            diversion_reason(cause)
        ));
    }
    Some(out.join(", "))
}

/// A PBX's Diversion as History-Info towards Teams (RFC 7544 §5): the oldest diverting party
/// is index 1, each diversion one level deeper, and the last entry is the Teams user it
/// reached, with the cause of the last diversion.
pub fn history_from_diversion(
    request: &Message,
    pbx: &PbxRoute,
    fqdn: &str,
    target: &str,
) -> Option<String> {
    let mut diverters: Vec<(String, u16, bool)> = request
        .values(teamsgw_sip::HeaderName::Diversion)
        .filter_map(|v| NameAddr::parse(v).ok())
        .filter_map(|a| {
            let user = unescape(a.uri.user()?);
            let number = std::str::from_utf8(&user)
                .ok()?
                .split(';')
                .next()?
                .to_owned();
            let reason = a
                .params
                .get(b"reason")
                .flatten()
                .map(|r| String::from_utf8_lossy(r).into_owned())
                .unwrap_or_default();
            let private = a
                .params
                .get(b"privacy")
                .flatten()
                .is_some_and(|p| !p.eq_ignore_ascii_case(b"off"));
            Some((
                to_e164(&number, pbx.country_code.as_deref()),
                history_cause(reason.trim_matches('"')),
                private,
            ))
        })
        .take(MAX_HISTORY)
        .collect();
    if diverters.is_empty() {
        return None;
    }
    // Diversion lists the most recent first; History-Info the oldest.
    diverters.reverse();
    let mut entries = Vec::new();
    let mut index = "1".to_owned();
    let mut reached_by: Option<u16> = None;
    for (number, cause, private) in &diverters {
        let cause_param = reached_by
            .map(|c| format!(";cause={c}"))
            .unwrap_or_default();
        let privacy = if *private { "&Privacy=history" } else { "" };
        let number = teamsgw_sip::message::escape_user(number);
        entries.push(format!(
            "<sip:{number}@{fqdn};user=phone{cause_param}?Reason=SIP%3Bcause%3D{cause}{privacy}>;index={index}"
        ));
        reached_by = Some(*cause);
        index.push_str(".1");
    }
    let cause_param = reached_by
        .map(|c| format!(";cause={c}"))
        .unwrap_or_default();
    entries.push(format!(
        "<sip:{target}@{fqdn};user=phone{cause_param}>;index={index}"
    ));
    Some(entries.join(", "))
}
