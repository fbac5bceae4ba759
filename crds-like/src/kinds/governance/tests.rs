use super::*;
use crate::load_str;

fn load(spec: &str) -> Result<GovernancePolicySpec, Vec<String>> {
    let text = format!(
        "apiVersion: opsctl.dev/v1alpha1\nkind: GovernancePolicy\nmetadata: {{name: p}}\nspec:\n{spec}"
    );
    load_str("p.yaml".as_ref(), &text)
        .map(|set| set.policies[0].spec.clone())
        .map_err(|e| e.diagnostics.iter().map(|d| d.to_string()).collect())
}

#[test]
fn an_empty_spec_is_the_adr_policy() {
    let spec = load("  {}\n").unwrap();
    assert_eq!(spec, GovernancePolicySpec::default());
    assert_eq!(spec.burn_in.phase2_from, 11);
    assert_eq!(spec.burn_in.phase3_from, 51);
    assert_eq!(spec.gates.deploy.phase2, Gate::AutoWhenSafe);
    assert_eq!(spec.gates.migration, PhaseGates::all(Gate::Gated));
    assert_eq!(spec.budgets.deploy_usd, 0.50);
    assert_eq!(spec.budgets.incident_usd, 2.00);
    assert_eq!(spec.budgets.maintenance_usd, 0.10);
    assert!(spec.auto_rollback.on_health_failure && spec.auto_rollback.on_outage);
    assert_eq!(spec.approval_timeout.get().as_secs(), 86_400);
}

#[test]
fn a_written_section_overrides_only_itself() {
    let spec = load(
        "  gates:\n    deploy: {phase1: auto, phase2: auto, phase3: auto}\n  budgets: {deployUsd: 1.25}\n",
    )
    .unwrap();
    assert_eq!(spec.gates.deploy, PhaseGates::all(Gate::Auto));
    assert_eq!(spec.gates.scale, PhaseGates::all(Gate::Gated));
    assert_eq!(spec.budgets.deploy_usd, 1.25);
    assert_eq!(spec.budgets.incident_usd, 2.00);
}

#[test]
fn migrations_cannot_be_made_automatic() {
    let errs = load("  gates:\n    migration: {phase1: gated, phase2: gated, phase3: auto}\n")
        .unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("p.yaml:6:55") && errs[0].contains("migrations are always human"),
        "{errs:?}"
    );
}

#[test]
fn always_denied_operations_cannot_be_allowed() {
    let errs = load("  roles:\n    responder: {allow: [status, secrets-set, ssh]}\n").unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].contains("`secrets-set` is denied to every role"),
        "{errs:?}"
    );
    assert!(errs[1].contains("`ssh`"), "{errs:?}");
}

#[test]
fn bad_windows_budgets_and_phases_are_located() {
    let errs = load(
        "  burnIn: {phase2From: 20, phase3From: 10}\n  budgets: {incidentUsd: -1}\n  freezeWindows:\n    - {kind: deny, schedule: \"61 * * * *\", duration: 0s, timeZone: Mars/Olympus}\n",
    )
    .unwrap_err();
    let all = errs.join("\n");
    assert!(all.contains("phase 3 starts at deploy 10"), "{all}");
    assert!(all.contains("must be 0 or more, got -1"), "{all}");
    assert!(all.contains("is not a cron schedule"), "{all}");
    assert!(
        all.contains("`Mars/Olympus` is not an IANA time zone"),
        "{all}"
    );
    assert!(all.contains("a window of 0s never opens"), "{all}");
    assert!(all.contains("spec.freezeWindows[0].timeZone"), "{all}");
}

#[test]
fn gates_only_where_they_mean_something() {
    let errs = load(
        "  gates:\n    scale: {phase1: gated, phase2: autoWhenSafe, phase3: gated}\n    deploy: {phase1: gated, phase2: autoWhenKnownRunbook, phase3: auto}\n",
    )
    .unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
}

#[test]
fn a_valid_window_loads() {
    let spec = load(
        "  freezeWindows:\n    - {kind: deny, schedule: \"0 18 * * 5\", duration: 64h, timeZone: Europe/Berlin}\n",
    )
    .unwrap();
    assert_eq!(spec.freeze_windows[0].kind, WindowKind::Deny);
    assert_eq!(spec.freeze_windows[0].duration.get().as_secs(), 64 * 3600);
}
