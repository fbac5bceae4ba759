//! How YAML tools read an unquoted (plain) scalar, so that the loader can refuse the ones a
//! person most likely did not mean (DESIGN.md §3, "no implicit typing surprises").
//!
//! Two questions are answered here, both pure functions of the scalar's text:
//! - [`string_hazard`]: would some YAML tool read this plain scalar as something other than a
//!   string? Used for string-typed fields: `no`, `on`, `0777`, `1e3`, `12:30`, `8080` must be
//!   quoted. The union of YAML 1.1 (what PyYAML, Ruby, Go's yaml.v2 and many CI tools use) and
//!   the YAML 1.2 core schema is checked, because a manifest is read by more than one tool.
//! - [`resolve_core`]: what the YAML 1.2 core schema makes of it, for fields that accept
//!   several types (`maxUnavailable`).
//!
//! Sources: YAML 1.1 type repository (<https://yaml.org/type/bool.html>, `int.html`,
//! `float.html`, `timestamp.html`) and YAML 1.2.2 §10.3.2 (core schema tag resolution).
//! Quoted and block scalars are always strings and never reach this module.

/// What a plain scalar is read as, besides a string, and by which YAML version.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Hazard {
    /// What it reads as, with an article: "the boolean false", "the number 8080".
    pub reads_as: String,
    /// Only YAML 1.1 reads it so (`no`, `0777`, `12:30`); YAML 1.2 would keep the string.
    pub yaml11_only: bool,
}

impl Hazard {
    /// "in YAML 1.1" or "in YAML".
    pub fn version(&self) -> &'static str {
        if self.yaml11_only {
            "in YAML 1.1"
        } else {
            "in YAML"
        }
    }
}

/// Why the plain scalar `text` is not safely a string, or `None` when every YAML tool reads it
/// as the string it looks like. `text` is the scalar after YAML processing (no quotes).
pub(crate) fn string_hazard(text: &str) -> Option<Hazard> {
    let reads_as = |s: String| {
        Some(Hazard {
            reads_as: s,
            yaml11_only: false,
        })
    };
    let yaml11 = |s: String| {
        Some(Hazard {
            reads_as: s,
            yaml11_only: true,
        })
    };
    if is_null(text) {
        return reads_as("null (no value)".to_owned());
    }
    if let Some(b) = yaml11_bool(text) {
        let core = matches!(text, "true" | "True" | "TRUE" | "false" | "False" | "FALSE");
        let what = format!("the boolean {b}");
        return if core { reads_as(what) } else { yaml11(what) };
    }
    if let Some(octal) = yaml11_octal(text) {
        return yaml11(format!("the octal number {octal}"));
    }
    if is_int(text) || is_prefixed_int(text) {
        return reads_as(format!("the number {}", text.replace('_', "")));
    }
    if is_float(text) || is_special_float(text) {
        return reads_as(match text.replace('_', "").parse::<f64>() {
            Ok(v) if v.is_finite() => format!("the number {v}"),
            _ => "a special number (infinity or not-a-number)".to_owned(),
        });
    }
    if let Some(v) = sexagesimal(text) {
        return yaml11(format!("the base-60 number {v}"));
    }
    if is_timestamp(text) {
        return yaml11("a date".to_owned());
    }
    None
}

/// A plain scalar as the YAML 1.2 core schema resolves it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Core {
    /// `~`, `null`, `Null`, `NULL` or nothing.
    Null,
    /// `true`/`false` in the three spellings the core schema allows.
    Bool(bool),
    /// A non-negative integer.
    Unsigned(u64),
    /// A negative integer.
    Signed(i64),
    /// A float (including integers too large for 64 bits).
    Float(f64),
    /// Anything else.
    Str,
}

/// Resolve a plain scalar with the YAML 1.2 core schema (YAML 1.2.2 §10.3.2).
pub(crate) fn resolve_core(text: &str) -> Core {
    if is_null(text) {
        return Core::Null;
    }
    match text {
        "true" | "True" | "TRUE" => return Core::Bool(true),
        "false" | "False" | "FALSE" => return Core::Bool(false),
        _ => {}
    }
    if let Some(rest) = text.strip_prefix("0x")
        && !rest.is_empty()
        && rest.chars().all(|c| c.is_ascii_hexdigit())
    {
        return u64::from_str_radix(rest, 16).map_or(Core::Str, Core::Unsigned);
    }
    if let Some(rest) = text.strip_prefix("0o")
        && !rest.is_empty()
        && rest.chars().all(|c| ('0'..='7').contains(&c))
    {
        return u64::from_str_radix(rest, 8).map_or(Core::Str, Core::Unsigned);
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !unsigned.is_empty() && unsigned.chars().all(|c| c.is_ascii_digit()) {
        if let Ok(v) = text.trim_start_matches('+').parse::<u64>() {
            return Core::Unsigned(v);
        }
        if let Ok(v) = text.parse::<i64>() {
            return Core::Signed(v);
        }
        return text.parse::<f64>().map_or(Core::Str, Core::Float);
    }
    if is_float(text) && !text.contains('_') {
        return text.parse::<f64>().map_or(Core::Str, Core::Float);
    }
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Core::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Core::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Core::Float(f64::NAN),
        _ => Core::Str,
    }
}

/// `~`, `null`, `Null`, `NULL` or the empty plain scalar.
pub(crate) fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// YAML 1.1 booleans, in any case: y/n, yes/no, true/false, on/off.
fn yaml11_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "y" | "yes" | "true" | "on" => Some(true),
        "n" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// Optional sign, then digits and underscores, starting with a digit.
fn is_int(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    body.starts_with(|c: char| c.is_ascii_digit())
        && body.chars().all(|c| c.is_ascii_digit() || c == '_')
}

/// `0x1F`, `0o17`, `0b101` (with optional sign and underscores).
fn is_prefixed_int(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let check = |rest: &str, ok: fn(char) -> bool| {
        !rest.is_empty() && rest.chars().all(|c| ok(c) || c == '_')
    };
    if let Some(rest) = body.strip_prefix("0x") {
        return check(rest, |c| c.is_ascii_hexdigit());
    }
    if let Some(rest) = body.strip_prefix("0o") {
        return check(rest, |c| ('0'..='7').contains(&c));
    }
    if let Some(rest) = body.strip_prefix("0b") {
        return check(rest, |c| c == '0' || c == '1');
    }
    false
}

/// YAML 1.1 octal: a leading `0` followed by octal digits (`0777` is 511).
fn yaml11_octal(text: &str) -> Option<u64> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let digits = body.strip_prefix('0')?;
    if digits.is_empty() || !digits.chars().all(|c| ('0'..='7').contains(&c) || c == '_') {
        return None;
    }
    u64::from_str_radix(&digits.replace('_', ""), 8).ok()
}

/// A decimal float with a fraction part or an exponent (`1.5`, `.5`, `1e3`, `1.2E-3`).
fn is_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if let Some(exp) = exponent {
        let digits = exp.strip_prefix(['-', '+']).unwrap_or(exp);
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits_ok = |s: &str| s.chars().all(|c| c.is_ascii_digit() || c == '_');
    let int_ok = digits_ok(int_part)
        && (int_part.is_empty() || int_part.starts_with(|c: char| c.is_ascii_digit()));
    match frac_part {
        Some(f) => int_ok && digits_ok(f) && !(int_part.is_empty() && f.is_empty()),
        None => int_ok && !int_part.is_empty() && exponent.is_some(),
    }
}

/// `.inf`, `-.Inf`, `.NaN` and friends.
fn is_special_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    matches!(body.to_ascii_lowercase().as_str(), ".inf" | ".nan")
}

/// YAML 1.1 base 60: `12:30` is 750, `1:20:30` is 4830.
fn sexagesimal(text: &str) -> Option<f64> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, frac) = match body.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (body, None),
    };
    let mut parts = whole.split(':');
    let first = parts.next()?;
    if first.is_empty() || !first.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return None;
    }
    let mut value: f64 = first.replace('_', "").parse().ok()?;
    let mut any = false;
    for part in parts {
        any = true;
        let n: u32 = part.parse().ok()?;
        if part.is_empty() || part.len() > 2 || n > 59 {
            return None;
        }
        value = value * 60.0 + f64::from(n);
    }
    if !any {
        return None;
    }
    if let Some(f) = frac {
        if !f.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        value += format!("0.{f}0").parse::<f64>().ok()?;
    }
    Some(value)
}

/// YAML 1.1 timestamps start with a date: `2024-01-31`, `2024-1-31T10:00:00Z`, …
fn is_timestamp(text: &str) -> bool {
    let mut parts = text.splitn(3, '-');
    let (Some(y), Some(m), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let day_len = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let after = &rest[day_len..];
    y.len() == 4
        && y.chars().all(|c| c.is_ascii_digit())
        && (1..=2).contains(&m.len())
        && m.chars().all(|c| c.is_ascii_digit())
        && (1..=2).contains(&day_len)
        && (after.is_empty() || after.starts_with(['T', 't', ' ']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hazards_the_design_names() {
        for text in [
            "no",
            "No",
            "NO",
            "yes",
            "on",
            "OFF",
            "y",
            "n",
            "true",
            "False",
            "0777",
            "1e3",
            "12:30",
            "8080",
            "1.20",
            "~",
            "",
            "null",
            "0x1F",
            "1_000",
            ".inf",
            "2024-01-31",
            "-1",
            "+5",
        ] {
            assert!(string_hazard(text).is_some(), "{text:?} should be a hazard");
        }
    }

    #[test]
    fn ordinary_strings_are_not_hazards() {
        for text in [
            "SIGINT",
            "registry.fly.io/lowendinsight:deployment-NEW",
            "-proto_dist inet6_tcp",
            "iad",
            "1.2.3",
            "v1",
            "shared-cpu-1x",
            "5m",
            "/readyz",
            "noon",
            "12:30:99",
            "e3",
            "1e",
            ".",
            "2024-01-31x",
        ] {
            assert_eq!(
                string_hazard(text),
                None,
                "{text:?} should be a plain string"
            );
        }
    }

    #[test]
    fn hazard_says_what_it_reads_as() {
        let no = string_hazard("no").unwrap();
        assert_eq!(
            (no.reads_as.as_str(), no.version()),
            ("the boolean false", "in YAML 1.1")
        );
        assert_eq!(string_hazard("true").unwrap().version(), "in YAML");
        assert_eq!(
            string_hazard("0777").unwrap().reads_as,
            "the octal number 511"
        );
        assert_eq!(
            string_hazard("12:30").unwrap().reads_as,
            "the base-60 number 750"
        );
        assert_eq!(string_hazard("1e3").unwrap().reads_as, "the number 1000");
        assert_eq!(string_hazard("8080").unwrap().reads_as, "the number 8080");
    }

    #[test]
    fn core_resolution() {
        assert_eq!(resolve_core("1"), Core::Unsigned(1));
        assert_eq!(resolve_core("-3"), Core::Signed(-3));
        assert_eq!(resolve_core("0.33"), Core::Float(0.33));
        assert_eq!(resolve_core("1e3"), Core::Float(1000.0));
        assert_eq!(resolve_core("true"), Core::Bool(true));
        assert_eq!(resolve_core("yes"), Core::Str);
        assert_eq!(resolve_core("~"), Core::Null);
        assert_eq!(resolve_core("half"), Core::Str);
        assert_eq!(resolve_core("0x10"), Core::Unsigned(16));
        assert_eq!(resolve_core("1_000"), Core::Str);
    }
}
