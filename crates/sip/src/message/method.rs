//! SIP methods. Methods are case-sensitive tokens (RFC 3261 §7.1): `invite` is an unknown
//! extension method, not INVITE.

use super::scan::{ascii, is_token_str};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Prack,
    Update,
    Info,
    Refer,
    Notify,
    Subscribe,
    Message,
    Publish,
    /// Any other token.
    Extension(&'a str),
}

impl<'a> Method<'a> {
    /// `None` unless `s` is a token.
    pub fn parse(s: &'a [u8]) -> Option<Self> {
        if !is_token_str(s) {
            return None;
        }
        Some(match s {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"OPTIONS" => Method::Options,
            b"REGISTER" => Method::Register,
            b"PRACK" => Method::Prack,
            b"UPDATE" => Method::Update,
            b"INFO" => Method::Info,
            b"REFER" => Method::Refer,
            b"NOTIFY" => Method::Notify,
            b"SUBSCRIBE" => Method::Subscribe,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            other => Method::Extension(ascii(other)?),
        })
    }

    pub fn as_str(&self) -> &'a str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(s) => s,
        }
    }
}

impl std::fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive_tokens_rfc3261_7_1() {
        assert_eq!(Method::parse(b"INVITE"), Some(Method::Invite));
        assert_eq!(Method::parse(b"invite"), Some(Method::Extension("invite")));
        // RFC 4475 §3.1.1.2: every token character is legal in a method; % is not an escape.
        let m = Method::parse(b"!interesting-Method0123456789_*+`.%indeed'~").unwrap();
        assert_eq!(m.as_str(), "!interesting-Method0123456789_*+`.%indeed'~");
        assert_eq!(Method::parse(b"IN VITE"), None);
        assert_eq!(Method::parse(b""), None);
    }
}
