//! The temporary machine of a release command, built as flyctl builds it (NOTES.md §6.2 step
//! 3): config from an app machine of the first process group, the new image, the command as
//! `init.cmd` (split like a shell would, without one), `restart: no`, `auto_destroy`,
//! `dns.skip_registration`, group `fly_app_release_command`; region the primary one.

use opsctl_controllers::diff::{desired_size, is_platform_env};
use opsctl_controllers::observed::CpuKind;
use opsctl_crds::FlyApp;
use serde_json::{Value, json};

use super::RELEASE_COMMAND_GROUP;
use crate::fly::wire::{self, META_PLATFORM_VERSION, META_PROCESS_GROUP, Machine, MachineConfig};

/// The group whose machines lend their config: `app` (Fly's default) if the manifest has it,
/// else its first group (flyctl's `DefaultProcessName`).
fn first_group(app: &FlyApp) -> &str {
    let groups = &app.spec.process_groups;
    if groups.contains_key("app") {
        "app"
    } else {
        groups.keys().next().map_or("app", String::as_str)
    }
}

fn group_of(m: &Machine) -> Option<&str> {
    let c = m.config.as_ref()?;
    (c.metadata.get(META_PLATFORM_VERSION)? == "v2" && m.state != "destroyed").then(|| {
        c.metadata
            .get(META_PROCESS_GROUP)
            .map_or("app", String::as_str)
    })
}

/// The machine of the first group with the most memory (flyctl's `inferReleaseCommandGuest`).
fn template<'a>(app: &FlyApp, machines: &'a [Machine]) -> Option<&'a Machine> {
    let group = first_group(app);
    machines
        .iter()
        .filter(|m| group_of(m) == Some(group))
        .max_by_key(|m| {
            m.config
                .as_ref()
                .and_then(|c| c.guest.as_ref())
                .map_or(0, |g| g.memory_mb)
        })
}

/// The region: the manifest's primary region, else the template's, else any machine's.
pub(super) fn release_region(app: &FlyApp, machines: &[Machine]) -> Option<String> {
    app.spec
        .primary_region
        .clone()
        .or_else(|| template(app, machines).map(|m| m.region.clone()))
        .or_else(|| machines.first().map(|m| m.region.clone()))
        .filter(|r| !r.is_empty())
}

/// The temporary machine's config, as flyctl's `ToReleaseMachineConfig` builds it: the
/// manifest's env plus the template's platform env, `RELEASE_COMMAND=1`; the template's guest
/// (else the manifest's size, else `shared-cpu-2x`) and `stop_config`; `init.cmd` = `argv`;
/// `restart.policy: no`, `auto_destroy`, `dns.skip_registration`; metadata
/// `fly_platform_version: v2`, `fly_process_group: fly_app_release_command`. No services and
/// no checks: nothing routes to it and nothing probes it.
pub(super) fn release_config(
    app: &FlyApp,
    machines: &[Machine],
    argv: &[String],
    image: &str,
) -> MachineConfig {
    let from = template(app, machines).and_then(|m| m.config.as_ref());
    let mut env = app.spec.env.clone();
    if let Some(c) = from {
        env.extend(
            c.env
                .iter()
                .filter(|(k, _)| is_platform_env(k))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    env.insert("RELEASE_COMMAND".into(), "1".into());
    env.insert("FLY_PROCESS_GROUP".into(), RELEASE_COMMAND_GROUP.into());
    if let Some(region) = &app.spec.primary_region {
        env.insert("PRIMARY_REGION".into(), region.clone());
    }
    let guest = from
        .and_then(|c| c.guest.clone())
        .or_else(|| {
            desired_size(app, first_group(app)).map(|g| wire::Guest {
                cpu_kind: match g.cpu_kind {
                    CpuKind::Shared => "shared".into(),
                    CpuKind::Performance => "performance".into(),
                },
                cpus: g.cpus,
                memory_mb: g.memory_mb,
                extra: Default::default(),
            })
        })
        .unwrap_or_else(|| wire::Guest {
            cpu_kind: "shared".into(),
            cpus: 2,
            memory_mb: 512,
            extra: Default::default(),
        });
    let mut init = json!({"cmd": argv});
    if let Some(swap) = from.and_then(|c| c.extra.get("init")?.get("swap_size_mb").cloned()) {
        init["swap_size_mb"] = swap;
    }
    let mut extra = serde_json::Map::new();
    extra.insert("init".into(), init);
    extra.insert("restart".into(), json!({"policy": "no"}));
    extra.insert("auto_destroy".into(), Value::Bool(true));
    extra.insert("dns".into(), json!({"skip_registration": true}));
    if let Some(stop) = from.and_then(|c| c.extra.get("stop_config")) {
        extra.insert("stop_config".into(), stop.clone());
    }
    let mut metadata = std::collections::BTreeMap::new();
    metadata.insert(META_PLATFORM_VERSION.into(), "v2".into());
    metadata.insert(META_PROCESS_GROUP.into(), RELEASE_COMMAND_GROUP.into());
    MachineConfig {
        image: image.to_owned(),
        env,
        metadata,
        guest: Some(guest),
        services: Vec::new(),
        checks: Default::default(),
        extra,
    }
}

/// Split `cmd` into words as a POSIX shell would, **without a shell**: whitespace separates
/// words; `'…'` is literal; `"…"` keeps spaces and honours `\"`, `\\`, `\$` and `` \` ``; a
/// backslash outside quotes escapes the next character. Nothing is expanded: no variables,
/// globs, pipes or `&&` (write `sh -c '…'` for those). flyctl does the same with
/// `shlex.Split`.
///
/// # Errors
/// An unbalanced quote, a trailing backslash, or no word at all.
pub fn split_command(cmd: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unbalanced single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unbalanced double quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unbalanced double quote".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err("trailing backslash".into()),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("no command".into());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_a_shell_without_one() {
        let ok = |s: &str| split_command(s).unwrap();
        assert_eq!(ok("/app/bin/migrate"), ["/app/bin/migrate"]);
        assert_eq!(
            ok("  bin/rails   db:migrate  "),
            ["bin/rails", "db:migrate"]
        );
        assert_eq!(
            ok(r#"/app/bin/lei eval "Lei.Release.migrate(\"x\")""#),
            ["/app/bin/lei", "eval", r#"Lei.Release.migrate("x")"#]
        );
        assert_eq!(ok("sh -c 'a && b $X'"), ["sh", "-c", "a && b $X"]);
        assert_eq!(ok(r"a\ b ''"), ["a b", ""]);
        assert_eq!(
            ok("echo $HOME *"),
            ["echo", "$HOME", "*"],
            "nothing expanded"
        );
        for bad in ["", "   ", "'open", "\"open", "trailing\\"] {
            assert!(split_command(bad).is_err(), "{bad:?}");
        }
    }
}
