//! Which checks a machine config defines, and the `checks` array Fly reports for them.
//!
//! Names follow Fly (NOTES.md §2.6): top-level checks use their `config.checks` map key;
//! service checks are `servicecheck-NN-<type>-<port>`, NN being the two-digit index within
//! that service's `checks`, port the check's own or the service's `internal_port`. *When*
//! results exist and whether they pass is the machine's business ([`super::machine`]).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::fly::wire::{CheckStatus, MachineConfig};

/// A check the config defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredCheck {
    /// Fly's name for it.
    pub name: String,
    /// `tcp` or `http`.
    pub kind: String,
    /// Port probed.
    pub port: u64,
    /// HTTP path (`/` when none).
    pub path: String,
}

impl ConfiguredCheck {
    fn output(&self, critical: bool) -> String {
        match (critical, self.kind.as_str()) {
            (false, _) => "Success".to_string(),
            (true, "http") => format!("GET {}: 500 Internal Server Error", self.path),
            (true, _) => format!(
                "dial tcp [fdaa::2]:{}: connect: connection refused",
                self.port
            ),
        }
    }
}

/// Service checks in service order, then top-level checks by name.
pub fn configured(config: &MachineConfig) -> Vec<ConfiguredCheck> {
    let text = |v: &Value, key: &str, default: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_string()
    };
    let mut out = Vec::new();
    for service in &config.services {
        let internal = service
            .get("internal_port")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let checks = service.get("checks").and_then(Value::as_array);
        for (i, check) in checks.into_iter().flatten().enumerate() {
            let kind = text(check, "type", "tcp");
            let port = check
                .get("port")
                .and_then(Value::as_u64)
                .unwrap_or(internal);
            out.push(ConfiguredCheck {
                name: format!("servicecheck-{i:02}-{kind}-{port}"),
                path: text(check, "path", "/"),
                kind,
                port,
            });
        }
    }
    for (name, check) in &config.checks {
        out.push(ConfiguredCheck {
            name: name.clone(),
            kind: text(check, "type", "tcp"),
            port: check.get("port").and_then(Value::as_u64).unwrap_or(0),
            path: text(check, "path", "/"),
        });
    }
    out
}

/// One result per configured check, all `critical` or all `passing`, last updated `since`.
/// Empty when the config defines no checks.
pub fn statuses(config: &MachineConfig, critical: bool, since: DateTime<Utc>) -> Vec<CheckStatus> {
    let updated_at = since.to_rfc3339_opts(SecondsFormat::Secs, true);
    configured(config)
        .into_iter()
        .map(|c| CheckStatus {
            status: if critical { "critical" } else { "passing" }.to_string(),
            output: c.output(critical),
            name: c.name,
            updated_at: updated_at.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_fly() {
        let mut c = MachineConfig {
            services: vec![serde_json::json!({
                "internal_port": 8080,
                "checks": [{"type": "tcp"}, {"type": "http", "path": "/healthz", "port": 4000}]
            })],
            ..Default::default()
        };
        c.checks.insert(
            "readyz".to_string(),
            serde_json::json!({"type": "http", "port": 4000}),
        );
        let names: Vec<String> = configured(&c).into_iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "servicecheck-00-tcp-8080",
                "servicecheck-01-http-4000",
                "readyz"
            ]
        );
        assert!(configured(&MachineConfig::default()).is_empty());
        let s = statuses(&c, true, Utc::now());
        assert!(
            s.iter()
                .all(|c| c.status == "critical" && !c.output.is_empty())
        );
    }
}
