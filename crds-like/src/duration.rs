//! Durations written with units (`90s`, `5m`, `1h`, `1h30m`, `500ms`), as DESIGN.md §3 asks.
//! A bare number is an error: fly.toml's own docs and fly-go disagree on its unit
//! (`../shared/fly-api/NOTES.md` §7.1), so we never guess.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A [`Duration`] read from and written as a string with units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DurationStr(pub Duration);

impl DurationStr {
    /// `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not a duration: write a number with a unit, like `90s`, `5m`, `1h` or `1h30m`"
)]
pub struct DurationError {
    /// What was written.
    pub input: String,
}

impl FromStr for DurationStr {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DurationError {
            input: s.to_owned(),
        };
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(err());
        }
        let mut total = Duration::ZERO;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
            if digits == 0 {
                return Err(err());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| err())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let part = match unit {
                "ms" => Duration::from_millis(n),
                "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(err)?),
                "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(err)?),
                "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(err)?),
                _ => return Err(err()),
            };
            total = total.checked_add(part).ok_or_else(err)?;
        }
        Ok(Self(total))
    }
}

impl fmt::Display for DurationStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_millis() != 0 || d.as_secs() == 0 {
            return write!(f, "{}ms", d.as_millis());
        }
        let secs = d.as_secs();
        match secs {
            s if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            s if s % 60 == 0 => write!(f, "{}m", s / 60),
            s => write!(f, "{s}s"),
        }
    }
}

impl Serialize for DurationStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl schemars::JsonSchema for DurationStr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    /// A string of `<digits><unit>` parts, units `ms`, `s`, `m`, `h`, `d` (`90s`, `1h30m`); a
    /// bare number is refused, as by [`DurationStr::from_str`](std::str::FromStr).
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^\\s*([0-9]+(ms|s|m|h|d))+\\s*$",
            "description": "A duration with units: `90s`, `5m`, `1h`, `1h30m`, `500ms`, `2d`. A bare number is refused.",
            "examples": ["90s", "5m", "1h30m"]
        })
    }
}

impl<'de> Deserialize<'de> for DurationStr {
    /// Reads a string with units. A bare number (`interval: 15`) is refused with a message
    /// that suggests the unit, rather than the generic "expected a string".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = DurationStr;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with a unit, like `90s`, `5m` or `1h`")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationStr, E> {
                v.parse().map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationStr, E> {
                Err(bare_number(v))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationStr, E> {
                Err(bare_number(v))
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DurationStr, E> {
                Err(bare_number(v))
            }
        }

        fn bare_number<E: serde::de::Error>(v: impl fmt::Display) -> E {
            E::custom(format_args!(
                "`{v}` is a bare number, and durations need a unit: write `{v}s` for seconds, \
                 or `{v}ms`, `{v}m`, `{v}h`"
            ))
        }

        d.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        let cases = [
            ("90s", 90_000),
            ("5m", 300_000),
            ("1h", 3_600_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("2d", 172_800_000),
        ];
        for (input, ms) in cases {
            let d: DurationStr = input.parse().unwrap();
            assert_eq!(d.0.as_millis(), ms, "{input}");
        }
    }

    #[test]
    fn refuses_bare_numbers_and_unknown_units() {
        for bad in ["", "5", "5x", "m5", "1.5s", "-1s"] {
            assert!(
                bad.parse::<DurationStr>().is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["90s", "5m", "1h", "500ms"] {
            assert_eq!(s.parse::<DurationStr>().unwrap().to_string(), s);
        }
    }
}
