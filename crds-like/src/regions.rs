//! Fly.io region codes, for the "unknown Fly region" warning on manifests.
//!
//! Fly's region list changes (regions open, and some have been retired), and the only
//! authoritative answer is Fly's own at the time of the deploy: `fly platform regions`, or the
//! Machines API `GET /v1/platform/regions`. So an unknown code is a **warning**, never an
//! error: a new region must not make a valid manifest set invalid, and Fly itself refuses a
//! region it does not have when a machine is created there.
//!
//! Sources for [`FLY_REGIONS`]: the table of <https://fly.io/docs/reference/regions/> as copied
//! by third-party clients (openstatus `packages/header-analysis/src/regions/fly.ts`, which
//! cites that page; the `fly-sdk` crate's `MachineRegions`), gathered in November 2026 from
//! stored copies, not from Fly live. A September 2026 listing (alchemy's `Region.ts`)
//! shows only 18 of these (ams arn bom cdg dfw ewr fra gru iad jnb lax lhr nrt ord sin sjc syd
//! yyz) and calls `bom` deprecated; the others may be retired or restricted. We keep the
//! longer list so that no code Fly ever documented is flagged as a typo.

/// Region codes Fly has listed publicly (see the module docs for the sources), sorted.
pub const FLY_REGIONS: &[&str] = &[
    "ams", // Amsterdam, Netherlands
    "arn", // Stockholm, Sweden
    "atl", // Atlanta, Georgia (US)
    "bog", // Bogotá, Colombia
    "bom", // Mumbai, India
    "bos", // Boston, Massachusetts (US)
    "cdg", // Paris, France
    "den", // Denver, Colorado (US)
    "dfw", // Dallas, Texas (US)
    "ewr", // Secaucus, NJ (US)
    "eze", // Ezeiza, Argentina
    "fra", // Frankfurt, Germany
    "gdl", // Guadalajara, Mexico
    "gig", // Rio de Janeiro, Brazil
    "gru", // São Paulo, Brazil
    "hkg", // Hong Kong
    "iad", // Ashburn, Virginia (US)
    "jnb", // Johannesburg, South Africa
    "lax", // Los Angeles, California (US)
    "lhr", // London, United Kingdom
    "mad", // Madrid, Spain
    "mia", // Miami, Florida (US)
    "nrt", // Tokyo, Japan
    "ord", // Chicago, Illinois (US)
    "otp", // Bucharest, Romania
    "phx", // Phoenix, Arizona (US)
    "qro", // Querétaro, Mexico
    "scl", // Santiago, Chile
    "sea", // Seattle, Washington (US)
    "sin", // Singapore
    "sjc", // San Jose, California (US)
    "syd", // Sydney, Australia
    "waw", // Warsaw, Poland
    "yul", // Montréal, Canada
    "yyz", // Toronto, Canada
];

/// Whether `code` is in [`FLY_REGIONS`]. `false` means "not known to this opsctl", not "Fly
/// will refuse it".
pub fn is_known_region(code: &str) -> bool {
    FLY_REGIONS.binary_search(&code).is_ok()
}

/// Known regions one typo away from `code`: one letter different, or two neighbouring letters
/// swapped (`aid` → `iad`). Wider than that, every three-letter code is "close" to some region.
pub fn near_regions(code: &str) -> Vec<&'static str> {
    let a = code.as_bytes();
    FLY_REGIONS
        .iter()
        .copied()
        .filter(|known| {
            let b = known.as_bytes();
            if a.len() != b.len() {
                return false;
            }
            let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
            match differ[..] {
                [_] => true,
                [i, j] => j == i + 1 && a[i] == b[j] && a[j] == b[i],
                _ => false,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_unique_three_lowercase_letters() {
        assert!(
            FLY_REGIONS.windows(2).all(|w| w[0] < w[1]),
            "sorted, unique"
        );
        assert!(
            FLY_REGIONS
                .iter()
                .all(|r| r.len() == 3 && r.bytes().all(|b| b.is_ascii_lowercase()))
        );
        assert!(is_known_region("iad") && is_known_region("yyz"));
        assert!(!is_known_region("xxx") && !is_known_region("IAD"));
    }

    #[test]
    fn near_regions_are_one_typo_away() {
        assert_eq!(near_regions("orx"), ["ord"]);
        assert_eq!(near_regions("aid"), ["iad"]);
        assert_eq!(near_regions("lhx"), ["lax", "lhr", "phx"]);
        assert!(near_regions("xxx").is_empty());
        assert!(near_regions("iadd").is_empty());
        assert_eq!(near_regions("sjx"), ["sjc"]);
    }
}
