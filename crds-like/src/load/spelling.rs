//! Lists of names for messages, and "did you mean" suggestions for misspelt field, kind and
//! enum names (`max_unavailable` → `maxUnavailable`, `FlyAp` → `FlyApp`).

/// "`a`, `b` or `c`".
pub(crate) fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => "nothing".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("one of {} or {last}", rest.join(", ")),
    }
}

/// "one of the fields `a`, `b`, `c`".
pub(crate) fn list(fields: &[&str]) -> String {
    if fields.is_empty() {
        return "no fields".to_owned();
    }
    let quoted: Vec<String> = fields.iter().map(|n| format!("`{n}`")).collect();
    format!("one of the fields {}", quoted.join(", "))
}

/// The candidate `word` was probably meant as: same letters ignoring case, `_` and `-`
/// (`max_unavailable` → `maxUnavailable`), or within two edits.
pub(crate) fn suggest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .collect::<String>()
            .to_lowercase()
    };
    let w = norm(word);
    if let Some(c) = candidates.iter().find(|c| norm(c) == w) {
        return Some(c);
    }
    candidates
        .iter()
        .map(|c| (edit_distance(&w, &norm(c)), *c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("max_unavailable", &["strategy", "maxUnavailable"]),
            Some("maxUnavailable")
        );
        assert_eq!(
            suggest("stratgy", &["strategy", "maxUnavailable"]),
            Some("strategy")
        );
        assert_eq!(suggest("zzz", &["strategy"]), None);
    }

    #[test]
    fn lists() {
        assert_eq!(one_of(&["a", "b", "c"]), "one of `a`, `b` or `c`");
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(list(&["x", "y"]), "one of the fields `x`, `y`");
    }
}
