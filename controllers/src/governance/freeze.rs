//! Freeze windows: whether deploy-mode actions may run at `now` (Argo CD sync windows'
//! semantics: a window opens at each occurrence of its cron schedule, read in its IANA time
//! zone, and stays open for its duration; deny wins over allow; with any allow window declared,
//! actions run only inside one). Source: Argo CD "Sync Windows" (operator manual).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use opsctl_crds::kinds::governance::{FreezeWindow, WindowKind};

/// Why deploys must wait, or `None` when they may run at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frozen {
    /// Stable rule id: `freeze.deny-window`, `freeze.outside-allow-windows` or
    /// `freeze.invalid-window`.
    pub rule: &'static str,
    /// For people.
    pub why: String,
}

/// Whether `window` is open at `now`: some occurrence of its schedule `s` has
/// `s <= now < s + duration`.
///
/// # Errors
/// The schedule or time zone does not parse (the loader refuses such manifests, so this is a
/// policy built in code), as text.
pub fn is_open(window: &FreezeWindow, now: DateTime<Utc>) -> Result<bool, String> {
    let cron = croner::Cron::from_str(&window.schedule)
        .map_err(|e| format!("schedule `{}`: {e}", window.schedule))?;
    let tz: chrono_tz::Tz = window
        .time_zone
        .parse()
        .map_err(|_| format!("`{}` is not an IANA time zone", window.time_zone))?;
    let duration = chrono::Duration::from_std(window.duration.get())
        .map_err(|_| format!("duration {} is too long", window.duration))?;
    let since = (now - duration).with_timezone(&tz);
    match cron.find_next_occurrence(&since, false) {
        Ok(start) => Ok(start.with_timezone(&Utc) <= now),
        // No occurrence at all (e.g. February 30th): never open.
        Err(_) => Ok(false),
    }
}

/// Whether deploy-mode actions must wait at `now` under `windows`.
pub fn frozen(windows: &[FreezeWindow], now: DateTime<Utc>) -> Option<Frozen> {
    let mut any_allow = false;
    let mut in_allow = false;
    for (i, w) in windows.iter().enumerate() {
        let open = match is_open(w, now) {
            Ok(open) => open,
            Err(e) => {
                return Some(Frozen {
                    rule: "freeze.invalid-window",
                    why: format!("freeze window {i} cannot be evaluated ({e}); deploys wait"),
                });
            }
        };
        match w.kind {
            WindowKind::Deny if open => {
                return Some(Frozen {
                    rule: "freeze.deny-window",
                    why: format!(
                        "inside deny window {i} (`{}` for {} in {}); deploys wait until it closes",
                        w.schedule, w.duration, w.time_zone
                    ),
                });
            }
            WindowKind::Deny => {}
            WindowKind::Allow => {
                any_allow = true;
                in_allow |= open;
            }
        }
    }
    (any_allow && !in_allow).then(|| Frozen {
        rule: "freeze.outside-allow-windows",
        why: "outside every allow window; deploys wait for the next one".into(),
    })
}
