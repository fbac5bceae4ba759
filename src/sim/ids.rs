//! Identifiers and references the simulator makes up: machine names, release ids, lease
//! nonces, instance ULIDs, 6PN addresses and image digests.
//!
//! Where a value only has to look like Fly's, it is derived from a stable hash (FNV-1a, not
//! security-relevant) so tests and demos see the same value on every run; nonces and fresh
//! machine ids are random.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ulid::Ulid;

use crate::fly::wire::ImageRef;

/// FNV-1a, 64 bit.
pub fn fnv64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A ULID (26 characters) stamped with virtual time `at`, like Fly's `instance_id`.
pub fn new_ulid(at: DateTime<Utc>) -> String {
    Ulid::from_datetime(at.into()).to_string()
}

/// A fresh `fly-request-id` for one response: a real-time ULID (Fly's ids are opaque; fly-go
/// only copies them into errors).
pub fn new_request_id() -> String {
    Ulid::new().to_string()
}

/// A random 14-character lowercase hex machine id.
pub fn random_machine_id() -> String {
    format!("{:014x}", Ulid::new().random() & 0x00ff_ffff_ffff_ffff)
}

/// A random 12-hex-character lease nonce (Fly's look like `5c35f65c9f95`).
pub fn new_nonce() -> String {
    format!("{:012x}", Ulid::new().random() & 0xffff_ffff_ffff)
}

const ADJECTIVES: [&str; 8] = [
    "aged", "bold", "calm", "dry", "late", "proud", "quiet", "young",
];
const NOUNS: [&str; 8] = [
    "wind", "sea", "frost", "leaf", "moon", "river", "snow", "sun",
];

/// A Fly-like generated name (`aged-wind-2649`), stable for an id.
pub fn machine_name(id: &str) -> String {
    let h = fnv64(id.as_bytes());
    format!(
        "{}-{}-{}",
        ADJECTIVES[(h % 8) as usize],
        NOUNS[((h >> 8) % 8) as usize],
        1000 + (h >> 16) % 9000
    )
}

/// A stable 25-character alphanumeric release id for (app, version).
pub fn release_id(app: &str, version: i64) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(30);
    for round in 0u8..3 {
        let mut h = fnv64(format!("{app}/{version}/{round}").as_bytes());
        for _ in 0..10 {
            out.push(char::from(ALPHABET[(h % 62) as usize]));
            h /= 62;
        }
    }
    out.truncate(25);
    out
}

/// A stable fake 6PN address for a machine id.
pub fn private_ip(id: &str) -> String {
    let h = fnv64(id.as_bytes());
    format!(
        "fdaa:0:1:a7b:{:x}:{:x}:{:x}:2",
        (h >> 48) & 0xffff,
        (h >> 32) & 0xffff,
        h & 0xffff
    )
}

/// Splits `registry/repository:tag[@digest]` into Fly's `image_ref`; an image without a
/// registry host is on `docker-hub-mirror.fly.io`, without a tag `latest`, and without a
/// digest gets a stable fake `sha256:…`.
pub fn image_ref(image: &str) -> ImageRef {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, d.to_string()),
        None => (image, fake_digest(image)),
    };
    let (registry, rest) = match name.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') => {
            (first.to_string(), rest)
        }
        _ => ("docker-hub-mirror.fly.io".to_string(), name),
    };
    let (repository, tag) = match rest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (rest.to_string(), "latest".to_string()),
    };
    ImageRef {
        registry,
        repository,
        tag,
        digest,
        labels: BTreeMap::new(),
    }
}

fn fake_digest(image: &str) -> String {
    let parts: Vec<String> = (0u8..4)
        .map(|i| {
            let mut bytes = image.as_bytes().to_vec();
            bytes.push(i);
            format!("{:016x}", fnv64(&bytes))
        })
        .collect();
    format!("sha256:{}", parts.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_refs_split() {
        let r = image_ref("registry.fly.io/lowendinsight:deployment-OLD");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("registry.fly.io", "lowendinsight", "deployment-OLD")
        );
        assert!(r.digest.starts_with("sha256:") && r.digest.len() == 71);
        assert_eq!(
            r.digest,
            image_ref("registry.fly.io/lowendinsight:deployment-OLD").digest
        );
        let r = image_ref("nginx");
        assert_eq!((r.repository.as_str(), r.tag.as_str()), ("nginx", "latest"));
        let r = image_ref("localhost:5000/app:v1@sha256:abc");
        assert_eq!(
            (r.registry.as_str(), r.tag.as_str(), r.digest.as_str()),
            ("localhost:5000", "v1", "sha256:abc")
        );
    }

    #[test]
    fn ids_and_names_are_well_formed() {
        let id = release_id("lowendinsight", 109);
        assert_eq!(id.len(), 25);
        assert_eq!(id, release_id("lowendinsight", 109));
        assert_ne!(id, release_id("lowendinsight", 110));
        let mid = random_machine_id();
        assert_eq!(mid.len(), 14);
        assert!(
            mid.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(new_nonce().len(), 12);
        assert_eq!(machine_name("abc").split('-').count(), 3);
        assert_eq!(new_ulid(Utc::now()).len(), 26);
    }
}
