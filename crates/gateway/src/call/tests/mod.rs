//! Whole calls through the sans-IO core with a virtual clock and scripted peers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod hold;
mod identity;
mod pbx_to_teams;
mod replaces;
mod session_timers;
mod teams_to_pbx;
mod transfer;
mod world;

use super::{shard_for_peer_call_id, shard_of_call_id};

#[test]
fn our_call_ids_name_their_shard_and_peer_ids_hash_to_one() {
    assert_eq!(shard_of_call_id(b"0123abcd-c3@teamsgw"), Some(3));
    assert_eq!(shard_of_call_id(b"0123abcd@teamsgw"), None);
    assert_eq!(shard_of_call_id(b"x-c1@example.com"), None);
    let s = shard_for_peer_call_id(b"a84b4c76e66710", 4);
    assert!(s < 4);
    assert_eq!(s, shard_for_peer_call_id(b"a84b4c76e66710", 4));
}
