//! The SIP layer's Prometheus metrics. Registered once in the daemon's registry; cloning shares
//! the same counters.

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct SipMetrics {
    pub received: IntCounterVec,
    pub sent: IntCounterVec,
    pub dropped: IntCounterVec,
    pub rejected: IntCounterVec,
    /// Refused for who sent them (`teamsgw_sip_rejected_total{reason}`).
    pub refused_source: IntCounterVec,
    pub connections: IntGaugeVec,
    pub refused: IntCounterVec,
    pub handshake_failures: IntCounterVec,
}

impl SipMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        Ok(Self {
            received: counter(
                "teamsgw_sip_messages_received_total",
                "SIP messages received, by transport and method or status class.",
                &["transport", "kind"],
            )?,
            sent: counter(
                "teamsgw_sip_messages_sent_total",
                "SIP messages sent, by transport and method or status class.",
                &["transport", "kind"],
            )?,
            dropped: counter(
                "teamsgw_sip_messages_dropped_total",
                "Messages dropped unanswered (unreadable, not allowed, overload), by reason.",
                &["transport", "reason"],
            )?,
            rejected: counter(
                "teamsgw_sip_requests_rejected_total",
                "Malformed requests answered with 400/505, by defect.",
                &["transport", "reason"],
            )?,
            refused_source: counter(
                "teamsgw_sip_rejected_total",
                "Messages refused for who sent them: requests answered 403 and responses, CANCELs \
                 and ACKs dropped, by reason (dialog_source: a dialog's or transaction's ids from \
                 outside its peer).",
                &["reason"],
            )?,
            connections: IntGaugeVec::new(
                Opts::new("teamsgw_sip_connections_open", "Open TCP/TLS connections."),
                &["transport"],
            )?,
            refused: counter(
                "teamsgw_sip_connections_refused_total",
                "Connections closed before use, by listener and reason.",
                &["listener", "reason"],
            )?,
            handshake_failures: counter(
                "teamsgw_sip_tls_handshake_failures_total",
                "Failed TLS handshakes, by listener and reason.",
                &["listener", "reason"],
            )?,
        })
    }

    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        registry.register(Box::new(self.received.clone()))?;
        registry.register(Box::new(self.sent.clone()))?;
        registry.register(Box::new(self.dropped.clone()))?;
        registry.register(Box::new(self.rejected.clone()))?;
        registry.register(Box::new(self.refused_source.clone()))?;
        self.refused_source.with_label_values(&["dialog_source"]);
        registry.register(Box::new(self.connections.clone()))?;
        registry.register(Box::new(self.refused.clone()))?;
        registry.register(Box::new(self.handshake_failures.clone()))?;
        Ok(())
    }
}

/// `INVITE`, `OPTIONS` ... for requests (unknown methods as `other`, to bound label values),
/// `2xx` ... for responses; read from the first line of an encoded message.
pub fn kind_of(data: &[u8]) -> &'static str {
    if let Some(rest) = data.strip_prefix(b"SIP/2.0 ") {
        return match rest.first() {
            Some(b'1') => "1xx",
            Some(b'2') => "2xx",
            Some(b'3') => "3xx",
            Some(b'4') => "4xx",
            Some(b'5') => "5xx",
            Some(b'6') => "6xx",
            _ => "other",
        };
    }
    let method = data.split(|&b| b == b' ').next().unwrap_or_default();
    const KNOWN: [&str; 14] = [
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "UPDATE",
        "INFO",
        "REFER",
        "NOTIFY",
        "SUBSCRIBE",
        "MESSAGE",
        "PUBLISH",
    ];
    KNOWN
        .iter()
        .find(|m| m.as_bytes() == method)
        .copied()
        .unwrap_or("other")
}
