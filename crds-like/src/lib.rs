//! `opsctl-crds`: the resource kinds users write, as Rust types, and everything needed to read
//! them strictly (DESIGN.md §3).
//!
//! This crate decides nothing and performs no I/O beyond reading the files it is asked to load.
//! Its outputs are typed manifests (or every error found, each with file, line and column) for
//! `opsctl-controllers` and the `opsctl` binary.
//!
//! Map of the crate:
//! - [`load`]: loading a directory of YAML into a [`ManifestSet`], strictly, reporting every
//!   problem as a [`Diagnostic`]; start here ([`load_dir`]). Its private passes: `tree` (YAML
//!   with positions and quoting), `de` (typed reading that goes on after a mistake), `scalar`
//!   (the "quote it" rules), `validate` (rules beyond types).
//! - [`flyapp`]: the `FlyApp` kind: serde types, defaults, Fly's VM presets.
//! - [`kinds`]: the other kinds (`GovernancePolicy`, `HealthSLO`, `CertWindow`,
//!   `MaintenanceSchedule`, `Runbook`, `AlertRoute`), one module each.
//! - [`duration`]: durations written with units (`90s`, `5m`).
//! - [`image_ref`]: image references (`registry.fly.io/APP:TAG`), by the distribution/reference
//!   grammar.
//! - [`regions`]: Fly's region codes, for the "unknown Fly region" warning.
//! - [`import`]: `fly.toml` (current and legacy layouts) → `FlyApp`, with a warning for every
//!   key it cannot carry ([`import::import_fly_toml`]).
#![warn(missing_docs)]

pub mod duration;
pub mod flyapp;
pub mod image_ref;
pub mod import;
pub mod kinds;
pub mod load;
pub mod regions;
pub mod schema;

pub use duration::DurationStr;
pub use flyapp::FlyAppSpec;
pub use import::{ImportError, Imported, import_fly_toml};
pub use load::{
    Diagnostic, FlyApp, KNOWN_KINDS, LoadError, Manifest, ManifestSet, Metadata, load_dir,
    load_files, load_str,
};

/// The `apiVersion` every manifest carries.
pub const API_VERSION: &str = "opsctl.dev/v1alpha1";
