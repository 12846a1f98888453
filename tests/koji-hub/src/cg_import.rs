//! `CGImport`'s checks, in the order of DESIGN.md "Koji hub facts" (koji's `CG_Importer`:
//! `get_metadata`, `assert_cg_access`, `prep_build`, `prep_brs`, `prep_outputs`,
//! `check_build_dir`, then the archive checks of `import_archive_internal`), each failing
//! with the fault code and text of the real hub — plus one check of the double's own, an
//! output's arch against its buildroot's (README.md). Nothing here changes the hub: the result is
//! an [`ImportPlan`] that [`crate::methods`] applies, so a refused import leaves no trace,
//! as the real hub's rolled-back transaction does.

use crate::digest::{Verifier, archive_checksum_type};
use crate::fault::{Fault, py_repr, py_str, py_str_repr};
use crate::state::{Build, HubState, build_state, python_type};
use serde_json::{Map, Value as Json};
use std::collections::BTreeSet;

/// Read access to the upload area (`work/`) and the build directories.
pub trait UploadArea {
    /// Full path of `work/<relative>`, as the hub names it in its messages.
    fn display_path(&self, relative: &str) -> String;
    /// Size of `work/<relative>`, or `None` when there is no such file.
    fn size(&self, relative: &str) -> Option<u64>;
    /// Hex digest of `work/<relative>` with `verifier`.
    fn digest(&self, relative: &str, verifier: Verifier) -> std::io::Result<String>;
    /// Text of `work/<relative>` (an uploaded `metadata.json`).
    fn read_text(&self, relative: &str) -> Option<String>;
    /// Whether the build directory of `name-version-release` exists, and its path.
    fn build_dir(&self, name: &str, version: &str, release: &str) -> (bool, String);
}

/// What the import will write, once every check passed.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportPlan {
    /// The reserved build being completed, if the metadata named one.
    pub reserved_build_id: Option<i64>,
    pub name: String,
    pub version: String,
    pub release: String,
    pub epoch: Option<i64>,
    pub source: Option<String>,
    pub extra: Json,
    pub start_ts: f64,
    pub end_ts: f64,
    pub owner: Option<i64>,
    pub cg_id: i64,
    pub task_id: Option<i64>,
    pub btypes: BTreeSet<String>,
    pub buildroots: Vec<Json>,
    pub outputs: Vec<OutputPlan>,
    /// The metadata as the hub stores it in the build directory.
    pub raw_metadata: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputPlan {
    /// Path under `work/`.
    pub relative: String,
    pub filename: String,
    pub size: u64,
    pub checksum: String,
    pub buildroot_id: Json,
    pub kind: OutputKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutputKind {
    Log,
    Archive {
        type_name: String,
        btype: String,
        checksum_type: i64,
        extra: Json,
        components: usize,
    },
}

/// `dict[key]`: the value, or the `KeyError` (or `TypeError` on a non-dict) the hub raises.
pub(crate) fn key<'a>(value: &'a Json, name: &str) -> Result<&'a Json, Fault> {
    match value {
        Json::Object(map) => map.get(name).ok_or_else(|| Fault::key_error(name)),
        Json::String(_) => Err(Fault::python(
            "TypeError",
            "string indices must be integers, not 'str'",
        )),
        Json::Array(_) => Err(Fault::python(
            "TypeError",
            "list indices must be integers or slices, not str",
        )),
        other => Err(Fault::python(
            "TypeError",
            format!("'{}' object is not subscriptable", python_type(other)),
        )),
    }
}

/// `for item in value`, as Python iterates it.
fn items(value: &Json) -> Result<Vec<Json>, Fault> {
    match value {
        Json::Array(items) => Ok(items.clone()),
        Json::Object(map) => Ok(map.keys().cloned().map(Json::String).collect()),
        Json::String(text) => Ok(text.chars().map(|c| Json::String(c.into())).collect()),
        other => Err(Fault::python(
            "TypeError",
            format!("'{}' object is not iterable", python_type(other)),
        )),
    }
}

/// Python truthiness.
fn truthy(value: Option<&Json>) -> bool {
    match value {
        None | Some(Json::Null) | Some(Json::Bool(false)) => false,
        Some(Json::Number(number)) => number.as_f64() != Some(0.0),
        Some(Json::String(text)) => !text.is_empty(),
        Some(Json::Array(items)) => !items.is_empty(),
        Some(Json::Object(map)) => !map.is_empty(),
        Some(Json::Bool(true)) => true,
    }
}

/// `float(value)`.
fn float(value: &Json) -> Result<f64, Fault> {
    match value {
        Json::Number(number) => Ok(number.as_f64().unwrap_or(0.0)),
        Json::String(text) => text.trim().parse().map_err(|_| {
            Fault::python(
                "ValueError",
                format!("could not convert string to float: {}", py_str_repr(text)),
            )
        }),
        other => Err(Fault::python(
            "TypeError",
            format!(
                "float() argument must be a string or a real number, not '{}'",
                python_type(other)
            ),
        )),
    }
}

/// `convert_value(value, cast=int)`: Python's `int()` of a value, or the hub's
/// `ParameterError`.
pub(crate) fn int_value(value: &Json) -> Result<i64, Fault> {
    let converted = match value {
        Json::Null => {
            return Err(Fault::parameter(
                "Invalid type, expected type <class 'int'>",
            ));
        }
        Json::Bool(flag) => Some(i64::from(*flag)),
        Json::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|float| float.trunc() as i64)),
        Json::String(text) => text.trim().parse().ok(),
        Json::Array(_) | Json::Object(_) => None,
    };
    converted.ok_or_else(|| {
        Fault::parameter(format!(
            "Invalid type for value '{}': <class '{}'>, expected type <class 'int'>",
            py_str(value),
            python_type(value)
        ))
    })
}

/// `get_task_id_from_metadata`: the build's `task_id`, or OSBS's
/// `extra.container_koji_task_id`, which must agree when both are given.
fn task_id_from_metadata(build: &Json) -> Result<Option<i64>, Fault> {
    let task_id = build.get("task_id").map(int_value).transpose()?;
    let Some(osbs_task) = build
        .get("extra")
        .and_then(|extra| extra.get("container_koji_task_id"))
    else {
        return Ok(task_id);
    };
    let osbs_task = int_value(osbs_task)?;
    match task_id {
        Some(task_id) if task_id != osbs_task => Err(Fault::generic(format!(
            "CG provided non-matching task_id {task_id} and container_koji_task_id {osbs_task}"
        ))),
        _ => Ok(Some(osbs_task)),
    }
}

fn text_field(value: &Json) -> Result<&str, Fault> {
    value.as_str().ok_or_else(|| {
        Fault::python(
            "TypeError",
            format!("argument of type '{}' is not iterable", python_type(value)),
        )
    })
}

/// `get_metadata`: a dict, a JSON string, or the name of an uploaded `.json` file.
fn get_metadata(
    metadata: &Json,
    directory: &str,
    area: &dyn UploadArea,
) -> Result<(Json, String), Fault> {
    let uploaded = |name: &str| -> Result<String, Fault> {
        area.read_text(&joinpath(&[directory, name])?)
            .ok_or_else(|| Fault::generic(format!("No such file: {name}")))
    };
    let text = match metadata {
        Json::Object(_) => {
            let raw = serde_json::to_string_pretty(metadata).unwrap_or_default();
            return Ok((metadata.clone(), raw));
        }
        Json::Null => uploaded("metadata.json")?,
        Json::String(name) if name.ends_with(".json") => uploaded(name)?,
        Json::String(text) => text.clone(),
        other => {
            return Err(Fault::parameter(format!(
                "Invalid type for value '{}': <class '{}'>, expected type <class 'str'>",
                py_str(other),
                python_type(other)
            )));
        }
    };
    // koji's parse_json: with a `desc` its message is the bare "Invalid json data".
    let parsed: Json = serde_json::from_str(&text)
        .map_err(|_| Fault::generic(format!("Invalid json data: {}", py_str_repr(&text))))?;
    Ok((parsed, text))
}

/// `koji.util.joinpath(work, *segments)`, relative to `work/`: each segment normalized
/// (`""` becomes `.`), and one that is absolute or climbs out refused.
pub fn joinpath(segments: &[&str]) -> Result<String, Fault> {
    let mut joined = String::new();
    for raw in segments {
        let normal = normpath(raw);
        if raw.starts_with('/') || normal == ".." || normal.starts_with("../") {
            return Err(Fault::python(
                "ValueError",
                format!("Invalid path segment: {raw}"),
            ));
        }
        if !joined.is_empty() {
            joined.push('/');
        }
        joined.push_str(&normal);
    }
    Ok(joined)
}

/// `os.path.join` for the hub's relative paths.
pub fn join(directory: &str, name: &str) -> String {
    match (directory.trim_end_matches('/'), name) {
        ("", name) => name.to_owned(),
        (_, name) if name.starts_with('/') => name.to_owned(),
        (dir, name) => format!("{dir}/{name}"),
    }
}

/// The checks of `CGImport(metadata, directory, token)` for the session's `user`.
pub fn plan_import(
    state: &HubState,
    user: Option<i64>,
    metadata: &Json,
    directory: &str,
    token: Option<&str>,
    area: &dyn UploadArea,
) -> Result<ImportPlan, Fault> {
    let (metadata, raw_metadata) = get_metadata(metadata, directory, area)?;

    // metadata_version
    let version = key(&metadata, "metadata_version")?;
    if version.as_f64() != Some(0.0) {
        return Err(Fault::generic(format!(
            "No such metadata version: {}",
            py_repr(version)
        )));
    }

    // the content generator: exists, the only one, and the caller may use it
    let mut cg_id: Option<i64> = None;
    for buildroot in items(key(&metadata, "buildroots")?)? {
        let name = key(key(&buildroot, "content_generator")?, "name")?;
        let cg = state.lookup_cg(name)?;
        match cg_id {
            None => cg_id = Some(cg.id),
            Some(id) if id != cg.id => {
                return Err(Fault::generic(
                    "Koji now support only one content-generator per import",
                ));
            }
            Some(_) => {}
        }
    }
    let cg_id = state.assert_cg(&cg_id.map(Json::from).unwrap_or(Json::Null), user)?;

    // the reservation, or the NVR
    let build = key(&metadata, "build")?;
    let mut reserved_build_id = None;
    if truthy(build.get("build_id")) {
        let build_id = build.get("build_id").cloned().unwrap_or(Json::Null);
        let reserved = state.require_build(&build_id)?;
        let id_text = py_str(&build_id);
        let task_id = task_id_from_metadata(build)?;
        if state.reservations.get(&reserved.id).map(String::as_str) != token || token.is_none() {
            return Err(Fault::generic(format!(
                "Token doesn't match build ID {id_text}"
            )));
        }
        if reserved.cg_id != Some(cg_id) {
            return Err(Fault::generic(format!(
                "Build ID {id_text} is not reserved by this CG"
            )));
        }
        if let Some(task) = reserved.task_id.filter(|task| Some(*task) != task_id) {
            return Err(Fault::generic(format!("Build is owned by task {task}")));
        }
        if reserved.state != build_state::BUILDING {
            return Err(Fault::generic(format!(
                "Build ID {id_text} is not in BUILDING state"
            )));
        }
        // This double reserves no draft builds: metadata must not ask for one.
        let not_draft = match build.get("draft") {
            None | Some(Json::Bool(false)) => true,
            Some(Json::Number(number)) => number.as_f64() == Some(0.0),
            Some(_) => false,
        };
        if !not_draft {
            return Err(Fault::generic(format!(
                "Draft field does not match reservation (build id = {id_text})"
            )));
        }
        let same = |field: &str, have: &str| -> Result<bool, Fault> {
            Ok(key(build, field)?.as_str() == Some(have))
        };
        if !same("name", &reserved.name)?
            || !same("version", &reserved.version)?
            || !same("release", &reserved.release)?
        {
            return Err(Fault::generic(format!(
                "Build ({}) NVR is different",
                reserved.id
            )));
        }
        if let Some(epoch) = build.get("epoch")
            && epoch.as_i64() != reserved.epoch
        {
            return Err(Fault::generic(format!(
                "Build ({}) epoch is different",
                reserved.id
            )));
        }
        reserved_build_id = Some(reserved.id);
    } else if token.is_some() {
        return Err(Fault::generic(
            "Reservation token given, but no build_id in metadata",
        ));
    } else if let Some(existing) = state.find_build(build)?
        && !matches!(existing.state, build_state::FAILED | build_state::CANCELED)
    {
        return Err(Fault::generic(format!(
            "Build already exists: {} (id={})",
            existing.nvr(),
            existing.id
        )));
    }

    // no "-" in version or release
    let version = text_field(key(build, "version")?)?;
    let release = text_field(key(build, "release")?)?;
    crate::nvr::check_nvr(version, release)?;

    // every typeinfo key is a known build type
    let mut btypes = BTreeSet::new();
    if let Some(Json::Object(extra)) = build.get("extra") {
        let mut typeinfo: Map<String, Json> = match extra.get("typeinfo") {
            Some(Json::Object(map)) => map.clone(),
            _ => Map::new(),
        };
        for legacy in ["maven", "win", "image"] {
            if let Some(info) = extra.get(legacy) {
                if typeinfo.contains_key(legacy) {
                    return Err(Fault::generic(format!(
                        "Duplicate typeinfo for {}",
                        py_str_repr(legacy)
                    )));
                }
                typeinfo.insert(legacy.to_owned(), info.clone());
            }
        }
        for btype in typeinfo.keys() {
            if !state.btypes.contains(btype) {
                return Err(Fault::generic(format!(
                    "No such entry in table btype: {btype}"
                )));
            }
            btypes.insert(btype.clone());
        }
    }

    // the build's own fields
    let name = text_field(key(build, "name")?)?.to_owned();
    key(build, "version")?;
    key(build, "release")?;
    let extra = key(build, "extra")?.clone();
    let source = key(build, "source")?.as_str().map(str::to_owned);
    let start_ts = float(key(build, "start_time")?)?;
    let end_ts = float(key(build, "end_time")?)?;
    let task_id = task_id_from_metadata(build)?;
    let owner =
        match build.get("owner") {
            None | Some(Json::Null) => None,
            Some(Json::String(owner)) if owner.is_empty() => None,
            Some(Json::String(owner)) => {
                Some(state.users.get(owner).map(|user| user.id).ok_or_else(|| {
                    Fault::generic(format!("No such user: {}", py_str_repr(owner)))
                })?)
            }
            Some(other) => {
                return Err(Fault::generic(format!(
                    "Invalid owner format (expected username): {}",
                    py_str(other)
                )));
            }
        };
    let epoch = build.get("epoch").and_then(Json::as_i64);

    // buildroots: complete, each used by some output
    let outputs = items(key(&metadata, "output")?)?;
    let mut used = Vec::new();
    for output in &outputs {
        used.push(key(output, "buildroot_id")?.clone());
    }
    let mut buildroots: Vec<Json> = Vec::new();
    let mut buildroot_ids: Vec<Json> = Vec::new();
    for buildroot in items(key(&metadata, "buildroots")?)? {
        let id = key(&buildroot, "id")?.clone();
        if !used.contains(&id) {
            return Err(Fault::generic(format!(
                "Buildroot id not used in output: {}",
                py_repr(&id)
            )));
        }
        if buildroot_ids.contains(&id) {
            return Err(Fault::generic(format!(
                "Duplicate buildroot id in metadata: {}",
                py_repr(&id)
            )));
        }
        key(key(&buildroot, "content_generator")?, "version")?;
        key(key(&buildroot, "container")?, "type")?;
        key(key(&buildroot, "container")?, "arch")?;
        key(key(&buildroot, "host")?, "os")?;
        key(key(&buildroot, "host")?, "arch")?;
        match_components(state, key(&buildroot, "components")?)?;
        key(&buildroot, "tools")?;
        buildroot_ids.push(id);
        buildroots.push(buildroot);
    }

    // outputs: complete, uploaded with that size and checksum, typed
    let mut planned = Vec::new();
    for output in &outputs {
        let relpath = output.get("relpath").and_then(Json::as_str).unwrap_or("");
        let filename = text_field(key(output, "filename")?)?.to_owned();
        let relative = joinpath(&[directory, relpath, &filename])?;
        let size = area.size(&relative).ok_or_else(|| {
            Fault::python(
                "FileNotFoundError",
                format!(
                    "[Errno 2] No such file or directory: {}",
                    py_str_repr(&area.display_path(&relative))
                ),
            )
        })?;
        let declared_size = key(output, "filesize")?;
        if declared_size.as_u64() != Some(size) {
            return Err(Fault::generic(format!(
                "File size {size} for {filename} (expected {}) doesn't match. Corrupted upload?",
                py_str(declared_size)
            )));
        }
        let checksum_type = key(output, "checksum_type")?;
        let verifier = Verifier::for_name(checksum_type.as_str().unwrap_or_default())?
            .ok_or_else(|| Fault::python("TypeError", "'NoneType' object is not callable"))?;
        let computed = area.digest(&relative, verifier).map_err(|error| {
            Fault::python(
                "OSError",
                format!("{error}: {}", area.display_path(&relative)),
            )
        })?;
        let declared = key(output, "checksum")?;
        if declared.as_str() != Some(computed.as_str()) {
            return Err(Fault::generic(format!(
                "File checksum mismatch for {filename}: {} != {computed}",
                py_str(declared)
            )));
        }
        let buildroot_id = key(output, "buildroot_id")?.clone();
        if !buildroot_ids.contains(&buildroot_id) {
            return Err(Fault::generic(format!(
                "Missing buildroot metadata for id {}",
                py_repr(&buildroot_id)
            )));
        }
        check_output_arch(output, &filename, &buildroot_id, &buildroots)?;
        let kind = match key(output, "type")?.as_str() {
            Some("log") => OutputKind::Log,
            Some("rpm") => {
                return Err(Fault::generic(format!(
                    "rpm output {filename}: this hub double imports containers, not rpms"
                )));
            }
            _ => prep_archive(state, output, &filename, &btypes)?,
        };
        planned.push(OutputPlan {
            relative,
            filename,
            size,
            checksum: computed,
            buildroot_id,
            kind,
        });
    }

    // the build directory must not exist yet
    let (exists, path) = area.build_dir(&name, version, release);
    if exists {
        return Err(Fault::generic(format!(
            "Destination directory already exists: {path}"
        )));
    }

    // what import_archive_internal checks while importing each archive
    let mut outputs_plan = Vec::new();
    for (mut plan, output) in planned.into_iter().zip(&outputs) {
        if let OutputKind::Archive {
            type_name,
            btype,
            checksum_type,
            extra,
            ..
        } = &mut plan.kind
        {
            *checksum_type =
                archive_checksum_type(key(output, "checksum_type")?.as_str().unwrap_or(""))?;
            *type_name = archive_type(state, &plan.filename)?;
            if btype == "image" {
                key(type_info(extra, btype), "arch")?;
            }
        }
        outputs_plan.push(plan);
    }

    Ok(ImportPlan {
        reserved_build_id,
        name,
        version: version.to_owned(),
        release: release.to_owned(),
        epoch,
        source,
        extra,
        start_ts,
        end_ts,
        owner,
        cg_id,
        task_id,
        btypes,
        buildroots,
        outputs: outputs_plan,
        raw_metadata,
    })
}

/// The double's own check (DESIGN.md "Architectures"; the real hub stores an output's
/// `arch` without comparing it to its buildroot's): an output of an architecture, not
/// `noarch`, was made in a buildroot whose container is of that architecture. Worded as
/// the hub words its other buildroot refusals.
fn check_output_arch(
    output: &Json,
    filename: &str,
    buildroot_id: &Json,
    buildroots: &[Json],
) -> Result<(), Fault> {
    let Some(arch) = output.get("arch").and_then(Json::as_str) else {
        return Ok(());
    };
    let container_arch = buildroots
        .iter()
        .find(|buildroot| buildroot.get("id") == Some(buildroot_id))
        .and_then(|buildroot| buildroot.get("container")?.get("arch")?.as_str());
    match container_arch {
        Some(container) if arch != "noarch" && arch != container => Err(Fault::generic(format!(
            "Output arch {arch} does not match the container arch {container} of buildroot {}: {filename}",
            py_repr(buildroot_id)
        ))),
        _ => Ok(()),
    }
}

/// The type info of an archive's `extra` for `btype` (legacy key or `typeinfo`).
fn type_info<'a>(extra: &'a Json, btype: &str) -> &'a Json {
    extra
        .get(btype)
        .or_else(|| extra.get("typeinfo").and_then(|info| info.get(btype)))
        .unwrap_or(&Json::Null)
}

/// `prep_archive`: exactly one type, listed among the build's types.
fn prep_archive(
    state: &HubState,
    output: &Json,
    filename: &str,
    build_types: &BTreeSet<String>,
) -> Result<OutputKind, Fault> {
    let empty = Json::Object(Map::new());
    let extra = output.get("extra").unwrap_or(&empty);
    let mut btype: Option<String> = None;
    if let Json::Object(map) = extra {
        for legacy in map.keys() {
            if !["maven", "win", "image"].contains(&legacy.as_str()) {
                continue;
            }
            if btype.is_some() {
                return Err(Fault::generic(format!(
                    "Output file has multiple types: {filename}"
                )));
            }
            btype = Some(legacy.clone());
        }
        if let Some(Json::Object(typeinfo)) = map.get("typeinfo") {
            for kind in typeinfo.keys() {
                if btype.as_deref() == Some(kind.as_str()) {
                    return Err(Fault::generic(format!(
                        "Duplicate typeinfo for: {}",
                        py_str_repr(kind)
                    )));
                }
                if btype.is_some() {
                    return Err(Fault::generic(format!(
                        "Output file has multiple types: {filename}"
                    )));
                }
                btype = Some(kind.clone());
            }
        }
    }
    let btype = btype.ok_or_else(|| Fault::generic(format!("No typeinfo for: {filename}")))?;
    if !build_types.contains(&btype) {
        return Err(Fault::generic(format!(
            "Output type {btype} not listed in build types"
        )));
    }
    let mut components = 0;
    if let Some(list) = output.get("components") {
        if btype == "maven" || btype == "win" {
            return Err(Fault::generic(format!(
                "Component list not allowed for archives of type {btype}"
            )));
        }
        components = match_components(state, list)?;
    }
    Ok(OutputKind::Archive {
        type_name: String::new(),
        btype,
        checksum_type: 0,
        extra: extra.clone(),
        components,
    })
}

/// `match_components`: every component well-formed. Unknown rpms are ignored, as the real
/// hub does (it logs them in `cg_import.log`). Returns the number of components.
fn match_components(state: &HubState, components: &Json) -> Result<usize, Fault> {
    let list = items(components)?;
    for component in &list {
        match key(component, "type")?.as_str() {
            Some("rpm") => {
                if component.get("location").is_some() {
                    return Err(Fault::generic("External rpms not allowed"));
                }
                if component.get("id").is_some() {
                    return Err(Fault::generic("Unexpected 'id' field in component"));
                }
                for field in ["name", "version", "release", "arch"] {
                    key(component, field)?;
                }
            }
            Some("file") => {
                key(component, "filename")?;
                key(component, "filesize")?;
            }
            Some("kojifile") => {
                let archive_id = key(component, "archive_id")?;
                let known = state.builds.values().any(|build: &Build| {
                    build
                        .archives
                        .iter()
                        .any(|archive| Some(archive.id) == archive_id.as_i64())
                });
                if !known {
                    return Err(Fault::generic(format!(
                        "No such archive: {}",
                        py_str(archive_id)
                    )));
                }
            }
            _ => {
                return Err(Fault::generic(format!(
                    "No such component type: {}",
                    py_str(key(component, "type")?)
                )));
            }
        }
    }
    Ok(list.len())
}

/// `get_archive_type(filename, strict=True)`: the longest known extension wins.
pub fn archive_type(state: &HubState, filename: &str) -> Result<String, Fault> {
    let parts: Vec<&str> = filename.split('.').collect();
    let mut ext = String::new();
    for start in (0..parts.len()).rev() {
        ext = parts[start..].join(".");
        let matches: Vec<&String> = state
            .archive_types
            .iter()
            .filter(|(_, extensions)| {
                extensions
                    .split_whitespace()
                    .any(|known| known.eq_ignore_ascii_case(&ext))
            })
            .map(|(name, _)| name)
            .collect();
        match matches.len() {
            0 => continue,
            1 => return Ok(matches[0].clone()),
            _ => {
                return Err(Fault::generic(format!(
                    "multiple matches for file extension: {ext}"
                )));
            }
        }
    }
    Err(Fault::generic(format!("unsupported file extension: {ext}")))
}

/// `os.path.normpath` of a relative path (a leading `/` is dropped: callers refuse it).
pub(crate) fn normpath(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|last| *last != "..") => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}
