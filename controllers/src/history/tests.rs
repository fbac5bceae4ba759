use chrono::TimeZone;

use super::*;

fn past(id: &str, image: &str, outcome: PastOutcome, minute: u32) -> PastDeploy {
    PastDeploy {
        id: id.into(),
        image: image.into(),
        outcome,
        at: Utc.with_ymd_and_hms(2026, 11, 29, 12, minute, 0).unwrap(),
        failed_health: matches!(
            outcome,
            PastOutcome::RolledBack | PastOutcome::RollbackFailed
        ),
        image_changed: true,
        revision: format!("rev-{id}"),
        rolled_back_from: None,
    }
}

fn release(version: i64, image: &str, status: &str) -> ObservedRelease {
    ObservedRelease {
        id: format!("r{version}"),
        version,
        status: status.into(),
        image: Some(image.into()),
    }
}

/// BUG-12 (shared/cases/README.md): the target is the newest release whose image is not
/// known bad, not the numerically previous one.
#[test]
fn rollback_skips_releases_known_bad() {
    let releases = vec![
        release(42, "ddd", "running"),
        release(41, "ccc", "failed"),
        release(40, "bbb", "complete"),
        release(39, "aaa", "complete"),
    ];
    let history = vec![past("d41", "ccc", PastOutcome::RolledBack, 41)];
    // The machines ran ccc before (a bad image): restoring them is not allowed.
    assert_eq!(
        rollback_choice(&["ccc"], "ddd", &releases, &history),
        RollbackChoice::ToRelease {
            version: 40,
            image: "bbb".into()
        }
    );
    // A bad digest under another version number is still bad.
    let releases = vec![
        release(43, "ccc", "complete"),
        release(40, "bbb", "complete"),
    ];
    assert_eq!(
        rollback_choice(&["ccc"], "ddd", &releases, &history),
        RollbackChoice::ToRelease {
            version: 40,
            image: "bbb".into()
        }
    );
}

#[test]
fn rollback_restores_previous_config_when_it_is_not_bad() {
    let releases = vec![release(40, "bbb", "complete")];
    assert_eq!(
        rollback_choice(&["bbb"], "ddd", &releases, &[]),
        RollbackChoice::Restore
    );
}

#[test]
fn no_known_good_release_escalates() {
    let releases = vec![release(41, "ccc", "complete"), release(40, "ddd", "failed")];
    let history = vec![past("d41", "ccc", PastOutcome::RollbackFailed, 1)];
    assert!(matches!(
        rollback_choice(&["ccc"], "ddd", &releases, &history),
        RollbackChoice::Escalate { .. }
    ));
}

/// Issue #4: after a rollback the bad image is pinned out, even for a human.
#[test]
fn a_rolled_back_image_is_pinned_out() {
    let history = vec![
        past("d2", "bad", PastOutcome::RolledBack, 2),
        past("d1", "good", PastOutcome::Succeeded, 1),
    ];
    for by_human in [false, true] {
        assert_eq!(
            may_deploy(&history, "bad", "rev-x", by_human),
            Err(Block::PinnedOut {
                image: "bad".into(),
                record: "d2".into()
            })
        );
    }
    assert_eq!(may_deploy(&history, "newer", "rev-y", false), Ok(()));
}

/// BUG-14: a rollback that did not restore service pauses automatic deploys until a human
/// acts; the human's own apply goes through.
#[test]
fn a_failed_rollback_pauses_automatic_deploys() {
    let history = vec![past("d2", "bad", PastOutcome::RollbackFailed, 2)];
    assert_eq!(
        may_deploy(&history, "fix", "rev-y", false),
        Err(Block::Paused {
            record: "d2".into()
        })
    );
    assert_eq!(may_deploy(&history, "fix", "rev-y", true), Ok(()));
    // Once a later deploy succeeded (the human's), automatic deploys resume.
    let history = vec![
        past("d3", "fix", PastOutcome::Succeeded, 3),
        past("d2", "bad", PastOutcome::RollbackFailed, 2),
    ];
    assert_eq!(may_deploy(&history, "next", "rev-z", false), Ok(()));
}

/// A user test found a healthy image pinned out forever because its deploy failed on an
/// unreachable Fly (rollback_failed without any health verdict).
#[test]
fn an_infrastructure_failure_does_not_make_an_image_bad() {
    let mut d = past("d1", "good", PastOutcome::RollbackFailed, 1);
    d.failed_health = false;
    let history = vec![d];
    assert!(bad_images(&history).is_empty());
    assert_eq!(may_deploy(&history, "good", "rev-z", true), Ok(()));
}

/// A failed config-only change (same image) restores the previous config, does not make the
/// running image bad, and is itself pinned out by its revision (no retry loop).
#[test]
fn a_failed_config_change_pins_its_revision_not_the_image() {
    let releases = vec![
        release(41, "img", "complete"),
        release(40, "older", "complete"),
    ];
    assert_eq!(
        rollback_choice(&["img"], "img", &releases, &[]),
        RollbackChoice::Restore
    );
    let mut d = past("d1", "img", PastOutcome::RolledBack, 1);
    d.image_changed = false;
    d.revision = "rev-bad-config".into();
    let history = vec![d];
    assert!(bad_images(&history).is_empty());
    assert!(matches!(
        may_deploy(&history, "img", "rev-bad-config", false),
        Err(Block::PinnedOut { .. })
    ));
    assert_eq!(
        may_deploy(&history, "img", "rev-fixed-config", false),
        Ok(())
    );
}

#[test]
fn a_rollback_goes_ahead_only_when_every_image_is_known_present() {
    assert_eq!(RegistryVerdict::Present.escalation(), None);
    let (class, why) = RegistryVerdict::Absent {
        image: "r/a:1".into(),
    }
    .escalation()
    .unwrap();
    assert_eq!(class, "rollback_image_pruned");
    assert!(why.contains("r/a:1"), "{why}");
    let (class, why) = RegistryVerdict::Unknown {
        image: "r/a:1".into(),
        reason: "registry answered 503".into(),
    }
    .escalation()
    .unwrap();
    assert_eq!(class, "rollback_image_unknown");
    assert!(
        why.contains("503") && why.contains("not rolling back blind"),
        "{why}"
    );
}

/// A manual rollback (`opsctl rollback`) pins out the image a human rolled back from, without
/// saying anything false about the deploy that brought it (it did not fail health): the
/// reconciler does not redeploy it, a rollback never restores it, another image deploys.
#[test]
fn an_image_rolled_back_by_hand_is_pinned_out() {
    let brought = past("d1", "img:new", PastOutcome::Succeeded, 1);
    let manual = PastDeploy {
        rolled_back_from: Some("img:new".into()),
        ..past("d2", "img:old", PastOutcome::Succeeded, 2)
    };
    let history = vec![manual, brought];
    assert!(!history[1].failed_health);
    assert_eq!(
        may_deploy(&history, "img:new", "rev-x", false),
        Err(Block::RolledBackByHand {
            image: "img:new".into(),
            record: "d2".into(),
        })
    );
    // Not even `opsctl apply` by a person: the manifest must name another image.
    assert!(may_deploy(&history, "img:new", "rev-x", true).is_err());
    assert_eq!(may_deploy(&history, "img:newer", "rev-y", false), Ok(()));
    assert!(bad_images(&history).contains("img:new"));
}
