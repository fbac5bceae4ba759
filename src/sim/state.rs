//! The simulated world (apps, machines, releases, image behaviours) and [`SimState`], the
//! shared handle every handler receives.
//!
//! [`SimState`] is a cheap `Clone` around an `Arc`: the virtual clock, the world behind one
//! mutex (held only for short, non-async sections; no handler awaits while holding it), and the
//! request counters. [`World::from_scenario`] builds the starting world from a
//! [`Scenario`]; after that only the HTTP handlers and the `/__sim/` control API change it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clock::{VirtualClock, to_chrono};
use super::error::SimError;
use super::ids::{fnv64, machine_name, new_nonce, random_machine_id, release_id};
use super::machine::{Behaviors, LeaseRec, SimMachine};
use super::scenario::{AppSpec, ImageBehavior, InitialState, MachineSpec, ReleaseStatus, Scenario};
use crate::fly::wire::{
    GqlRelease, Guest, META_PLATFORM_VERSION, META_PROCESS_GROUP, META_RELEASE_ID,
    META_RELEASE_VERSION, MachineConfig, RestRelease,
};

/// The simulator's shared state: clock, world and request counters. Clone it freely.
#[derive(Debug, Clone)]
pub struct SimState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    clock: VirtualClock,
    world: Mutex<World>,
    counts: Mutex<RequestCounts>,
}

/// Requests the Fly API routes received (the `/__sim/` control API is not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// All requests, including rejected ones (401, 404 …) and unknown paths.
    pub total: u64,
    /// Per `"METHOD /route/{template}"`, e.g. `"POST /v1/apps/{app}/machines/{id}"`;
    /// unknown paths count under `"unmatched"`.
    pub endpoints: BTreeMap<String, u64>,
}

impl RequestCounts {
    /// Count for one endpoint key (0 when never called).
    pub fn get(&self, key: &str) -> u64 {
        self.endpoints.get(key).copied().unwrap_or(0)
    }
}

impl SimState {
    /// A simulator loaded with `scenario`; the virtual clock starts now (or at the scenario's
    /// `clockStart`).
    pub fn new(scenario: Scenario) -> Self {
        let start = scenario.clock_start.unwrap_or_else(Utc::now);
        let clock = VirtualClock::new(start, scenario.time_scale);
        let world = World::from_scenario(&scenario, start);
        Self {
            inner: Arc::new(Inner {
                clock,
                world: Mutex::new(world),
                counts: Mutex::new(RequestCounts::default()),
            }),
        }
    }

    /// Current virtual time.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Moves the virtual clock forward; returns the new virtual now.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        self.inner.clock.advance(by)
    }

    /// Virtual seconds per real second.
    pub fn time_scale(&self) -> f64 {
        self.inner.clock.time_scale()
    }

    /// Sets how `image` behaves from now on (next starts; check results at once).
    pub fn set_image_behavior(&self, image: &str, behavior: ImageBehavior) {
        self.with_world(|w, _| {
            w.behaviors.images.insert(image.to_string(), behavior);
        });
    }

    /// A snapshot of the request counters.
    pub fn request_counts(&self) -> RequestCounts {
        self.inner
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Zeroes the request counters.
    pub fn reset_request_counts(&self) {
        *self.inner.counts.lock().unwrap_or_else(|e| e.into_inner()) = RequestCounts::default();
    }

    pub(crate) fn count_request(&self, key: String) {
        let mut counts = self.inner.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total += 1;
        *counts.endpoints.entry(key).or_default() += 1;
    }

    /// Runs `f` on the world with the current virtual time. Do not await inside.
    pub(crate) fn with_world<R>(&self, f: impl FnOnce(&mut World, DateTime<Utc>) -> R) -> R {
        let mut world = self.inner.world.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.inner.clock.now();
        f(&mut world, now)
    }
}

/// Everything the simulated Fly knows.
#[derive(Debug)]
pub struct World {
    /// Image behaviours and timings.
    pub behaviors: Behaviors,
    /// Owner written into granted leases.
    pub lease_owner: String,
    /// Apps by name.
    pub apps: BTreeMap<String, SimApp>,
}

/// One app.
#[derive(Debug)]
pub struct SimApp {
    /// Name (= id).
    pub name: String,
    /// Organisation slug.
    pub org: String,
    /// Default region.
    pub primary_region: String,
    /// `deployed`, …
    pub status: String,
    /// Machines by id, destroyed ones included.
    pub machines: BTreeMap<String, SimMachine>,
    /// Releases, oldest first.
    pub releases: Vec<SimRelease>,
}

/// One release.
#[derive(Debug, Clone)]
pub struct SimRelease {
    /// Opaque id.
    pub id: String,
    /// Per-app version.
    pub version: i64,
    /// Status.
    pub status: ReleaseStatus,
    /// Full image reference.
    pub image: String,
    /// `ROLLING`, …
    pub strategy: String,
    /// `Release`.
    pub description: String,
    /// Free text.
    pub reason: String,
    /// Who made it.
    pub user: String,
    /// Created, virtual time.
    pub created_at: DateTime<Utc>,
    /// Last status change, virtual time.
    pub updated_at: DateTime<Utc>,
    /// The app definition sent on create.
    pub definition: Value,
    /// Metadata sent on update (`post_deployment_info`).
    pub metadata: Option<Value>,
}

/// `user` of a GraphQL release node: the wire `GqlRelease` has no `user`, which fly-go's
/// `releasesUnprocessed` query selects (`user { id email name }`, NOTES.md §3.2).
#[derive(Debug, Clone, Serialize)]
pub struct GqlUser {
    /// User id.
    pub id: String,
    /// E-mail.
    pub email: String,
    /// Name.
    pub name: String,
}

/// A GraphQL release node: the wire [`GqlRelease`] plus `user`.
#[derive(Debug, Clone, Serialize)]
pub struct GqlReleaseNode {
    /// The release fields.
    #[serde(flatten)]
    pub release: GqlRelease,
    /// The user who made it.
    pub user: GqlUser,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl SimRelease {
    /// GraphQL `ReleaseUnprocessed` shape.
    pub fn to_gql(&self) -> GqlReleaseNode {
        GqlReleaseNode {
            release: GqlRelease {
                id: self.id.clone(),
                version: self.version,
                status: self.status.as_str().to_string(),
                description: self.description.clone(),
                reason: self.reason.clone(),
                image_ref: Some(self.image.clone()),
                stable: self.status == ReleaseStatus::Complete,
                created_at: rfc3339(self.created_at),
            },
            user: GqlUser {
                id: format!("u{:x}", fnv64(self.user.as_bytes()) & 0xffff_ffff),
                email: self.user.clone(),
                name: self.user.split('@').next().unwrap_or_default().to_string(),
            },
        }
    }

    /// REST release shape.
    pub fn to_rest(&self) -> RestRelease {
        RestRelease {
            id: self.id.clone(),
            version: self.version,
            stable: self.status == ReleaseStatus::Complete,
            in_progress: matches!(self.status, ReleaseStatus::Pending | ReleaseStatus::Running),
            status: self.status.as_str().to_string(),
            strategy: self.strategy.clone(),
            user: self.user.clone(),
            created_at: rfc3339(self.created_at),
            image_ref: self.image.clone(),
        }
    }
}

impl SimApp {
    /// Releases newest first, at most `limit`.
    pub fn releases_newest_first(&self, limit: Option<usize>) -> Vec<&SimRelease> {
        let mut all: Vec<&SimRelease> = self.releases.iter().collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.version));
        all.truncate(limit.unwrap_or(usize::MAX));
        all
    }

    /// The newest `complete` release.
    pub fn current_release(&self) -> Option<&SimRelease> {
        self.releases
            .iter()
            .filter(|r| r.status == ReleaseStatus::Complete)
            .max_by_key(|r| r.version)
    }

    /// Machines not destroyed.
    pub fn live_machine_count(&self) -> usize {
        self.machines
            .values()
            .filter(|m| m.state() != "destroyed")
            .count()
    }

    /// Creates release `max + 1`, status `pending`.
    pub fn create_release(
        &mut self,
        image: &str,
        strategy: &str,
        definition: Value,
        user: &str,
        now: DateTime<Utc>,
    ) -> &SimRelease {
        let version = self.releases.iter().map(|r| r.version).max().unwrap_or(0) + 1;
        self.releases.push(SimRelease {
            id: release_id(&self.name, version),
            version,
            status: ReleaseStatus::Pending,
            image: image.to_string(),
            strategy: if strategy.is_empty() {
                "ROLLING"
            } else {
                strategy
            }
            .to_uppercase(),
            description: "Release".to_string(),
            reason: String::new(),
            user: user.to_string(),
            created_at: now,
            updated_at: now,
            definition,
            metadata: None,
        });
        &self.releases[self.releases.len() - 1]
    }
}

impl World {
    /// Builds the starting world; `start` is the virtual clock's start.
    pub fn from_scenario(scenario: &Scenario, start: DateTime<Utc>) -> Self {
        let behaviors = Behaviors {
            timing: scenario.timing,
            images: scenario.images.clone(),
            default: scenario.default_behavior,
        };
        let apps = scenario
            .apps
            .iter()
            .map(|spec| (spec.name.value.clone(), build_app(spec, start, &behaviors)))
            .collect();
        Self {
            behaviors,
            lease_owner: scenario.lease_owner.clone(),
            apps,
        }
    }

    /// The app, or 404.
    ///
    /// # Errors
    /// [`SimError::AppNotFound`].
    pub fn app(&self, name: &str) -> Result<&SimApp, SimError> {
        self.apps.get(name).ok_or(SimError::AppNotFound)
    }

    /// The app, mutable, or 404.
    ///
    /// # Errors
    /// [`SimError::AppNotFound`].
    pub fn app_mut(&mut self, name: &str) -> Result<&mut SimApp, SimError> {
        self.apps.get_mut(name).ok_or(SimError::AppNotFound)
    }

    /// The machine, settled to `now`, with the behaviours; 404 for an unknown app or machine.
    ///
    /// # Errors
    /// [`SimError::AppNotFound`], [`SimError::MachineNotFound`].
    pub fn machine(
        &mut self,
        app: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<(&mut SimMachine, &Behaviors), SimError> {
        let Self {
            apps, behaviors, ..
        } = self;
        let machine = apps
            .get_mut(app)
            .ok_or(SimError::AppNotFound)?
            .machines
            .get_mut(id)
            .ok_or(SimError::MachineNotFound)?;
        machine.settle(now, behaviors);
        Ok((machine, behaviors))
    }

    /// A fresh machine id, unique in the world: 14 lowercase hex characters.
    pub fn new_machine_id(&self) -> String {
        loop {
            let id = random_machine_id();
            if !self.apps.values().any(|a| a.machines.contains_key(&id)) {
                return id;
            }
        }
    }

    /// The release with this id, in any app.
    pub fn release_mut(&mut self, id: &str) -> Option<&mut SimRelease> {
        self.apps
            .values_mut()
            .flat_map(|a| a.releases.iter_mut())
            .find(|r| r.id == id)
    }
}

fn build_app(spec: &AppSpec, start: DateTime<Utc>, b: &Behaviors) -> SimApp {
    let mut specs: Vec<_> = spec.releases.iter().collect();
    specs.sort_by_key(|r| r.version.value);
    let count = specs.len() as i64;
    let releases: Vec<SimRelease> = specs
        .into_iter()
        .zip(0i64..)
        .map(|(r, i)| {
            let version = r.version.value;
            let created = r
                .created_at
                .unwrap_or_else(|| start - chrono::Duration::hours(count + 1 - i));
            SimRelease {
                id: r
                    .id
                    .clone()
                    .unwrap_or_else(|| release_id(&spec.name.value, version)),
                version,
                status: r.status,
                image: r.image.clone(),
                strategy: r.strategy.clone(),
                description: r.description.clone(),
                reason: r.reason.clone(),
                user: r.user.clone(),
                created_at: created,
                updated_at: created,
                definition: Value::Null,
                metadata: None,
            }
        })
        .collect();
    let mut app = SimApp {
        name: spec.name.value.clone(),
        org: spec.org.clone(),
        primary_region: spec.primary_region.clone(),
        status: spec.status.clone(),
        machines: BTreeMap::new(),
        releases,
    };
    for m in &spec.machines {
        let machine = build_machine(spec, m, &app, start, b);
        app.machines.insert(machine.id.clone(), machine);
    }
    app
}

fn build_machine(
    spec: &AppSpec,
    m: &MachineSpec,
    app: &SimApp,
    start: DateTime<Utc>,
    b: &Behaviors,
) -> SimMachine {
    let release = m
        .release
        .as_ref()
        .and_then(|v| app.releases.iter().find(|r| r.version == v.value));
    let id = m.id.value.0.clone();
    let config = machine_config(spec, m, release);
    let since = release
        .map(|r| r.created_at)
        .filter(|t| *t < start)
        .unwrap_or(start - chrono::Duration::hours(1));
    let name = m.name.clone().unwrap_or_else(|| machine_name(&id));
    let region = m
        .region
        .clone()
        .unwrap_or_else(|| spec.primary_region.clone());
    let skip_launch = m.state == InitialState::Created;
    let mut machine = SimMachine::launch(id, name, region, config, since, skip_launch, b);
    let a_minute = chrono::Duration::minutes(1);
    machine.settle(since + a_minute, b);
    if m.state == InitialState::Stopped {
        machine.stop(since + a_minute, b);
        machine.settle(since + a_minute * 2, b);
    }
    machine.cordoned = m.cordoned;
    if let Some(lease) = &m.lease {
        machine.lease = Some(LeaseRec {
            nonce: new_nonce(),
            owner: lease.owner.clone(),
            description: lease.description.clone(),
            expires_at: start + to_chrono(lease.ttl.0),
            version: machine.instance_id.clone(),
        });
    }
    machine
}

/// The scenario machine's config: its own or the app template, plus image, Fly's env and
/// metadata, and a `shared-cpu-1x` guest when none is given.
fn machine_config(spec: &AppSpec, m: &MachineSpec, release: Option<&SimRelease>) -> MachineConfig {
    let mut c = m
        .config
        .clone()
        .or_else(|| spec.machine_config.clone())
        .unwrap_or_default();
    c.image = m.resolved_image(spec).unwrap_or_default();
    c.env
        .entry("FLY_PROCESS_GROUP".to_string())
        .or_insert_with(|| m.process_group.clone());
    c.env
        .entry("PRIMARY_REGION".to_string())
        .or_insert_with(|| spec.primary_region.clone());
    c.guest.get_or_insert_with(|| Guest {
        cpu_kind: "shared".to_string(),
        cpus: 1,
        memory_mb: 256,
    });
    c.extra
        .entry("init")
        .or_insert_with(|| serde_json::json!({}));
    if m.managed {
        c.metadata
            .insert(META_PLATFORM_VERSION.to_string(), "v2".to_string());
        c.metadata
            .insert(META_PROCESS_GROUP.to_string(), m.process_group.clone());
    }
    if let Some(r) = release {
        c.metadata.insert(META_RELEASE_ID.to_string(), r.id.clone());
        c.metadata
            .insert(META_RELEASE_VERSION.to_string(), r.version.to_string());
    }
    c.metadata.extend(m.metadata.clone());
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowendinsight_world_matches_the_brief() {
        let state = SimState::new(Scenario::lowendinsight_default());
        state.with_world(|w, now| {
            let app = w.app("lowendinsight").unwrap();
            assert_eq!(app.current_release().unwrap().version, 109);
            let r109_id = app.current_release().unwrap().id.clone();
            let (m, b) = w.machine("lowendinsight", "148ed193b95d89", now).unwrap();
            assert_eq!(m.state(), "started");
            let wire = m.to_wire(now, b);
            let cfg = wire.config.unwrap();
            assert_eq!(cfg.metadata[META_RELEASE_VERSION], "109");
            assert_eq!(cfg.metadata[META_RELEASE_ID], r109_id);
            assert_eq!(cfg.metadata[META_PROCESS_GROUP], "app");
            assert_eq!(cfg.env["PRIMARY_REGION"], "iad");
            assert_eq!(cfg.extra["stop_config"]["signal"], "SIGINT");
            assert_eq!(wire.checks.len(), 1);
            assert_eq!(wire.checks[0].name, "servicecheck-00-tcp-8080");
            assert_eq!(wire.checks[0].status, "passing");
        });
    }

    #[test]
    fn new_machine_ids_are_fly_shaped() {
        let w = World::from_scenario(&Scenario::empty(), Utc::now());
        let id = w.new_machine_id();
        assert_eq!(id.len(), 14);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
}
