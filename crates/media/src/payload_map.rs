//! RTP payload type numbers between the legs. Each side sends with the numbers its peer's SDP
//! declared (RFC 3264 §6.1, RFC 3551 §3), and the two legs often declared different dynamic
//! numbers for the same codec or for telephone-event (Teams' offer against a PBX's answer):
//! the relay then rewrites the payload type in place, keeping the marker bit, with no
//! allocation and no copy. The SRTP tag towards Teams is computed after the rewrite.

/// Payload type numbers from one leg's numbering to the other's; unlisted numbers pass as
/// they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadMap {
    to_pbx: [u8; 128],
    to_teams: [u8; 128],
    identity: bool,
}

impl Default for PayloadMap {
    fn default() -> Self {
        Self::identity()
    }
}

fn identity_table() -> [u8; 128] {
    std::array::from_fn(|i| i as u8)
}

impl PayloadMap {
    pub fn identity() -> Self {
        Self {
            to_pbx: identity_table(),
            to_teams: identity_table(),
            identity: true,
        }
    }

    /// `(teams, pbx)` pairs: the same codec numbered `teams` on the Teams leg and `pbx` on the
    /// PBX leg. Numbers above 127 are not payload types and are ignored.
    pub fn new(pairs: &[(u8, u8)]) -> Self {
        let mut map = Self::identity();
        for &(teams, pbx) in pairs.iter().filter(|(t, p)| *t < 128 && *p < 128) {
            map.to_pbx[usize::from(teams)] = pbx;
            map.to_teams[usize::from(pbx)] = teams;
        }
        map.identity = map.to_pbx == identity_table() && map.to_teams == identity_table();
        map
    }

    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// An RTP packet from Teams, renumbered for the PBX.
    #[inline]
    pub fn to_pbx(&self, rtp: &mut [u8]) {
        if !self.identity {
            rewrite(&self.to_pbx, rtp);
        }
    }

    /// An RTP packet from the PBX, renumbered for Teams (before it is protected).
    #[inline]
    pub fn to_teams(&self, rtp: &mut [u8]) {
        if !self.identity {
            rewrite(&self.to_teams, rtp);
        }
    }
}

#[inline]
fn rewrite(table: &[u8; 128], rtp: &mut [u8]) {
    if let Some(b) = rtp.get_mut(1) {
        *b = (*b & 0x80) | table[usize::from(*b & 0x7f)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renumbers_both_ways_and_keeps_the_marker_bit_rfc3550_5_1() {
        let map = PayloadMap::new(&[(101, 96), (0, 0)]);
        assert!(!map.is_identity());
        let mut pkt = [0x80, 0x80 | 101, 0, 1];
        map.to_pbx(&mut pkt);
        assert_eq!(pkt[1], 0x80 | 96, "marker kept, 101 -> 96");
        map.to_teams(&mut pkt);
        assert_eq!(pkt[1], 0x80 | 101);
        let mut pcmu = [0x80, 0, 0, 1];
        map.to_pbx(&mut pcmu);
        assert_eq!(pcmu[1], 0, "unmapped numbers pass");
        assert!(PayloadMap::new(&[(8, 8), (101, 101)]).is_identity());
        let mut short = [0x80];
        map.to_pbx(&mut short);
    }
}
