//! The maintenance pipeline's view of Fly: read-only by construction.
//!
//! [`ReadOnlyFly`] wraps a [`FlyClient`] in a private field and offers only the reads the
//! checks need, so no code in `src/maintenance/` can create, update, stop, start, restart,
//! destroy, lease or cordon a machine: it does not compile (ADR §3: the maintenance pipeline
//! runs as the `monitor` role and never mutates). Role enforcement inside the client itself is
//! the run-time half; this is the compile-time half. `tests/maintenance_machines.rs` proves a
//! whole maintenance run sends only `GET`s (the simulator's request counts).
//!
//! ```compile_fail,E0599
//! # async fn f(fly: opsctl::maintenance::ReadOnlyFly) {
//! // There is no way to mutate through the view:
//! fly.destroy_machine("app", "m1", true).await;
//! # }
//! ```

use crate::fly::wire::Machine;
use crate::fly::{FlyClient, FlyError};

/// A Fly client that can only read. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ReadOnlyFly {
    client: FlyClient,
}

impl ReadOnlyFly {
    /// Wrap `client`; it is not reachable through the view afterwards.
    pub fn new(client: FlyClient) -> Self {
        Self { client }
    }

    /// `GET /v1/apps/{app}/machines`: every machine of the app except destroyed ones.
    ///
    /// # Errors
    /// [`FlyError`]; `Unavailable` (down, 429 after retries, timeout) means "could not see".
    pub async fn list_machines(&self, app: &str) -> Result<Vec<Machine>, FlyError> {
        self.client.list_machines(app).await
    }
}
