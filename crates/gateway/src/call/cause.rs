//! Why a call ended: one cause feeds the CDR, the metrics and the `Reason` headers.

/// Which side ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Teams,
    Pbx,
    /// teamsgw itself (timeouts, drain, media loss).
    Gateway,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Teams => "teams",
            Side::Pbx => "pbx",
            Side::Gateway => "gateway",
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::Teams => Side::Pbx,
            Side::Pbx => Side::Teams,
            Side::Gateway => Side::Gateway,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndCause {
    /// A BYE from this side after the call was answered.
    HungUp(Side),
    Busy,
    NoAnswer,
    Cancelled,
    /// A final failure from the called side, passed on.
    Rejected(u16),
    /// teamsgw refused the call before calling anyone (routing, admission, SDP).
    Refused(u16),
    /// The called side could not be reached (timeouts, transport, every proxy tried).
    Unreachable,
    MediaTimeout,
    Drained,
    /// Our 2xx was never acknowledged (RFC 3261 §13.3.1.4).
    AckTimeout,
    /// This side was to refresh the session and did not (RFC 4028 §10).
    SessionExpired(Side),
    /// Our session refresh towards this side failed (RFC 4028 §10).
    RefreshFailed(Side),
    /// teamsgw failed: the call's shard panicked and was restarted (issue 31 §4).
    InternalError,
}

impl EndCause {
    /// `teamsgw_calls_total{result}`.
    pub fn result(&self) -> &'static str {
        match self {
            EndCause::HungUp(_)
            | EndCause::MediaTimeout
            | EndCause::Drained
            | EndCause::SessionExpired(_)
            | EndCause::RefreshFailed(_) => "answered",
            EndCause::AckTimeout | EndCause::InternalError => "failed",
            EndCause::Busy => "busy",
            EndCause::NoAnswer => "no_answer",
            EndCause::Cancelled => "cancelled",
            EndCause::Rejected(_) | EndCause::Refused(_) => "rejected",
            EndCause::Unreachable => "failed",
        }
    }

    /// The text for the CDR and logs.
    pub fn describe(&self) -> String {
        match self {
            EndCause::HungUp(side) => format!("{} hung up", side.as_str()),
            EndCause::Busy => "busy".into(),
            EndCause::NoAnswer => "no answer".into(),
            EndCause::Cancelled => "cancelled".into(),
            EndCause::Rejected(code) => format!("rejected with {code}"),
            EndCause::Refused(code) => format!("refused by teamsgw with {code}"),
            EndCause::Unreachable => "called side unreachable".into(),
            EndCause::MediaTimeout => "media timeout".into(),
            EndCause::Drained => "drain limit reached".into(),
            EndCause::AckTimeout => "no ACK for our 200".into(),
            EndCause::SessionExpired(side) => {
                format!("{} stopped refreshing the session", side.as_str())
            }
            EndCause::RefreshFailed(side) => {
                format!("session refresh towards {} failed", side.as_str())
            }
            EndCause::InternalError => "internal error".into(),
        }
    }

    /// `Reason` for the BYE we send because of this cause (RFC 3326), when we end the call.
    pub fn bye_reason(&self) -> Option<String> {
        match self {
            // Q.850 cause 3 is "no route to destination"; cause 41 "temporary failure".
            EndCause::MediaTimeout => Some(r#"Q.850;cause=41;text="media timeout""#.into()),
            EndCause::Drained => Some(r#"Q.850;cause=41;text="SBC shutting down""#.into()),
            EndCause::AckTimeout => Some(r#"SIP;cause=408;text="no ACK for 200""#.into()),
            EndCause::SessionExpired(_) => Some(r#"SIP;cause=408;text="session expired""#.into()),
            EndCause::RefreshFailed(_) => {
                Some(r#"SIP;cause=408;text="session refresh failed""#.into())
            }
            EndCause::InternalError => Some(r#"SIP;cause=500;text="SBC internal error""#.into()),
            _ => None,
        }
    }
}

/// The Q.850 cause towards Teams for a final status (§3.8: 486 is cause 17, NICC ND1017).
pub fn q850_for(status: u16) -> Option<(u16, &'static str)> {
    match status {
        486 => Some((17, "User busy")),
        404 | 484 => Some((1, "Unallocated number")),
        480 => Some((18, "No user responding")),
        603 => Some((21, "Call rejected")),
        408 | 503 | 504 => Some((41, "Temporary failure")),
        _ => None,
    }
}
