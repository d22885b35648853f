//! SIP passwords at rest: AES-256-GCM with a key that lives outside the database.
//!
//! The gateway must replay the PBX password in digest authentication, so it has to be
//! recoverable (a hash will not do); encrypting it means a copied database file or a SQL dump
//! alone does not leak every PBX credential. Each sealed value is bound to the row it belongs
//! to (the associated data is the caller's context, e.g. `enterprise/upn`), so a ciphertext
//! copied onto another user's row does not open.
//!
//! Sealed format: `v1.` + hex(nonce[12] ‖ ciphertext ‖ tag[16]). The version prefix leaves room
//! for key rotation without guessing.

use std::path::Path;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

const PREFIX: &str = "v1.";
const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordKeyError {
    #[error(
        "database.password_key: {0:?} is neither file:PATH nor env:NAME (the key is 64 hex characters)"
    )]
    BadSource(String),
    #[error("database.password_key: cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("database.password_key: environment variable {0} is not set")]
    MissingEnv(String),
    #[error("database.password_key: {origin} must hold exactly 64 hex characters (a 256-bit key)")]
    BadKey { origin: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("sealed password is not in the v1 format")]
    Format,
    /// Wrong key, tampered value, or a value copied from another row.
    #[error("sealed password does not open with this key for this row")]
    Open,
    #[error("the system random generator failed")]
    Random,
}

/// The key that seals and opens SIP passwords.
pub struct PasswordKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for PasswordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordKey(..)")
    }
}

impl PasswordKey {
    /// Loads the key from `file:PATH` or `env:NAME` (the `database.password_key` syntax).
    pub fn load(source: &str) -> Result<Self, PasswordKeyError> {
        if let Some(path) = source.strip_prefix("file:") {
            let text = std::fs::read_to_string(path).map_err(|e| PasswordKeyError::Unreadable {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            Self::from_hex(&text, &format!("file {path}"))
        } else if let Some(name) = source.strip_prefix("env:") {
            let text =
                std::env::var(name).map_err(|_| PasswordKeyError::MissingEnv(name.to_owned()))?;
            Self::from_hex(&text, &format!("environment variable {name}"))
        } else {
            Err(PasswordKeyError::BadSource(source.to_owned()))
        }
    }

    /// Writes a fresh random key to `path` (mode 0600), refusing to overwrite an existing one:
    /// losing the key makes every stored password unrecoverable.
    pub fn generate_file(path: &Path) -> Result<(), PasswordKeyError> {
        let unreadable = |e: std::io::Error| PasswordKeyError::Unreadable {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut key = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut key)
            .map_err(|_| PasswordKeyError::Unreadable {
                path: path.display().to_string(),
                reason: "the system random generator failed".to_owned(),
            })?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(unreadable)?;
        std::io::Write::write_all(&mut file, format!("{}\n", to_hex(&key)).as_bytes())
            .map_err(unreadable)
    }

    fn from_hex(text: &str, origin: &str) -> Result<Self, PasswordKeyError> {
        let bad = || PasswordKeyError::BadKey {
            origin: origin.to_owned(),
        };
        let bytes = from_hex(text.trim()).ok_or_else(bad)?;
        if bytes.len() != KEY_LEN {
            return Err(bad());
        }
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| bad())?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }

    /// Encrypts `password` for the row named by `context`.
    pub fn seal(&self, password: &str, context: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut buf = password.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SealError::Open)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(format!("{PREFIX}{}", to_hex(&out)))
    }

    /// Decrypts a value [`seal`](Self::seal) produced for the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, SealError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .and_then(from_hex)
            .ok_or(SealError::Format)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Format);
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Format)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut body)
            .map_err(|_| SealError::Open)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::Open)
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn key() -> PasswordKey {
        PasswordKey::from_hex(KEY, "test").unwrap()
    }

    #[test]
    fn sealed_password_opens_for_its_row_only() {
        let k = key();
        let sealed = k.seal("s3cret-pbx", "acme/alice@acme.example").unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("s3cret"));
        assert_eq!(
            k.open(&sealed, "acme/alice@acme.example").unwrap(),
            "s3cret-pbx"
        );
        // Copied onto another row: refused.
        assert_eq!(
            k.open(&sealed, "acme/bob@acme.example"),
            Err(SealError::Open)
        );
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let k = key();
        assert_ne!(k.seal("pw", "c").unwrap(), k.seal("pw", "c").unwrap());
    }

    #[test]
    fn tampering_and_wrong_key_are_detected() {
        let k = key();
        let sealed = k.seal("pw", "c").unwrap();
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 1;
        bytes[last] = if bytes[last] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(k.open(&tampered, "c"), Err(SealError::Open));

        let other = PasswordKey::from_hex(&KEY.replace("00", "ff"), "test").unwrap();
        let sealed = k.seal("pw", "c").unwrap();
        assert_eq!(other.open(&sealed, "c"), Err(SealError::Open));
    }

    #[test]
    fn malformed_sealed_values_are_format_errors() {
        let k = key();
        for bad in ["", "pw", "v1.", "v1.zz", "v1.00", "v2.00112233"] {
            assert_eq!(k.open(bad, "c"), Err(SealError::Format), "{bad:?}");
        }
    }

    #[test]
    fn key_sources_and_their_errors_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password.key");
        PasswordKey::generate_file(&path).unwrap();
        let source = format!("file:{}", path.display());
        let k = PasswordKey::load(&source).unwrap();
        let sealed = k.seal("pw", "c").unwrap();
        assert_eq!(
            PasswordKey::load(&source)
                .unwrap()
                .open(&sealed, "c")
                .unwrap(),
            "pw"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key file must not be group/world readable");
        }
        // Never overwrite an existing key.
        assert!(PasswordKey::generate_file(&path).is_err());

        let err = PasswordKey::load("plain-text").unwrap_err();
        assert!(
            err.to_string().starts_with("database.password_key:"),
            "{err}"
        );
        assert!(matches!(
            PasswordKey::load("env:TEAMSGW_TEST_SURELY_UNSET_KEY"),
            Err(PasswordKeyError::MissingEnv(_))
        ));
        let short = dir.path().join("short.key");
        std::fs::write(&short, "abcd").unwrap();
        let err = PasswordKey::load(&format!("file:{}", short.display())).unwrap_err();
        assert!(matches!(err, PasswordKeyError::BadKey { .. }), "{err}");
        assert!(err.to_string().contains("64 hex characters"));
    }
}
