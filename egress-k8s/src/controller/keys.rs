//! WireGuard key pairs of gateways. The private key exists as bytes here and
//! in the Secret only: [`KeyPair`]'s `Debug` hides it, and nothing else in
//! the controller holds it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use x25519_dalek::{PublicKey, StaticSecret};

/// A gateway's key pair as the Secret stores it: base64 text of each key.
pub(crate) struct KeyPair {
    /// Base64 of the private key. Never logged.
    pub private: String,
    /// Base64 of the public key.
    pub public: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A new key pair from the operating system's random source, clamped as
    /// WireGuard's tools clamp it.
    pub(crate) fn generate() -> Self {
        let mut bytes = StaticSecret::random().to_bytes();
        bytes[0] &= 0b1111_1000;
        bytes[31] = (bytes[31] & 0b0111_1111) | 0b0100_0000;
        Self::from_private_bytes(bytes)
    }

    fn from_private_bytes(bytes: [u8; 32]) -> Self {
        let secret = StaticSecret::from(bytes);
        let public = PublicKey::from(&secret);
        Self {
            private: STANDARD.encode(secret.to_bytes()),
            public: STANDARD.encode(public.as_bytes()),
        }
    }

    /// The public key of a stored private key; `None` when it is not a
    /// base64 WireGuard key.
    pub(crate) fn public_of(private_b64: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(private_b64).ok()?;
        let bytes: [u8; 32] = STANDARD.decode(text.trim()).ok()?.try_into().ok()?;
        Some(Self::from_private_bytes(bytes).public)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn keys_are_wireguard_keys_and_debug_hides_the_private_one() {
        let k = KeyPair::generate();
        assert_eq!(k.private.len(), 44);
        assert_eq!(KeyPair::public_of(k.private.as_bytes()).unwrap(), k.public);
        assert!(!format!("{k:?}").contains(&k.private));
        assert_ne!(KeyPair::generate().private, k.private);
        assert_eq!(KeyPair::public_of(b"not a key"), None);
    }
}
