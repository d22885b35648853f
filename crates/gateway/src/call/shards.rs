//! Which shard owns a message, without a shared table (DESIGN.md "Owners by Call-ID"). Call-IDs
//! we create carry their shard (`<token>-c<shard>@teamsgw`); a peer's Call-ID hashes to one.
//! Two kinds of message defeat both, and carry the shard elsewhere:
//! - a dialog Teams opens with Replaces has Teams' Call-ID but belongs to the call it
//!   replaces into: its initial INVITE goes where the Replaces' Call-ID goes, and our tag
//!   in it (`<token>-s<shard>`) takes its later requests there;
//! - a response to our request on such a dialog: our Via branch names the shard
//!   (`z9hG4bK-call-<shard>-<token>`).

use teamsgw_sip::Message;
use teamsgw_sip::message::Method;

use super::CALL_BRANCH_PREFIX;

pub fn shard_of_call_id(call_id: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(call_id).ok()?;
    let local = text.strip_suffix("@teamsgw")?;
    let (_, shard) = local.rsplit_once("-c")?;
    shard.parse().ok()
}

/// The shard of a peer-chosen Call-ID: SipHash with a key drawn once per process, so a peer
/// cannot choose Call-IDs that all land on one shard (an unkeyed hash lets it).
pub fn shard_for_peer_call_id(call_id: &[u8], shards: u16) -> u16 {
    static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    keyed_shard(
        KEY.get_or_init(std::hash::RandomState::new),
        call_id,
        shards,
    )
}

fn keyed_shard(key: &std::hash::RandomState, call_id: &[u8], shards: u16) -> u16 {
    use std::hash::BuildHasher;
    (key.hash_one(call_id) % u64::from(shards.max(1))) as u16
}

/// Our tag in a dialog whose Call-ID is the peer's yet must reach shard `shard`.
pub fn tag_for_shard(token: &str, shard: u16) -> String {
    format!("{token}-s{shard}")
}

/// A Via branch of the call layer on shard `shard`.
pub fn branch_for_shard(token: &str, shard: u16) -> String {
    format!("{CALL_BRANCH_PREFIX}{shard}-{token}")
}

fn shard_of_tag(tag: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(tag).ok()?;
    text.rsplit_once("-s")?.1.parse().ok()
}

fn shard_of_branch(branch: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(branch).ok()?;
    let rest = text.strip_prefix(CALL_BRANCH_PREFIX)?;
    rest.split_once('-')?.0.parse().ok()
}

/// The shard of `shards` that owns `message`.
pub fn shard_of_message(message: &Message, shards: u16) -> u16 {
    let mut call_id = message.call_id().unwrap_or_default();
    let marked = if message.method().is_none() {
        message
            .top_via()
            .and_then(Result::ok)
            .and_then(|v| v.branch())
            .and_then(shard_of_branch)
    } else {
        message.to_tag().and_then(shard_of_tag)
    };
    if message.method() == Some(Method::Invite)
        && message.to_tag().is_none()
        && let Some(Ok(r)) = message.replaces()
    {
        call_id = r.call_id;
    }
    marked
        .or_else(|| shard_of_call_id(call_id))
        .filter(|s| *s < shards)
        .unwrap_or_else(|| shard_for_peer_call_id(call_id, shards))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn msg(text: &str) -> Message {
        Message::parse(Bytes::from(text.replace('\n', "\r\n") + "\r\n")).unwrap()
    }

    #[test]
    fn our_call_ids_name_their_shard_and_peer_ids_hash_to_one() {
        assert_eq!(shard_of_call_id(b"0123abcd-c3@teamsgw"), Some(3));
        assert_eq!(shard_of_call_id(b"0123abcd@teamsgw"), None);
        assert_eq!(shard_of_call_id(b"x-c1@example.com"), None);
        let s = shard_for_peer_call_id(b"a84b4c76e66710", 4);
        assert!(s < 4);
        assert_eq!(s, shard_for_peer_call_id(b"a84b4c76e66710", 4));
    }

    /// Issue 31 §1: another key, another spread, so Call-IDs chosen against one process's
    /// shards are no better than random against the next.
    #[test]
    fn peer_call_ids_spread_by_a_secret_key() {
        let (a, b) = (std::hash::RandomState::new(), std::hash::RandomState::new());
        let ids: Vec<String> = (0..64).map(|i| format!("id-{i}@peer")).collect();
        let spread = |k: &std::hash::RandomState| -> Vec<u16> {
            ids.iter()
                .map(|id| keyed_shard(k, id.as_bytes(), 16))
                .collect()
        };
        assert_ne!(spread(&a), spread(&b), "1 in 16^64 by chance");
        assert_eq!(spread(&a), spread(&a), "one key, one spread");
    }

    /// A replacing dialog (RFC 3891) reaches the shard of the call it names, and so do its
    /// later requests (our tag) and the responses to ours (our branch), whatever its Call-ID.
    #[test]
    fn a_replacing_dialog_follows_the_call_it_replaced_into() {
        let shards = 16;
        let named = shard_for_peer_call_id(b"park-1", shards);
        let other = (0..1000)
            .map(|i| format!("pick-{i}"))
            .find(|id| shard_for_peer_call_id(id.as_bytes(), shards) != named)
            .unwrap();
        let invite = msg(&format!(
            "INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/TLS h;branch=z9hG4bK-1\nFrom: <sip:a@b>;tag=t\n\
             To: <sip:c@d>\nCall-ID: {other}\nCSeq: 1 INVITE\nReplaces: park-1;to-tag=x;from-tag=t\n\
             Content-Length: 0\n"
        ));
        assert_eq!(shard_of_message(&invite, shards), named);
        let tag = tag_for_shard("abc", 5);
        let bye = msg(&format!(
            "BYE sip:a@b SIP/2.0\nVia: SIP/2.0/TLS h;branch=z9hG4bK-2\nFrom: <sip:a@b>;tag=t\n\
             To: <sip:c@d>;tag={tag}\nCall-ID: {other}\nCSeq: 2 BYE\nContent-Length: 0\n"
        ));
        assert_eq!(shard_of_message(&bye, shards), 5);
        let branch = branch_for_shard("tok", 7);
        let ok = msg(&format!(
            "SIP/2.0 200 OK\nVia: SIP/2.0/TLS h;branch={branch}\nFrom: <sip:c@d>;tag={tag}\n\
             To: <sip:a@b>;tag=t\nCall-ID: {other}\nCSeq: 1 BYE\nContent-Length: 0\n"
        ));
        assert_eq!(shard_of_message(&ok, shards), 7);
        // A marker beyond the shard count falls back to the Call-ID's hash.
        let stray = bye.as_bytes().to_vec();
        let stray = String::from_utf8(stray).unwrap().replace(&tag, "abc-s99");
        let stray = Message::parse(Bytes::from(stray)).unwrap();
        assert_eq!(
            shard_of_message(&stray, shards),
            shard_for_peer_call_id(other.as_bytes(), shards)
        );
    }
}
