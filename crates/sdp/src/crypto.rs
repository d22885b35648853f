//! SDES `a=crypto` attributes (RFC 4568 §9.1):
//! `a=crypto:<tag> <suite> inline:<base64 key||salt>[|<lifetime>][|<MKI>:<length>][;...] [params]`.
//! Keys are checked against the suite's key||salt length; a bad one names what is wrong.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};

/// Reads keys with or without `=` padding: rtpengine and others leave it off for the suites
/// whose key||salt is not a multiple of 3 bytes (AEAD_AES_256_GCM: 44). We write it.
const KEY_DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Clone, PartialEq, Eq)]
pub struct KeyParam {
    /// Master key followed by master salt, decoded.
    pub key_salt: Vec<u8>,
    /// As written: `2^31` or a decimal count.
    pub lifetime: Option<String>,
    /// (MKI value, MKI length in bytes).
    pub mki: Option<(u64, u8)>,
}

impl std::fmt::Debug for KeyParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyParam")
            .field("key_salt", &format_args!("<{} bytes>", self.key_salt.len()))
            .field("lifetime", &self.lifetime)
            .field("mki", &self.mki)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: String,
    pub keys: Vec<KeyParam>,
    pub session_params: Vec<String>,
}

/// key||salt bytes of the suites we know (RFC 4568 §6.2, RFC 6188).
fn key_salt_len(suite: &str) -> Option<usize> {
    Some(match suite {
        "AES_CM_128_HMAC_SHA1_80" | "AES_CM_128_HMAC_SHA1_32" | "F8_128_HMAC_SHA1_80" => 30,
        "AES_192_CM_HMAC_SHA1_80" | "AES_192_CM_HMAC_SHA1_32" => 38,
        "AES_256_CM_HMAC_SHA1_80" | "AES_256_CM_HMAC_SHA1_32" => 46,
        _ => return None,
    })
}

impl Crypto {
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut parts = value.split_whitespace();
        let tag = parts
            .next()
            .and_then(|t| t.parse::<u32>().ok())
            .filter(|&t| t <= 999_999_999)
            .ok_or("crypto tag must be a number of at most 9 digits")?;
        let suite = parts.next().ok_or("crypto line needs a suite")?.to_owned();
        let key_field = parts.next().ok_or("crypto line needs key parameters")?;
        let mut keys = Vec::new();
        for kp in key_field.split(';') {
            keys.push(parse_key_param(kp, &suite)?);
        }
        Ok(Self {
            tag,
            suite,
            keys,
            session_params: parts.map(Into::into).collect(),
        })
    }

    /// An attribute value with one inline key and the `2^31` lifetime Teams expects
    /// (reference: teams-direct-routing.md §4.1).
    pub fn inline(tag: u32, suite: &str, key_salt: &[u8]) -> Self {
        Self {
            tag,
            suite: suite.into(),
            keys: vec![KeyParam {
                key_salt: key_salt.to_vec(),
                lifetime: Some("2^31".into()),
                mki: None,
            }],
            session_params: Vec::new(),
        }
    }

    pub fn to_value(&self) -> String {
        let keys: Vec<String> = self
            .keys
            .iter()
            .map(|k| {
                let mut s = format!("inline:{}", STANDARD.encode(&k.key_salt));
                if let Some(l) = &k.lifetime {
                    s.push('|');
                    s.push_str(l);
                }
                if let Some((v, len)) = k.mki {
                    s.push_str(&format!("|{v}:{len}"));
                }
                s
            })
            .collect();
        let mut v = format!("{} {} {}", self.tag, self.suite, keys.join(";"));
        for p in &self.session_params {
            v.push(' ');
            v.push_str(p);
        }
        v
    }

    pub fn has_mki(&self) -> bool {
        self.keys.iter().any(|k| k.mki.is_some())
    }
}

fn parse_key_param(kp: &str, suite: &str) -> Result<KeyParam, String> {
    let inline = kp
        .strip_prefix("inline:")
        .ok_or("only inline: keys are supported")?;
    let mut fields = inline.split('|');
    let b64 = fields.next().unwrap_or_default();
    let key_salt = KEY_DECODER
        .decode(b64)
        .map_err(|e| format!("key is not valid base64 ({e})"))?;
    if let Some(expected) = key_salt_len(suite)
        && key_salt.len() != expected
    {
        return Err(format!(
            "key||salt is {} bytes, {suite} needs {expected}",
            key_salt.len()
        ));
    }
    let mut lifetime = None;
    let mut mki = None;
    for f in fields {
        if let Some((v, len)) = f.split_once(':') {
            let value = v
                .parse::<u64>()
                .map_err(|_| format!("bad MKI value {v:?}"))?;
            let length = len
                .parse::<u8>()
                .ok()
                .filter(|l| (1..=128).contains(l))
                .ok_or_else(|| format!("bad MKI length {len:?}"))?;
            mki = Some((value, length));
        } else if f.starts_with("2^") || f.chars().all(|c| c.is_ascii_digit()) {
            lifetime = Some(f.to_owned());
        } else {
            return Err(format!("unexpected key parameter {f:?}"));
        }
    }
    Ok(KeyParam {
        key_salt,
        lifetime,
        mki,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teams_crypto_lines_reference_4_1() {
        let c = Crypto::parse(
            "2 AES_CM_128_HMAC_SHA1_80 inline:fBc61ikv1kMy0sF85DblNqTzVAbFa7hJQ9GKb6Yj|2^31|1:1",
        )
        .unwrap();
        assert_eq!((c.tag, c.suite.as_str()), (2, "AES_CM_128_HMAC_SHA1_80"));
        assert_eq!(c.keys[0].key_salt.len(), 30);
        assert_eq!(c.keys[0].lifetime.as_deref(), Some("2^31"));
        assert_eq!(c.keys[0].mki, Some((1, 1)));
        let c = Crypto::parse(
            "3 AES_CM_128_HMAC_SHA1_80 inline:O1qT9tWbs/NwJVwhfrgF5tCrbNOxnVDqkIqTx4rz|2^31",
        )
        .unwrap();
        assert!(!c.has_mki());
        assert_eq!(
            Crypto::parse(&c.to_value()).unwrap(),
            c,
            "writes back what it read"
        );
    }

    #[test]
    fn keys_without_base64_padding_are_read_rfc4568_9_2() {
        // As rtpengine offers AEAD_AES_256_GCM: 44 bytes in 59 characters, no `=`.
        let c = Crypto::parse(
            "1 AEAD_AES_256_GCM inline:f2Jmmbg4UQs+5vIx9vmDPL/YSBDkahE8pcYpJwwykVqmvy6dEkan7tCXPC4",
        )
        .unwrap();
        assert_eq!(c.keys[0].key_salt.len(), 44);
        assert!(c.to_value().contains("PC4="), "written padded");
    }

    #[test]
    fn bad_keys_are_rejected_rfc4568_6_1() {
        let e = Crypto::parse("1 AES_CM_128_HMAC_SHA1_80 inline:!!!notbase64!!!").unwrap_err();
        assert!(e.contains("base64"), "{e}");
        let e = Crypto::parse("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA").unwrap_err();
        assert!(e.contains("3 bytes") && e.contains("needs 30"), "{e}");
        assert!(Crypto::parse("x AES_CM_128_HMAC_SHA1_80 inline:AAAA").is_err());
        assert!(Crypto::parse("1 AES_CM_128_HMAC_SHA1_80").is_err());
        assert!(
            Crypto::parse(
                "1 AES_CM_128_HMAC_SHA1_80 inline:O1qT9tWbs/NwJVwhfrgF5tCrbNOxnVDqkIqTx4rz|1:0"
            )
            .is_err()
        );
    }
}
