//! The per-job secret and the HMAC proofs each side gives of knowing it, without sending it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{SECRET_ENV, SECRET_LEN};
use crate::error::RemoteError;

/// A per-job secret shared by the coordinator and its workers.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; SECRET_LEN]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A fresh random secret from the operating system.
    pub fn generate() -> Result<Self, RemoteError> {
        Ok(Self(random_bytes()?))
    }

    /// Parses the hex form kept in [`SECRET_ENV`].
    pub fn from_hex(s: &str) -> Result<Self, RemoteError> {
        let s = s.trim();
        let bad = || {
            RemoteError::Secret(format!(
                "{SECRET_ENV} must be {} hex digits",
                2 * SECRET_LEN
            ))
        };
        if s.len() != 2 * SECRET_LEN {
            return Err(bad());
        }
        let mut out = [0u8; SECRET_LEN];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        Ok(Self(out))
    }

    /// Reads the secret from [`SECRET_ENV`].
    pub fn from_env() -> Result<Self, RemoteError> {
        let v = std::env::var(SECRET_ENV)
            .map_err(|_| RemoteError::Secret(format!("{SECRET_ENV} is not set")))?;
        Self::from_hex(&v)
    }

    /// The hex form, for [`SECRET_ENV`].
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// HMAC-SHA256 of `role ‖ nonce_c ‖ nonce_w` under this secret.
    pub fn mac(&self, role: Role, nonce_c: &Nonce, nonce_w: &Nonce) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(role.tag());
        m.update(nonce_c);
        m.update(nonce_w);
        m.finalize().into_bytes().into()
    }

    /// Checks a MAC in constant time.
    pub fn verify(&self, role: Role, nonce_c: &Nonce, nonce_w: &Nonce, mac: &[u8; 32]) -> bool {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        m.update(role.tag());
        m.update(nonce_c);
        m.update(nonce_w);
        m.verify_slice(mac).is_ok()
    }
}

/// Which side a MAC speaks for (so one side's proof cannot be replayed as the other's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The worker's proof.
    Worker,
    /// The coordinator's proof.
    Coordinator,
}

impl Role {
    fn tag(self) -> &'static [u8] {
        match self {
            Role::Worker => b"shepseg worker",
            Role::Coordinator => b"shepseg coordinator",
        }
    }
}

/// A random challenge.
pub type Nonce = [u8; SECRET_LEN];

/// Random bytes from the operating system.
pub fn random_bytes() -> Result<[u8; SECRET_LEN], RemoteError> {
    let mut b = [0u8; SECRET_LEN];
    getrandom::fill(&mut b).map_err(|e| RemoteError::Secret(format!("no randomness: {e}")))?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_bind_secret_role_and_nonces() {
        let s = Secret::generate().unwrap();
        let other = Secret::generate().unwrap();
        let (a, b) = (random_bytes().unwrap(), random_bytes().unwrap());
        let mac = s.mac(Role::Worker, &a, &b);
        assert!(s.verify(Role::Worker, &a, &b, &mac));
        assert!(!other.verify(Role::Worker, &a, &b, &mac));
        assert!(!s.verify(Role::Coordinator, &a, &b, &mac));
        assert!(!s.verify(Role::Worker, &b, &a, &mac));
        assert_eq!(Secret::from_hex(&s.to_hex()).unwrap(), s);
        assert!(Secret::from_hex("zz").is_err());
    }
}
