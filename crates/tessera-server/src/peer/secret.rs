//! The cluster secret that internal requests must carry.

/// A shared secret, compared in constant time so that response timing does not leak it.
#[derive(Clone)]
pub struct ClusterSecret(String);

impl ClusterSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `offered` is the secret.
    pub fn matches(&self, offered: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        if offered.len() != expected.len() {
            return false;
        }
        let difference = offered
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        difference == 0
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_secret_matches() {
        let secret = ClusterSecret::new("s3cret");
        assert!(secret.matches(b"s3cret"));
        for wrong in [&b""[..], b"s3cre", b"s3cret!", b"S3cret"] {
            assert!(!secret.matches(wrong));
        }
        assert_eq!(format!("{secret:?}"), "ClusterSecret(<redacted>)");
    }
}
