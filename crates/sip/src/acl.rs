//! Source allow-lists: which peer addresses a listener accepts (reference:
//! teams-direct-routing.md §1.4 for Microsoft's signalling ranges).

use std::net::IpAddr;
use std::str::FromStr;

/// An IPv4 or IPv6 prefix such as `52.112.0.0/14`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            // An IPv4 peer on a dual-stack socket shows up as ::ffff:a.b.c.d.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                self.prefix,
                32,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask(u128::from(net), u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn mask(net: u128, ip: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (net >> shift) == (ip >> shift)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or prefix like 52.112.0.0/14"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
            None => max,
        };
        // Host bits set (52.112.1.0/14) is almost always a typo; say so instead of guessing.
        if !host_bits_zero(network, prefix) {
            return Err(format!(
                "{s:?}: address has bits set beyond the /{prefix} prefix"
            ));
        }
        Ok(Cidr { network, prefix })
    }
}

fn host_bits_zero(ip: IpAddr, prefix: u8) -> bool {
    match ip {
        IpAddr::V4(a) => prefix >= 32 || u32::from(a) & (u32::MAX >> prefix) == 0,
        IpAddr::V6(a) => prefix >= 128 || u128::from(a) & (u128::MAX >> prefix) == 0,
    }
}

/// A listener's allow-list. Empty means nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<Cidr>);

impl AllowList {
    pub fn new(cidrs: Vec<Cidr>) -> Self {
        Self(cidrs)
    }

    pub fn any() -> Self {
        Self(vec![
            Cidr {
                network: IpAddr::from([0, 0, 0, 0]),
                prefix: 0,
            },
            Cidr {
                network: IpAddr::from([0u16; 8]),
                prefix: 0,
            },
        ])
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsoft_ranges_reference_1_4() {
        let list = AllowList::new(vec![
            "52.112.0.0/14".parse().unwrap(),
            "52.120.0.0/14".parse().unwrap(),
        ]);
        assert!(list.allows("52.114.75.24".parse().unwrap()));
        assert!(
            list.allows("52.123.1.1".parse().unwrap()),
            "52.122.0.0/15 is inside 52.120.0.0/14"
        );
        assert!(list.allows("::ffff:52.113.0.1".parse().unwrap()));
        assert!(!list.allows("52.116.0.1".parse().unwrap()));
        assert!(!list.allows("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn parsing_rules() {
        assert!(
            "10.0.0.1"
                .parse::<Cidr>()
                .unwrap()
                .contains("10.0.0.1".parse().unwrap())
        );
        assert!(
            "::/0"
                .parse::<Cidr>()
                .unwrap()
                .contains("2001:db8::1".parse().unwrap())
        );
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!(
            "10.0.1.0/16"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("bits set")
        );
        assert!("nonsense".parse::<Cidr>().is_err());
        assert!(AllowList::any().allows("127.0.0.1".parse().unwrap()));
        assert!(!AllowList::default().allows("127.0.0.1".parse().unwrap()));
    }
}
