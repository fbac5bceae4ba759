//! The resource kinds other than `FlyApp` (DESIGN.md §3), one module each: the serde types of
//! the `spec` and the kind's own rules beyond types (`rules`, run by the loader on a spec read
//! without errors). Rules across manifests (an SLO naming an app that no `FlyApp` declares) run
//! in [`crate::load`] once the whole set is read.

pub mod alert_route;
pub mod cert_window;
pub mod governance;
pub mod health_slo;
pub mod maintenance;
pub mod runbook;

pub use alert_route::AlertRouteSpec;
pub use cert_window::CertWindowSpec;
pub use governance::GovernancePolicySpec;
pub use health_slo::HealthSloSpec;
pub use maintenance::MaintenanceScheduleSpec;
pub use runbook::RunbookSpec;
