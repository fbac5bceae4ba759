//! Builders for tests: a `FlyApp` from JSON and observed machines with sensible defaults.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use opsctl_crds::{FlyApp, FlyAppSpec, Metadata};
use serde_json::json;

use crate::observed::{
    CheckResult, CheckState, GuestSize, MachineState, ObservedApp, ObservedMachine,
};

pub const OLD: &str = "registry.fly.io/lowendinsight:deployment-OLD";
pub const NEW: &str = "registry.fly.io/lowendinsight:deployment-NEW";

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
}

/// LowEndInsight-like app: group `app`, `iad: n`, image NEW, env PORT, `extra` merged into spec.
pub fn app(n: u32, extra: serde_json::Value) -> FlyApp {
    let mut spec = json!({
        "image": NEW,
        "processGroups": {"app": {"regions": {"iad": n}, "vm": {"size": "shared-cpu-1x", "memoryMb": 1024}}},
        "env": {"PORT": "8080"},
    });
    if let (Some(base), Some(more)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            base.insert(k.clone(), v.clone());
        }
    }
    let spec: FlyAppSpec = serde_json::from_value(spec).expect("test spec");
    FlyApp {
        metadata: Metadata {
            name: "lowendinsight".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        },
        spec,
        file: "manifests/lowendinsight.yaml".into(),
    }
}

/// A started, managed, passing machine running OLD with platform env added by Fly.
pub fn machine(id: &str) -> ObservedMachine {
    ObservedMachine {
        id: id.into(),
        region: "iad".into(),
        group: "app".into(),
        state: MachineState::Started,
        image: OLD.into(),
        version: format!("v-{id}"),
        release_version: Some(109),
        managed: true,
        env: [
            ("PORT", "8080"),
            ("FLY_PROCESS_GROUP", "app"),
            ("PRIMARY_REGION", "iad"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect(),
        guest: GuestSize::from_preset("shared-cpu-1x", Some(1024)),
        checks: vec![CheckResult {
            name: "servicecheck-00-tcp-8080".into(),
            state: CheckState::Passing,
            output: String::new(),
        }],
        configured_checks: 1,
        service_config: Default::default(),
        last_exit: None,
        last_start: Some(t0()),
        cordoned: false,
    }
}

pub fn observed(machines: Vec<ObservedMachine>) -> ObservedApp {
    ObservedApp {
        name: "lowendinsight".into(),
        machines,
        releases: vec![],
    }
}
