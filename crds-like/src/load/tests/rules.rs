//! Rules added after a user test of `opsctl validate` accepted bad values: image references,
//! `env` names, region codes, `failAfter` against `waitTimeout`. Each gives one located
//! diagnostic with what was expected and a help line.

use super::*;

const HEX64: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn with_image(image: &str) -> String {
    GOOD.replace(
        "image: registry.fly.io/web:deployment-1",
        &format!("image: \"{image}\""),
    )
}

/// The single warning of `text`, which must load.
fn single_warning(text: &str, line: usize, column: usize, field: &str) -> Diagnostic {
    let set = load_str(Path::new("m.yaml"), text)
        .unwrap_or_else(|e| panic!("expected to load:\n{}", render(&e.diagnostics)));
    assert_eq!(
        set.warnings.len(),
        1,
        "expected one warning, got:\n{}",
        render(&set.warnings)
    );
    let w = set.warnings.into_iter().next().unwrap();
    assert_eq!((w.line, w.column), (line, column), "{w}");
    assert_eq!(w.field.as_deref(), Some(field), "{w}");
    w
}

#[test]
fn image_with_uppercase_repository_is_an_error() {
    let e = single_error(
        &with_image("registry.fly.io/X:Y"),
        6,
        10,
        Some("spec.image"),
    );
    assert!(e.message.contains("not a valid image reference"), "{e}");
    assert!(
        e.message.contains("repository `X` has uppercase letters"),
        "{e}"
    );
    assert!(
        e.message
            .contains("[HOST[:PORT]/]REPOSITORY[:TAG][@sha256:DIGEST]"),
        "{e}"
    );
    assert!(e.help.as_deref().unwrap().starts_with("write `x`"), "{e}");
}

#[test]
fn image_with_non_ascii_is_an_error() {
    let e = single_error(&with_image("héllo/ünï:cødé"), 6, 10, Some("spec.image"));
    assert!(e.message.contains("`é` (U+00E9, not ASCII)"), "{e}");
}

#[test]
fn image_with_a_short_digest_is_an_error() {
    let e = single_error(&with_image("x@sha256:abc"), 6, 10, Some("spec.image"));
    assert!(
        e.message
            .contains("expected `sha256:` and 64 lowercase hex digits, found 3 characters"),
        "{e}"
    );
    assert!(e.help.is_some(), "{e}");
}

#[test]
fn image_with_a_huge_tag_is_an_error_that_stays_short() {
    let tag = "a".repeat(20_000);
    let e = single_error(
        &with_image(&format!("registry.fly.io/web:{tag}")),
        6,
        10,
        Some("spec.image"),
    );
    assert!(
        e.message
            .contains("the tag is 20000 characters long: at most 128"),
        "{e}"
    );
    assert!(e.to_string().len() < 400, "the tag is not echoed back");
}

#[test]
fn latest_is_a_warning_and_a_digest_or_deployment_tag_is_not() {
    let w = single_warning(
        &with_image("registry.fly.io/web:latest"),
        6,
        10,
        "spec.image",
    );
    assert!(w.message.contains("mutable tag `latest`"), "{w}");
    assert!(
        w.message
            .contains("makes rollbacks and drift detection unreliable"),
        "{w}"
    );
    assert_eq!(
        w.help.as_deref(),
        Some(
            "pin a deployment tag or digest, e.g. registry.fly.io/web:deployment-<id> or registry.fly.io/web@sha256:<digest>"
        )
    );
    for pinned in [
        format!("registry.fly.io/web:latest@sha256:{HEX64}"),
        format!("registry.fly.io/web@sha256:{HEX64}"),
        "registry.fly.io/web:deployment-01KKWE7CCCJ51WE7WX6WN2788H".to_owned(),
        "localhost:5000/team/web:v1.2.3".to_owned(),
    ] {
        let set = load_str(Path::new("m.yaml"), &with_image(&pinned)).unwrap();
        assert!(
            set.warnings.is_empty(),
            "{pinned}: {}",
            render(&set.warnings)
        );
    }
    // No tag at all stays an error: nothing is pinned (docs/manifests.md, `image`).
    let e = single_error(
        &with_image("registry.fly.io/web"),
        6,
        10,
        Some("spec.image"),
    );
    assert!(e.message.contains("no tag or digest"), "{e}");
}

#[test]
fn env_names_must_be_portable() {
    let text = GOOD.replace("DEBUG: \"no\"", "\"BAD KEY\": \"1\"\n    9LIVES: \"x\"");
    let errors = errors_of(&text);
    let got: Vec<_> = errors
        .iter()
        .map(|e| {
            (
                e.line,
                e.column,
                e.field.as_deref().unwrap(),
                e.help.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (11, 5, "spec.env.BAD KEY", Some("e.g. `BAD_KEY`")),
            (12, 5, "spec.env.9LIVES", Some("e.g. `_9LIVES`")),
        ],
        "{}",
        render(&errors)
    );
    assert!(
        errors[0]
            .message
            .contains("not a portable environment variable name"),
        "{}",
        render(&errors)
    );
    assert!(errors[0].message.contains("[A-Za-z_][A-Za-z0-9_]*"));
    let set = load_str(
        Path::new("m.yaml"),
        &GOOD.replace("DEBUG:", "_under_score9:"),
    )
    .unwrap();
    assert!(set.warnings.is_empty());
}

#[test]
fn env_var_references_must_be_portable_names() {
    let text = GOOD.replace(
        "  env:\n",
        "  deploy: {drain: {oban: {databaseUrlEnv: LEI-DB, queues: [analysis]}}}\n  env:\n",
    );
    let e = single_error(&text, 10, 43, Some("spec.deploy.drain.oban.databaseUrlEnv"));
    assert!(e.message.contains("`LEI-DB` is not a portable"), "{e}");
    assert_eq!(e.help.as_deref(), Some("e.g. `LEI_DB`"));
}

#[test]
fn unknown_region_is_a_warning_at_the_key() {
    let w = single_warning(
        &GOOD.replace("{iad: 2}", "{iad: 2, xxx: 1}"),
        9,
        25,
        "spec.processGroups.app.regions.xxx",
    );
    assert!(w.message.starts_with("unknown Fly region `xxx`"), "{w}");
    assert!(w.message.contains("ams arn atl"), "{w}");
    assert_eq!(
        w.help.as_deref(),
        Some(
            "check `fly platform regions` for Fly's regions today; if it lists this code, opsctl's list is out of date"
        ),
        "no far-fetched suggestion"
    );
    let w = single_warning(
        &GOOD.replace("{iad: 2}", "{orx: 2}"),
        9,
        17,
        "spec.processGroups.app.regions.orx",
    );
    assert!(
        w.help
            .as_deref()
            .unwrap()
            .starts_with("did you mean `ord`?"),
        "{w}"
    );
    let w = single_warning(
        &GOOD.replace("{iad: 2}", "{iad: 2, aid: 1}"),
        9,
        25,
        "spec.processGroups.app.regions.aid",
    );
    assert!(
        w.help
            .as_deref()
            .unwrap()
            .starts_with("did you mean `iad`?"),
        "{w}"
    );
    // A code that is not three lowercase letters stays an error.
    let e = single_error(
        &GOOD.replace("{iad: 2}", "{IAD: 2}"),
        9,
        17,
        Some("spec.processGroups.app.regions.IAD"),
    );
    assert!(e.message.contains("three lowercase letters"), "{e}");
}

#[test]
fn fail_after_must_be_shorter_than_wait_timeout() {
    let deploy = |d: &str| GOOD.replace("  env:\n", &format!("  deploy: {{{d}}}\n  env:\n"));
    let e = single_error(
        &deploy("failAfter: 1h, waitTimeout: 5m"),
        10,
        23,
        Some("spec.deploy.failAfter"),
    );
    assert_eq!(
        e.message,
        "failAfter 1h is not shorter than waitTimeout 5m: the wait would time out before a critical check could ever fail the step"
    );
    assert!(e.help.as_deref().unwrap().contains("failAfter: 30s"), "{e}");
    // Equal is refused too.
    single_error(
        &deploy("failAfter: 5m, waitTimeout: 5m"),
        10,
        23,
        Some("spec.deploy.failAfter"),
    );
    // With failAfter left at its default, the error points at waitTimeout.
    let e = single_error(
        &deploy("waitTimeout: 20s"),
        10,
        25,
        Some("spec.deploy.waitTimeout"),
    );
    assert!(e.message.contains("failAfter 30s (the default)"), "{e}");
    let set = load_str(
        Path::new("m.yaml"),
        &deploy("failAfter: 10s, waitTimeout: 20s"),
    )
    .unwrap();
    assert!(set.warnings.is_empty(), "{}", render(&set.warnings));
    // A zero waitTimeout gets its own error only.
    let e = single_error(
        &deploy("waitTimeout: 0s"),
        10,
        25,
        Some("spec.deploy.waitTimeout"),
    );
    assert!(e.message.contains("waitTimeout is zero"), "{e}");
}
