//! `[[vm]]` (and its aliases `[[compute]]`, `[[computes]]`): machine size and memory, read as
//! flyctl combines them (`internal/appconfig`, NOTES.md §7.1), before [`super`] gives each
//! entry to the process groups it applies to.

use super::reader::{Cx, Field, TKind, Tbl};
use crate::flyapp::{VM_PRESETS, is_vm_preset};

/// One `[[vm]]` (or `[[compute]]`) entry, before it is given to process groups.
pub(crate) struct VmEntry {
    pub path: String,
    pub offset: usize,
    pub size: String,
    pub memory_mb: Option<u32>,
    /// Groups it applies to; empty: every group without a more specific entry.
    pub processes: Vec<String>,
}

/// `[[vm]]`: size, memory, cpus and cpu_kind, as flyctl combines them (cpus and cpu_kind
/// override the preset's).
pub(crate) fn vm(cx: &mut Cx<'_>, mut t: Tbl<'_>) -> Option<VmEntry> {
    let size_field = t.take("size");
    let size = size_field.as_ref().and_then(|v| v.str(cx));
    let memory = t
        .take("memory")
        .and_then(|v| memory_mb(cx, &v).map(|mb| (mb, v)));
    let memory_mb_field = t
        .take("memory_mb")
        .and_then(|v| v.uint(cx, u32::MAX, false).map(|mb| (mb, v)));
    let cpus = t.take("cpus").and_then(|v| v.uint(cx, 64, false));
    let cpu_kind = t.take("cpu_kind").and_then(|v| {
        let k = v.str(cx)?;
        if matches!(k.as_str(), "shared" | "performance") {
            Some(k)
        } else {
            cx.error(
                &v,
                format!("unknown cpu_kind `{k}`: expected shared or performance"),
                None,
            );
            None
        }
    });
    let processes = t
        .take("processes")
        .and_then(|v| v.str_list(cx))
        .unwrap_or_default();
    let (path, offset) = (t.path.clone(), t.val.span.start);
    let table = t.field();
    t.finish(cx, |key| match key {
        "gpus" | "gpu_kind" => "GPU machines are not supported by a FlyApp; dropped".to_owned(),
        "kernel_args" | "host_dedication_id" | "persist_rootfs" => {
            "not carried by a FlyApp vm; dropped".to_owned()
        }
        _ => "not a vm setting opsctl knows; dropped".to_owned(),
    });

    let (preset_kind, preset_cpus) = size
        .as_deref()
        .and_then(preset_parts)
        .unwrap_or(("shared", 1));
    let size = if cpus.is_some() || cpu_kind.is_some() {
        let kind = cpu_kind.as_deref().unwrap_or(preset_kind);
        let derived = match kind {
            "performance" => format!("performance-{}x", cpus.unwrap_or(preset_cpus)),
            _ => format!("shared-cpu-{}x", cpus.unwrap_or(preset_cpus)),
        };
        if let Some(s) = size.as_deref().filter(|s| *s != derived) {
            cx.note(offset, format!("{path}: cpu_kind/cpus override size `{s}` (as flyctl applies them): imported as `{derived}`"));
        }
        derived
    } else if let Some(s) = size {
        s
    } else {
        cx.note(
            offset,
            format!("{path}: no size; Fly's default shared-cpu-1x written out"),
        );
        "shared-cpu-1x".to_owned()
    };
    if !is_vm_preset(&size) {
        let at = size_field.unwrap_or(table);
        cx.error(
            &at,
            format!(
                "{}: `{size}` is not a Fly machine size: expected one of {}",
                path,
                VM_PRESETS.join(", ")
            ),
            None,
        );
        return None;
    }
    let memory_mb = match (memory, memory_mb_field) {
        (Some((a, _)), Some((b, v))) if a != b => {
            cx.note(
                v.val.span.start,
                format!("{path}: memory ({a} MB) and memory_mb ({b}) disagree; memory_mb wins"),
            );
            Some((b, v))
        }
        (_, Some(m)) | (Some(m), None) => Some(m),
        (None, None) => None,
    };
    if let Some((mb, v)) = &memory_mb
        && (*mb == 0 || mb % 256 != 0)
    {
        cx.error(
            v,
            format!(
                "{mb} MB is not a positive multiple of 256 (Fly allocates memory in 256 MB steps)"
            ),
            None,
        );
        return None;
    }
    Some(VmEntry {
        path,
        offset,
        size,
        memory_mb: memory_mb.map(|(mb, _)| mb),
        processes,
    })
}

/// `shared-cpu-2x` → (`shared`, 2); `performance-4x` → (`performance`, 4).
fn preset_parts(size: &str) -> Option<(&'static str, u32)> {
    if let Some(n) = size
        .strip_prefix("shared-cpu-")
        .and_then(|r| r.strip_suffix('x'))
    {
        return Some(("shared", n.parse().ok()?));
    }
    let n = size.strip_prefix("performance-")?.strip_suffix('x')?;
    Some(("performance", n.parse().ok()?))
}

/// `memory`: an integer is MB; a string is a number with an optional unit (`"1gb"`, `"512mb"`,
/// `"8g"`, `"4G"`; binary multiples, as flyctl's `helpers.ParseSize` with docker's
/// `RAMInBytes`), MB when it has none.
fn memory_mb(cx: &mut Cx<'_>, v: &Field<'_>) -> Option<u32> {
    let mb = match &v.val.kind {
        TKind::Int(n) => u32::try_from(*n).ok(),
        TKind::Str(s) => parse_size_mb(s),
        _ => None,
    };
    match mb {
        Some(mb) => {
            cx.carry(v);
            Some(mb)
        }
        None => {
            cx.error(
                v,
                format!(
                    "{}: expected a size like \"1gb\", \"512mb\" or 1024 (MB), found {}",
                    v.path,
                    v.val.show()
                ),
                None,
            );
            None
        }
    }
}

/// `"1gb"` → 1024, `"512mb"` → 512, `"512"` → 512, `"1.5g"` → 1536.
pub(crate) fn parse_size_mb(s: &str) -> Option<u32> {
    let s = s.trim().to_ascii_lowercase();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let factor = match unit {
        "" | "m" => 1.0,
        "k" => 1.0 / 1024.0,
        "g" => 1024.0,
        "t" => 1024.0 * 1024.0,
        _ => return None,
    };
    let mb = number * factor;
    (mb.fract() == 0.0 && mb >= 0.0 && mb <= f64::from(u32::MAX)).then_some(mb as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size_mb("1gb"), Some(1024));
        assert_eq!(parse_size_mb("8g"), Some(8192));
        assert_eq!(parse_size_mb("4G"), Some(4096));
        assert_eq!(parse_size_mb("512mb"), Some(512));
        assert_eq!(parse_size_mb("512"), Some(512));
        assert_eq!(parse_size_mb("1.5gb"), Some(1536));
        assert_eq!(parse_size_mb("1GiB"), Some(1024));
        assert_eq!(parse_size_mb("lots"), None);
        assert_eq!(parse_size_mb("1x"), None);
    }

    #[test]
    fn presets() {
        assert_eq!(preset_parts("shared-cpu-2x"), Some(("shared", 2)));
        assert_eq!(preset_parts("performance-16x"), Some(("performance", 16)));
        assert_eq!(preset_parts("huge"), None);
    }
}
