//! The simulated world: apps with their machines, releases, certificates and logs, image
//! behaviours and installed faults, and how a [`Scenario`] becomes the starting world.
//!
//! [`World`] sits behind the mutex of [`super::state::SimState`]; handlers reach it through
//! `SimState::with_world`. Nothing here locks, awaits or reads a clock: every method takes
//! the virtual `now` it should act at.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use super::certificates::SimCertificate;
use super::clock::to_chrono;
use super::error::SimError;
use super::faults::FaultBook;
use super::ids::{fnv64, machine_name, new_nonce, random_machine_id, release_id};
use super::logs::{LogLine, LogSchedule};
use super::machine::{Behaviors, LeaseRec, SimMachine};
use super::scenario::{AppSpec, InitialState, MachineSpec, ReleaseStatus, Scenario};
use crate::fly::wire::{
    GqlRelease, Guest, META_PLATFORM_VERSION, META_PROCESS_GROUP, META_RELEASE_ID,
    META_RELEASE_VERSION, MachineConfig, RestRelease,
};

/// Everything the simulated Fly knows.
#[derive(Debug)]
pub struct World {
    /// Image behaviours and timings.
    pub behaviors: Behaviors,
    /// Owner written into granted leases.
    pub lease_owner: String,
    /// Apps by name.
    pub apps: BTreeMap<String, SimApp>,
    /// Installed faults.
    pub faults: FaultBook,
    /// The image registry's pruned images and availability ([`super::registry`]).
    pub registry: super::registry::RegistryBook,
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
    /// TLS certificates by hostname.
    pub certificates: BTreeMap<String, SimCertificate>,
    /// Scenario log lines, resolved onto the virtual clock.
    pub log_schedules: Vec<LogSchedule>,
    /// Lines added through `POST /__sim/logs`.
    pub posted_logs: Vec<LogLine>,
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
            release_commands: scenario.release_commands.clone(),
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
            faults: FaultBook::default(),
            registry: super::registry::RegistryBook {
                pruned: scenario.pruned_images.iter().cloned().collect(),
                unavailable: false,
            },
        }
    }

    /// Places the leases of `leaseHeldBy` faults whose window has begun at `now`; returns
    /// how many it placed. A lease on a machine that does not exist is dropped.
    pub fn apply_faults(&mut self, now: DateTime<Utc>) -> u64 {
        let due = self.faults.due_leases(now);
        let mut placed = 0;
        for lease in due {
            let Some(m) = self
                .apps
                .values_mut()
                .find_map(|a| a.machines.get_mut(&lease.machine))
            else {
                continue;
            };
            let nonce = new_nonce();
            m.lease = Some(LeaseRec {
                nonce: nonce.clone(),
                owner: lease.owner,
                description: "held by a simulated fault".to_string(),
                expires_at: lease.until,
                version: m.instance_id.clone(),
            });
            self.faults.placed(lease.fault, nonce);
            placed += 1;
        }
        placed
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
        certificates: spec
            .certificates
            .iter()
            .map(|c| {
                (
                    c.hostname.value.clone(),
                    SimCertificate::from_spec(c, start),
                )
            })
            .collect(),
        log_schedules: Vec::new(),
        posted_logs: Vec::new(),
    };
    for m in &spec.machines {
        let machine = build_machine(spec, m, &app, start, b);
        app.machines.insert(machine.id.clone(), machine);
    }
    app.log_schedules = spec
        .logs
        .iter()
        .map(|l| LogSchedule::new(l, &app, start))
        .collect();
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
        ..Guest::default()
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
