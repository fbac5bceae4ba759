//! Unix signal names and numbers, as `POST …/{id}/signal` takes them: the spec sends names
//! (`{"signal":"SIGKILL"}`), fly-go's `Kill` sends numbers (`{"signal":9}`) (NOTES.md §2.1).
//! Numbers are Linux's (x86-64 and arm64 agree for these).

use serde_json::Value;

/// (number, name) for every signal the simulator accepts: the spec's `SignalRequest` enum
/// plus `SIGUSR2`.
const SIGNALS: [(i32, &str); 14] = [
    (1, "SIGHUP"),
    (2, "SIGINT"),
    (3, "SIGQUIT"),
    (4, "SIGILL"),
    (5, "SIGTRAP"),
    (6, "SIGABRT"),
    (8, "SIGFPE"),
    (9, "SIGKILL"),
    (10, "SIGUSR1"),
    (11, "SIGSEGV"),
    (12, "SIGUSR2"),
    (13, "SIGPIPE"),
    (14, "SIGALRM"),
    (15, "SIGTERM"),
];

/// The name of signal `number`.
pub fn name(number: i32) -> Option<&'static str> {
    SIGNALS.iter().find(|(n, _)| *n == number).map(|(_, s)| *s)
}

/// The number of a signal given as a name (`"SIGKILL"`, `"KILL"`, any case), a number, or a
/// numeric string; `None` for anything else.
pub fn number(value: &Value) -> Option<i32> {
    let known = |n: i64| {
        let n = i32::try_from(n).ok()?;
        name(n).map(|_| n)
    };
    match value {
        Value::Number(n) => known(n.as_i64()?),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i64>() {
                return known(n);
            }
            let upper = s.to_ascii_uppercase();
            let full = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            SIGNALS.iter().find(|(_, s)| *s == full).map(|(n, _)| *n)
        }
        _ => None,
    }
}

/// Whether the simulated process dies of `number`: every accepted signal except `SIGHUP`,
/// `SIGUSR1` and `SIGUSR2`, which apps usually handle (reload, dump state) and survive.
pub fn terminates(number: i32) -> bool {
    !matches!(number, 1 | 10 | 12)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_numbers() {
        assert_eq!(number(&json!("SIGKILL")), Some(9));
        assert_eq!(number(&json!(9)), Some(9));
        assert_eq!(number(&json!("term")), Some(15));
        assert_eq!(number(&json!("15")), Some(15));
        assert_eq!(number(&json!("SIGNOPE")), None);
        assert_eq!(number(&json!(99)), None);
        assert_eq!(number(&json!(null)), None);
        assert_eq!(name(2), Some("SIGINT"));
        assert!(terminates(9) && !terminates(10));
    }
}
