//! Loading manifests: a directory of YAML files (recursively, `*.yaml`/`*.yml`, multi-document
//! files allowed) into a [`ManifestSet`], strictly (DESIGN.md §3). Start with [`load_dir`].
//!
//! Loading runs every check on every document of every file and reports every problem, each as
//! a [`Diagnostic`] with file, line, column, field path, what was expected and how to fix it.
//! A set with any error is rejected whole ([`LoadError`]); warnings travel apart. Nothing here
//! decides anything about Fly: the typed set goes to `opsctl-controllers`.
//!
//! The passes, each in its own module:
//! 1. `tree`: text → position-carrying YAML nodes; tabs, syntax errors, duplicate keys
//!    (`path` names and finds fields in that tree).
//! 2. envelope (here): `apiVersion`, `kind`, `metadata`, `spec`; dispatch on `kind`.
//! 3. `de`: nodes → typed spec, going on after a mistake ("quote it", wrong types, unknown
//!    fields), with the values' own positions.
//! 4. `validate`: rules beyond types, per manifest; then (here) rules across manifests.
//!
//! Deliberately not done: `flyToml` is not followed (the import copies fly.toml into the
//! manifest instead, `crate::import`), hidden files and directories (`.git`, `.opsctl`)
//! are skipped, and symbolic links to directories are not followed (with a warning; see
//! [`load_dir`]).

mod de;
mod path;
mod scalar;
mod spelling;
pub(crate) mod tree;
mod validate;
mod walk;

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::API_VERSION;
use crate::flyapp::FlyAppSpec;
use crate::kinds::{
    AlertRouteSpec, CertWindowSpec, GovernancePolicySpec, HealthSloSpec, MaintenanceScheduleSpec,
    RunbookSpec,
};
use de::{Ctx, NodeDe};
pub(crate) use path::FieldPath;
use tree::{Document, Node, Pos, Value};

pub(crate) use path::FieldPath as FieldPathBuf;
pub(crate) use spelling::suggest as suggest_word;
pub(crate) use validate::Checker;
pub(crate) use validate::path as field_path;

/// `metadata` of any manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// Unique per kind within a manifest set.
    pub name: String,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A loaded `FlyApp` manifest and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct FlyApp {
    /// `metadata`.
    pub metadata: Metadata,
    /// `spec`.
    pub spec: FlyAppSpec,
    /// File it was read from.
    pub file: PathBuf,
}

impl FlyApp {
    /// The Fly app name (`spec.app`, else `metadata.name`).
    pub fn app_name(&self) -> &str {
        self.spec.app_name(&self.metadata.name)
    }

    /// A fingerprint of the desired state (`spec`): 16 hex digits of FNV-1a over its canonical
    /// JSON (struct fields in declaration order, maps sorted). Two manifests with the same
    /// revision ask for the same thing; used to pin out a failed configuration.
    pub fn revision(&self) -> String {
        let bytes = serde_json::to_vec(&self.spec).unwrap_or_default();
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("{hash:016x}")
    }
}

/// A loaded manifest of a kind other than `FlyApp` (`S` is its spec type, see
/// [`crate::kinds`]) and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest<S> {
    /// `metadata`.
    pub metadata: Metadata,
    /// `spec`.
    pub spec: S,
    /// File it was read from.
    pub file: PathBuf,
}

impl<S> Manifest<S> {
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }
}

/// A valid, complete manifest set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestSet {
    /// `FlyApp` manifests, sorted by app name.
    pub apps: Vec<FlyApp>,
    /// `GovernancePolicy` manifests, sorted by name (none: the ADR's defaults apply).
    pub policies: Vec<Manifest<GovernancePolicySpec>>,
    /// `HealthSLO` manifests, sorted by name.
    pub slos: Vec<Manifest<HealthSloSpec>>,
    /// `CertWindow` manifests, sorted by name.
    pub cert_windows: Vec<Manifest<CertWindowSpec>>,
    /// `MaintenanceSchedule` manifests, sorted by name.
    pub schedules: Vec<Manifest<MaintenanceScheduleSpec>>,
    /// `Runbook` manifests, sorted by name.
    pub runbooks: Vec<Manifest<RunbookSpec>>,
    /// `AlertRoute` manifests, sorted by name.
    pub alert_routes: Vec<Manifest<AlertRouteSpec>>,
    /// How many manifest files (`*.yaml`, `*.yml`) were read. 0 means none was found: the set is
    /// valid and empty, and, from [`load_dir`], `warnings` holds "no manifests (*.yaml, *.yml)
    /// found" naming the directory (see [`ManifestSet::found_no_files`]).
    pub files: usize,
    /// Problems that did not make the set invalid.
    pub warnings: Vec<Diagnostic>,
}

impl ManifestSet {
    /// True when no manifest file was found at all, so that a caller can say "no manifests
    /// found" rather than a bare "0 manifests": a wrong `--manifests` directory is the usual
    /// cause. An empty set is still valid (a repository may start with none).
    pub fn found_no_files(&self) -> bool {
        self.files == 0
    }
}

/// One located problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// File, as given to the loader.
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    /// Field path, e.g. `spec.deploy.maxUnavailable`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// The set was rejected whole; every problem found is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} error(s) in manifests", diagnostics.len())]
pub struct LoadError {
    /// Every error, in file then line order.
    pub diagnostics: Vec<Diagnostic>,
    /// Warnings found along the way.
    pub warnings: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostic {
    /// `file:line:column: field: message`, then `  help: …` on its own line when there is help.
    /// Line and column are left out when unknown (0).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        write!(f, ": ")?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Every kind DESIGN.md §3 defines.
pub const KNOWN_KINDS: &[&str] = &[
    "FlyApp",
    "HealthSLO",
    "CertWindow",
    "GovernancePolicy",
    "MaintenanceSchedule",
    "Runbook",
    "AlertRoute",
];

/// The top-level keys of every manifest.
const ENVELOPE: &[&str] = &["apiVersion", "kind", "metadata", "spec"];

/// Load every manifest under `dir`: every `*.yaml` and `*.yml` file, recursively, in sorted
/// path order, skipping hidden files and directories (name starting with `.`). `dir` may also
/// be a single file.
///
/// Symbolic links: a link to a file is read like the file. A link to a directory is **not
/// followed**, with a warning naming it: a GitOps deploy reads the commit (`load_files`), where
/// git stores the link and not the files behind it, so following it here would make `opsctl
/// validate` pass on manifests the deploy never sees (and not following links rules out loops).
/// A dangling link named `*.yaml`/`*.yml` is an error naming it and its target; another
/// dangling link is a warning.
///
/// Diagnostics name files as `dir` joined with the path below it. A directory with no manifest
/// file is a valid, empty set, with the warning "no manifests (*.yaml, *.yml) found"
/// ([`ManifestSet::found_no_files`]).
///
/// # Errors
/// [`LoadError`] listing every problem in every file (unreadable files, dangling links and
/// special files such as FIFOs named `*.yaml` included), sorted by file, line and column;
/// nothing is returned half-parsed.
///
/// # Example
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("opsctl-crds-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// std::fs::write(dir.join("web.yaml"), "\
/// apiVersion: opsctl.dev/v1alpha1
/// kind: FlyApp
/// metadata: {name: web}
/// spec:
///   image: registry.fly.io/web:v1
///   processGroups: {app: {regions: {iad: 1}}}
///   checks: {alive: {type: tcp, port: 8080}}
/// ")?;
/// let set = opsctl_crds::load_dir(&dir)?;
/// assert_eq!(set.apps[0].app_name(), "web");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub fn load_dir(dir: &Path) -> Result<ManifestSet, LoadError> {
    let mut loader = Loader::default();
    let mut files = if dir.is_file() {
        vec![dir.to_path_buf()]
    } else {
        let found = walk::manifest_files(dir);
        loader.errors.extend(found.errors);
        loader.warnings.extend(found.warnings);
        found.files
    };
    files.sort();
    loader.files = files.len();
    if files.is_empty() && loader.errors.is_empty() {
        loader.warnings.push(Diagnostic {
            file: dir.to_path_buf(),
            line: 0,
            column: 0,
            field: None,
            message: "no manifests (*.yaml, *.yml) found".to_owned(),
            help: Some("check the directory: an empty set is valid but manages no app".to_owned()),
        });
    }
    for file in files {
        match fs::read(&file).map(String::from_utf8) {
            Ok(Ok(text)) => loader.add_text(&file, &text),
            Ok(Err(_)) => loader
                .errors
                .push(file_problem(&file, "the file is not UTF-8 text".to_owned())),
            Err(e) => loader
                .errors
                .push(file_problem(&file, format!("cannot read the file: {e}"))),
        }
    }
    loader.finish()
}

/// Load manifests from one YAML text named `file` (the name is used in diagnostics only).
///
/// # Errors
/// As [`load_dir`].
pub fn load_str(file: &Path, text: &str) -> Result<ManifestSet, LoadError> {
    let mut loader = Loader {
        files: 1,
        ..Loader::default()
    };
    loader.add_text(file, text);
    loader.finish()
}

/// Load manifests from in-memory files `(name, text)` — e.g. the manifests of a git commit,
/// read with `git show`. Names are used in diagnostics only; files not ending in `.yaml` or
/// `.yml` are ignored (the caller leaves out hidden directories, as [`load_dir`] does). Files
/// are loaded in name order.
///
/// # Errors
/// As [`load_dir`].
pub fn load_files(files: &[(PathBuf, String)]) -> Result<ManifestSet, LoadError> {
    let mut loader = Loader::default();
    let mut sorted: Vec<&(PathBuf, String)> = files
        .iter()
        .filter(|(name, _)| walk::is_manifest_name(name))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    loader.files = sorted.len();
    for (name, text) in sorted {
        loader.add_text(name, text);
    }
    loader.finish()
}

pub(crate) fn file_problem(file: &Path, message: String) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        field: None,
        message,
        help: None,
    }
}

/// A `FlyApp` read without errors, and where its names were written (for cross-manifest rules).
struct Loaded {
    app: FlyApp,
    name_pos: Pos,
    app_name_pos: Pos,
}

/// A manifest of another kind read without errors, and where its name was written.
struct Named<S> {
    manifest: Manifest<S>,
    name_pos: Pos,
}

#[derive(Default)]
struct Loader {
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    apps: Vec<Loaded>,
    policies: Vec<Named<GovernancePolicySpec>>,
    slos: Vec<Named<HealthSloSpec>>,
    cert_windows: Vec<Named<CertWindowSpec>>,
    schedules: Vec<Named<MaintenanceScheduleSpec>>,
    runbooks: Vec<Named<RunbookSpec>>,
    alert_routes: Vec<Named<AlertRouteSpec>>,
    /// Manifest files found (for [`ManifestSet::files`]).
    files: usize,
}

impl Loader {
    fn add_text(&mut self, file: &Path, text: &str) {
        let parsed = tree::parse(file, text);
        self.errors.extend(parsed.errors);
        for doc in &parsed.documents {
            self.document(file, doc);
        }
    }

    fn error(
        &mut self,
        file: &Path,
        pos: Pos,
        field: Option<&str>,
        message: String,
        help: Option<String>,
    ) {
        self.errors.push(Diagnostic {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            field: field.map(str::to_owned),
            message,
            help,
        });
    }

    /// One document: the envelope, then the kind's own reading and rules.
    fn document(&mut self, file: &Path, doc: &Document) {
        let root = &doc.root;
        let Value::Map(entries) = &root.value else {
            self.error(
                file,
                root.pos,
                None,
                format!("a manifest must be a mapping with apiVersion, kind, metadata and spec, found {}", root.describe()),
                None,
            );
            return;
        };
        for entry in entries {
            if let Some((key, _)) = entry.key.scalar()
                && !ENVELOPE.contains(&key)
            {
                let help = spelling::suggest(key, ENVELOPE).map(|s| format!("did you mean `{s}`?"));
                self.error(
                        file,
                        entry.key.pos,
                        Some(key),
                        format!("unknown field `{key}`; a manifest has only `apiVersion`, `kind`, `metadata` and `spec`"),
                        help,
                    );
            }
        }
        let missing = |name: &str| {
            format!(
                "missing field `{name}`: every manifest has apiVersion, kind, metadata and spec"
            )
        };

        match root.get("apiVersion") {
            None => self.error(
                file,
                root.pos,
                Some("apiVersion"),
                missing("apiVersion"),
                Some(format!("add apiVersion: {API_VERSION}")),
            ),
            Some(e) => match e.value.scalar() {
                Some((API_VERSION, _)) => {}
                _ => self.error(
                    file,
                    e.value.pos,
                    Some("apiVersion"),
                    format!(
                        "unsupported apiVersion {}: expected `{API_VERSION}`",
                        e.value.describe()
                    ),
                    None,
                ),
            },
        }

        let metadata = match root.get("metadata") {
            None => {
                self.error(
                    file,
                    root.pos,
                    Some("metadata"),
                    missing("metadata"),
                    Some("add metadata: {name: NAME}".to_owned()),
                );
                None
            }
            Some(e) => self.read::<Metadata>(file, &e.value, "metadata", validate::metadata, root),
        };

        let Some(spec) = root.get("spec") else {
            self.error(file, root.pos, Some("spec"), missing("spec"), None);
            return;
        };
        let Some(kind) = root.get("kind") else {
            self.error(
                file,
                root.pos,
                Some("kind"),
                missing("kind"),
                Some(format!("one of {}", KNOWN_KINDS.join(", "))),
            );
            return;
        };
        let kind_pos = kind.value.pos;
        let Some((kind, _)) = kind.value.scalar() else {
            self.error(
                file,
                kind_pos,
                Some("kind"),
                format!("expected a kind name, found {}", kind.value.describe()),
                None,
            );
            return;
        };
        match kind {
            "FlyApp" => {
                let spec = self.read::<FlyAppSpec>(file, &spec.value, "spec", |_, _| {}, root);
                if let (Some(metadata), Some(spec)) = (metadata, spec) {
                    let mut checker = validate::Checker::new(file, root);
                    validate::flyapp(&mut checker, &metadata, &spec);
                    self.warnings.extend(checker.warnings);
                    if !checker.errors.is_empty() {
                        self.errors.extend(checker.errors);
                        return;
                    }
                    let name_pos =
                        path::locate(root, &FieldPath::default().key("metadata").key("name"))
                            .0
                            .pos;
                    let app_name_pos = match root.get("spec").and_then(|s| s.value.get("app")) {
                        Some(e) => e.value.pos,
                        None => name_pos,
                    };
                    self.apps.push(Loaded {
                        app: FlyApp {
                            metadata,
                            spec,
                            file: file.to_path_buf(),
                        },
                        name_pos,
                        app_name_pos,
                    });
                }
            }
            "GovernancePolicy" => {
                let m = self.kind(
                    file,
                    root,
                    metadata,
                    &spec.value,
                    crate::kinds::governance::rules,
                );
                self.policies.extend(m);
            }
            "HealthSLO" => {
                let m = self.kind(
                    file,
                    root,
                    metadata,
                    &spec.value,
                    crate::kinds::health_slo::rules,
                );
                self.slos.extend(m);
            }
            "CertWindow" => {
                let m = self.kind(
                    file,
                    root,
                    metadata,
                    &spec.value,
                    crate::kinds::cert_window::rules,
                );
                self.cert_windows.extend(m);
            }
            "MaintenanceSchedule" => {
                let m = self.kind(
                    file,
                    root,
                    metadata,
                    &spec.value,
                    crate::kinds::maintenance::rules,
                );
                self.schedules.extend(m);
            }
            "Runbook" => {
                let m = self.kind(
                    file,
                    root,
                    metadata,
                    &spec.value,
                    crate::kinds::runbook::rules,
                );
                self.runbooks.extend(m);
            }
            "AlertRoute" => {
                let m = self.kind(
                    file,
                    root,
                    metadata,
                    &spec.value,
                    crate::kinds::alert_route::rules,
                );
                self.alert_routes.extend(m);
            }
            other => {
                let help =
                    spelling::suggest(other, KNOWN_KINDS).map(|s| format!("did you mean `{s}`?"));
                self.error(
                    file,
                    kind_pos,
                    Some("kind"),
                    format!(
                        "unknown kind `{other}`: known kinds are {}",
                        KNOWN_KINDS.join(", ")
                    ),
                    help,
                );
            }
        }
    }

    /// A manifest of a kind other than `FlyApp`: its spec read as `S` and checked by `rules`;
    /// `None` when the metadata or the spec had an error (already recorded).
    fn kind<S: serde::de::DeserializeOwned>(
        &mut self,
        file: &Path,
        root: &Node,
        metadata: Option<Metadata>,
        spec: &Node,
        rules: impl FnOnce(&mut Checker<'_>, &S),
    ) -> Option<Named<S>> {
        let spec = self.read::<S>(file, spec, "spec", rules, root)?;
        let metadata = metadata?;
        let name_pos = path::locate(root, &FieldPath::default().key("metadata").key("name"))
            .0
            .pos;
        Some(Named {
            manifest: Manifest {
                metadata,
                spec,
                file: file.to_path_buf(),
            },
            name_pos,
        })
    }

    /// Read `node` as a `T` at field `name`, then run `rules` on it when it was read cleanly.
    /// Every problem goes to `self.errors`; `None` unless `T` was read without any.
    fn read<T: serde::de::DeserializeOwned>(
        &mut self,
        file: &Path,
        node: &Node,
        name: &str,
        rules: impl FnOnce(&mut validate::Checker<'_>, &T),
        root: &Node,
    ) -> Option<T> {
        let ctx = Ctx::new(file);
        let result = T::deserialize(NodeDe::new(node, FieldPath::default().key(name), &ctx));
        let mut errors = ctx.errors.into_inner();
        let value = match result {
            Ok(value) => Some(value),
            Err(e) => {
                errors.push(e.into_diagnostic(file));
                None
            }
        };
        if !errors.is_empty() {
            self.errors.extend(errors);
            return None;
        }
        let value = value?;
        let mut checker = validate::Checker::new(file, root);
        rules(&mut checker, &value);
        self.warnings.extend(checker.warnings);
        if checker.errors.is_empty() {
            Some(value)
        } else {
            self.errors.extend(checker.errors);
            None
        }
    }

    /// Rules across manifests, then the verdict.
    fn finish(mut self) -> Result<ManifestSet, LoadError> {
        let mut by_name: HashMap<&str, &Loaded> = HashMap::new();
        let mut by_app: HashMap<&str, &Loaded> = HashMap::new();
        let mut duplicates = Vec::new();
        for loaded in &self.apps {
            let name = loaded.app.metadata.name.as_str();
            if let Some(first) = by_name.get(name) {
                duplicates.push(Diagnostic {
                    file: loaded.app.file.clone(),
                    line: loaded.name_pos.line,
                    column: loaded.name_pos.column,
                    field: Some("metadata.name".to_owned()),
                    message: format!(
                        "duplicate FlyApp `{name}`: already defined at {}:{}:{}",
                        first.app.file.display(),
                        first.name_pos.line,
                        first.name_pos.column
                    ),
                    help: Some("names are unique per kind; rename or remove one".to_owned()),
                });
            } else {
                by_name.insert(name, loaded);
            }
            let app = loaded.app.app_name();
            if let Some(first) = by_app.get(app) {
                if first.app.metadata.name != loaded.app.metadata.name {
                    duplicates.push(Diagnostic {
                        file: loaded.app.file.clone(),
                        line: loaded.app_name_pos.line,
                        column: loaded.app_name_pos.column,
                        field: Some(if loaded.app.spec.app.is_some() { "spec.app" } else { "metadata.name" }.to_owned()),
                        message: format!(
                            "Fly app `{app}` is also managed by FlyApp `{}` at {}:{}:{}: two manifests would fight over one app",
                            first.app.metadata.name,
                            first.app.file.display(),
                            first.app_name_pos.line,
                            first.app_name_pos.column
                        ),
                        help: None,
                    });
                }
            } else {
                by_app.insert(app, loaded);
            }
        }
        self.errors.extend(duplicates);
        let policies = unique(&mut self.errors, "GovernancePolicy", self.policies);
        let slos = unique(&mut self.errors, "HealthSLO", self.slos);
        let cert_windows = unique(&mut self.errors, "CertWindow", self.cert_windows);
        one_schedule(&mut self.errors, &self.schedules);
        let schedules = unique(&mut self.errors, "MaintenanceSchedule", self.schedules);
        let runbooks = unique(&mut self.errors, "Runbook", self.runbooks);
        let alert_routes = unique(&mut self.errors, "AlertRoute", self.alert_routes);

        let order = |a: &Diagnostic, b: &Diagnostic| {
            (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column))
        };
        self.errors.sort_by(order);
        self.warnings.sort_by(order);
        if !self.errors.is_empty() {
            return Err(LoadError {
                diagnostics: self.errors,
                warnings: self.warnings,
            });
        }
        let mut apps: Vec<FlyApp> = self.apps.into_iter().map(|l| l.app).collect();
        apps.sort_by(|a, b| (a.app_name(), &a.file).cmp(&(b.app_name(), &b.file)));
        Ok(ManifestSet {
            apps,
            policies,
            slos,
            cert_windows,
            schedules,
            runbooks,
            alert_routes,
            files: self.files,
            warnings: self.warnings,
        })
    }
}

/// At most one `MaintenanceSchedule` per set: it applies to every `FlyApp`, so a second one
/// would leave it unclear which interval holds. Each extra one is an error at its name
/// (duplicate names are left to [`unique`]).
fn one_schedule(errors: &mut Vec<Diagnostic>, found: &[Named<MaintenanceScheduleSpec>]) {
    let mut sorted: Vec<&Named<MaintenanceScheduleSpec>> = found.iter().collect();
    sorted.sort_by(|a, b| {
        (&a.manifest.file, a.name_pos.line).cmp(&(&b.manifest.file, b.name_pos.line))
    });
    let Some(first) = sorted.first() else { return };
    for extra in sorted.iter().skip(1) {
        if extra.manifest.metadata.name == first.manifest.metadata.name {
            continue;
        }
        errors.push(Diagnostic {
            file: extra.manifest.file.clone(),
            line: extra.name_pos.line,
            column: extra.name_pos.column,
            field: Some("metadata.name".to_owned()),
            message: format!(
                "a second MaintenanceSchedule `{}`: `{}` at {}:{}:{} already schedules every app",
                extra.manifest.metadata.name,
                first.manifest.metadata.name,
                first.manifest.file.display(),
                first.name_pos.line,
                first.name_pos.column
            ),
            help: Some("merge them into one MaintenanceSchedule".to_owned()),
        });
    }
}

/// The manifests of one kind sorted by name, with an error for each name used twice.
fn unique<S>(
    errors: &mut Vec<Diagnostic>,
    kind: &str,
    mut found: Vec<Named<S>>,
) -> Vec<Manifest<S>> {
    found.sort_by(|a, b| {
        (&a.manifest.metadata.name, &a.manifest.file, a.name_pos.line).cmp(&(
            &b.manifest.metadata.name,
            &b.manifest.file,
            b.name_pos.line,
        ))
    });
    let mut kept: Vec<Named<S>> = Vec::new();
    for named in found {
        if let Some(first) = kept
            .iter()
            .find(|k| k.manifest.metadata.name == named.manifest.metadata.name)
        {
            errors.push(Diagnostic {
                file: named.manifest.file.clone(),
                line: named.name_pos.line,
                column: named.name_pos.column,
                field: Some("metadata.name".to_owned()),
                message: format!(
                    "duplicate {kind} `{}`: already defined at {}:{}:{}",
                    named.manifest.metadata.name,
                    first.manifest.file.display(),
                    first.name_pos.line,
                    first.name_pos.column
                ),
                help: Some("names are unique per kind; rename or remove one".to_owned()),
            });
        } else {
            kept.push(named);
        }
    }
    kept.into_iter().map(|n| n.manifest).collect()
}

#[cfg(test)]
mod tests;
