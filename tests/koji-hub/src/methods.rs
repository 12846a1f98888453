//! The hub's XML-RPC methods and its session rules: what `kojihub.RootExports` and
//! `koji.auth.Session` do for the calls a content generator makes, against [`HubState`].

use crate::cg_import::{
    ImportPlan, OutputKind, UploadArea, int_value, join, key, normpath, plan_import,
};
use crate::config::HubConfig;
use crate::digest::Verifier;
use crate::fault::{Fault, code, py_dict_repr, py_str};
use crate::policy::{Policy, PolicyData, assert_policy};
use crate::rpc::{Call, base64_arg};
use crate::state::{
    Archive, Build, HubState, LogFile, Session, Tag, Task, build_state, now, task_state,
};
use serde_json::{Value as Json, json};
use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Methods that change data: a repeated call number on them is a `RetryError`.
const MUTATING: &[&str] = &[
    "CGInitBuild",
    "CGRefundBuild",
    "CGImport",
    "uploadFile",
    "tagBuild",
    "tagBuildBypass",
];

/// Who is calling: the session headers (or query string) and the TLS client certificate.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub session: Option<(i64, String)>,
    pub callnum: Option<i64>,
    /// CN of a verified client certificate, on a TLS hub.
    pub client_cn: Option<String>,
    pub tls: bool,
}

/// A hub: its state, where its files live, and its configuration.
#[derive(Debug)]
pub struct Hub {
    pub(crate) state: Mutex<HubState>,
    pub(crate) dir: PathBuf,
    pub(crate) config: HubConfig,
    /// The `tag` policy parsed from `config.tag_policy`.
    tag_policy: Option<Policy>,
}

/// The logged-in session of a call, once validated.
#[derive(Debug, Clone, Copy)]
struct Login {
    session_id: i64,
    user_id: i64,
}

impl Hub {
    /// A hub over `dir`: the state found there, or a fresh one seeded from `config`, judging
    /// tagging by `tag_policy` (koji's, parsed from `config.tag_policy`).
    pub fn open(dir: &Path, config: HubConfig, tag_policy: Option<Policy>) -> std::io::Result<Hub> {
        std::fs::create_dir_all(dir.join("work"))?;
        std::fs::create_dir_all(dir.join("packages"))?;
        let state = match HubState::load(dir)? {
            Some(state) => state,
            None => {
                let state = HubState::seeded(&config);
                state.save(dir)?;
                state
            }
        };
        Ok(Hub {
            state: Mutex::new(state),
            dir: dir.to_owned(),
            config,
            tag_policy,
        })
    }

    pub fn work_dir(&self) -> PathBuf {
        self.dir.join("work")
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A panicking handler must not take the hub down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn save(&self, state: &HubState) -> Result<(), Fault> {
        state
            .save(&self.dir)
            .map_err(|error| Fault::python("OSError", error))
    }

    /// `koji.auth.Session()`: validates the session and the call number.
    fn session(
        &self,
        state: &HubState,
        caller: &Caller,
        method: &str,
    ) -> Result<Option<Login>, Fault> {
        let Some((id, key)) = &caller.session else {
            return Ok(None);
        };
        let session = state
            .sessions
            .get(id)
            .filter(|session| &session.key == key)
            .ok_or_else(|| Fault::auth("Invalid session or bad credentials"))?;
        if let (Some(callnum), Some(last)) = (caller.callnum, session.callnum) {
            if last > callnum {
                return Err(Fault::new(
                    code::SEQUENCE,
                    format!("{last} > {callnum} (session {id})"),
                ));
            }
            if last == callnum {
                return Err(Fault::new(
                    code::RETRY,
                    format!("unable to retry call {callnum} (method {method}) for session {id}"),
                ));
            }
        }
        Ok(Some(Login {
            session_id: *id,
            user_id: session.user_id,
        }))
    }

    /// Runs one XML-RPC call.
    pub fn call(&self, caller: &Caller, call: &Call) -> Result<Json, Fault> {
        self.run_due_tasks();
        let login = {
            let state = self.lock();
            self.session(&state, caller, &call.method)?
        };
        let result = self.dispatch(caller, login, call);
        if result.is_ok()
            && MUTATING.contains(&call.method.as_str())
            && let (Some(login), Some(callnum)) = (login, caller.callnum)
        {
            let mut state = self.lock();
            if let Some(session) = state.sessions.get_mut(&login.session_id) {
                session.callnum = Some(callnum);
            }
            self.save(&state)?;
        }
        result
    }

    fn dispatch(&self, caller: &Caller, login: Option<Login>, call: &Call) -> Result<Json, Fault> {
        let user = login.map(|login| login.user_id);
        match call.method.as_str() {
            "login" => self.login(login, call),
            "sslLogin" => self.ssl_login(caller, login),
            "logout" => self.logout(login),
            "getLoggedInUser" => {
                let state = self.lock();
                Ok(user
                    .and_then(|id| state.user_by_id(id))
                    .map(HubState::user_info)
                    .unwrap_or(Json::Null))
            }
            "getAPIVersion" => Ok(json!(1)),
            "hello" => Ok(json!("Hello World")),
            "getBuild" => {
                let state = self.lock();
                let info = call.required(0, "buildInfo")?;
                let strict = call
                    .arg(1, "strict")
                    .and_then(Json::as_bool)
                    .unwrap_or(false);
                match state.find_build(info)? {
                    Some(build) => Ok(state.build_info(build)),
                    None if strict => state.require_build(info).map(|_| Json::Null),
                    None => Ok(Json::Null),
                }
            }
            "getNextRelease" => {
                let state = self.lock();
                let info = call.required(0, "build_info")?;
                let increment = match call.arg(1, "incr") {
                    None => 1,
                    Some(incr) => int_value(incr)
                        .map_err(|_| Fault::parameter("incr parameter must be an integer"))?,
                };
                let name = key(info, "name")?;
                let version = key(info, "version")?;
                let latest = state
                    .builds
                    .values()
                    .filter(|build| {
                        Some(build.name.as_str()) == name.as_str()
                            && Some(build.version.as_str()) == version.as_str()
                            && matches!(
                                build.state,
                                build_state::COMPLETE
                                    | build_state::DELETED
                                    | build_state::BUILDING
                            )
                    })
                    .max_by_key(|build| build.id)
                    .map(|build| build.release.clone());
                crate::nvr::next_release(latest.as_deref(), increment).map(Json::String)
            }
            "getBuildTarget" => {
                let state = self.lock();
                let info = call.required(0, "info")?;
                let strict = call
                    .arg(2, "strict")
                    .and_then(Json::as_bool)
                    .unwrap_or(false);
                let found = match info {
                    Json::String(name) => state.targets.get(name),
                    Json::Number(id) => state.targets.values().find(|t| Some(t.id) == id.as_i64()),
                    _ => None,
                };
                match found {
                    Some(target) => Ok(state.target_info(target)),
                    None if strict => Err(Fault::generic(format!(
                        "No such build target: {}",
                        py_str(info)
                    ))),
                    None => Ok(Json::Null),
                }
            }
            "getTag" => {
                let state = self.lock();
                let info = call.required(0, "tagInfo")?;
                let strict = call
                    .arg(1, "strict")
                    .and_then(Json::as_bool)
                    .unwrap_or(false);
                match state.require_tag(info) {
                    Ok(tag) => Ok(HubState::tag_info(tag)),
                    Err(fault) if strict => Err(fault),
                    Err(_) => Ok(Json::Null),
                }
            }
            "listTags" => {
                let state = self.lock();
                let tags: Vec<Json> = match call.arg(0, "build") {
                    Some(Json::Null) | None => {
                        state.tags.values().map(HubState::tag_info).collect()
                    }
                    Some(build) => {
                        let build = state.require_build(build)?;
                        state
                            .tag_listing
                            .iter()
                            .filter(|(_, build_id)| *build_id == build.id)
                            .filter_map(|(tag_id, _)| state.tag_by_id(*tag_id))
                            .map(HubState::tag_info)
                            .collect()
                    }
                };
                Ok(Json::Array(tags))
            }
            "listBuilds" => {
                let state = self.lock();
                let wanted = call.kwargs.get("state").and_then(Json::as_i64);
                Ok(Json::Array(
                    state
                        .builds
                        .values()
                        .filter(|build| wanted.is_none_or(|wanted| build.state == wanted))
                        .map(|build| state.build_info(build))
                        .collect(),
                ))
            }
            "listArchives" => {
                let state = self.lock();
                let build_id = call.arg(0, "buildID").and_then(Json::as_i64);
                Ok(Json::Array(
                    state
                        .builds
                        .values()
                        .filter(|build| build_id.is_none_or(|id| build.id == id))
                        .flat_map(|build| {
                            build
                                .archives
                                .iter()
                                .map(move |archive| (build.id, archive))
                        })
                        .map(|(build_id, archive)| archive_info(build_id, archive))
                        .collect(),
                ))
            }
            "CGInitBuild" => self.cg_init_build(user, call),
            "CGRefundBuild" => self.cg_refund_build(user, call),
            "CGImport" => self.cg_import(user, call),
            "uploadFile" => self.upload_file(user, call),
            "checkUpload" if self.config.fast_upload => self.check_upload(call),
            "tagBuild" => self.tag_build(user, call),
            "tagBuildBypass" => self.tag_build_bypass(user, call),
            "getTaskInfo" => {
                let state = self.lock();
                let id = call.required(0, "task_id")?.as_i64().unwrap_or(-1);
                let strict = call
                    .arg(2, "strict")
                    .and_then(Json::as_bool)
                    .unwrap_or(false);
                match state.tasks.get(&id) {
                    Some(task) => Ok(task_info(task)),
                    // The hub's strict query, not a sentence of its own.
                    None if strict => Err(Fault::generic("query returned no rows")),
                    None => Ok(Json::Null),
                }
            }
            "getTaskResult" => {
                let state = self.lock();
                let id = call.required(0, "taskId")?.as_i64().unwrap_or(-1);
                let task = state
                    .tasks
                    .get(&id)
                    .ok_or_else(|| Fault::generic("No such task"))?;
                match (task.state, &task.result) {
                    (task_state::CLOSED, result) => Ok(result.clone().unwrap_or(Json::Null)),
                    (task_state::FAILED, Some(Json::Array(fault))) => Err(Fault::new(
                        fault.first().and_then(Json::as_i64).unwrap_or(1) as i32,
                        fault.get(1).and_then(Json::as_str).unwrap_or_default(),
                    )),
                    (task_state::CANCELED, _) => {
                        Err(Fault::generic(format!("Task {id} is canceled")))
                    }
                    _ => Err(Fault::generic(format!("Task {id} is not finished"))),
                }
            }
            other => Err(Fault::generic(format!("Invalid method: {other}"))),
        }
    }

    fn new_session(&self, state: &mut HubState, user_id: i64, authtype: &str) -> Json {
        use rand::Rng;
        let id = state.next("sessions");
        let random: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(19)
            .map(char::from)
            .collect();
        let key = format!("{user_id}-{random}");
        state.issued_session_keys.push(key.clone());
        state.sessions.insert(
            id,
            Session {
                id,
                key: key.clone(),
                user_id,
                callnum: None,
                authtype: authtype.into(),
            },
        );
        json!({"session-id": id, "session-key": key, "header-auth": true})
    }

    fn login(&self, login: Option<Login>, call: &Call) -> Result<Json, Fault> {
        let user = call.required(0, "user")?;
        let password = call.required(1, "password")?;
        let password = password
            .as_str()
            .filter(|password| !password.is_empty())
            .ok_or_else(|| Fault::auth("invalid username or password"))?;
        if login.is_some() {
            return Err(Fault::auth("Already logged in"));
        }
        let mut state = self.lock();
        let user_id = user
            .as_str()
            .and_then(|name| state.users.get(name))
            .filter(|user| user.password.as_deref() == Some(password))
            .map(|user| user.id)
            .ok_or_else(|| Fault::auth("invalid username or password"))?;
        let info = self.new_session(&mut state, user_id, "NORMAL");
        self.save(&state)?;
        Ok(info)
    }

    fn ssl_login(&self, caller: &Caller, login: Option<Login>) -> Result<Json, Fault> {
        if login.is_some() {
            return Err(Fault::auth("Already logged in"));
        }
        if !caller.tls {
            return Err(Fault::auth("could not verify client: None"));
        }
        let name = caller.client_cn.clone().ok_or_else(|| {
            Fault::auth("unable to get user information (CN) from client certificate")
        })?;
        let mut state = self.lock();
        let user_id = state
            .users
            .get(&name)
            .map(|user| user.id)
            .ok_or_else(|| Fault::auth(format!("Unknown user: {name}")))?;
        let info = self.new_session(&mut state, user_id, "SSL");
        self.save(&state)?;
        Ok(info)
    }

    fn logout(&self, login: Option<Login>) -> Result<Json, Fault> {
        let login = login.ok_or_else(|| Fault::auth("Not logged in"))?;
        let mut state = self.lock();
        state.sessions.remove(&login.session_id);
        self.save(&state)?;
        Ok(Json::Null)
    }

    fn cg_init_build(&self, user: Option<i64>, call: &Call) -> Result<Json, Fault> {
        let cg = call.required(0, "cg")?;
        let data = call.required(1, "data")?;
        let mut state = self.lock();
        let cg_id = state.assert_cg(cg, user)?;
        let field = |name: &str| -> Result<String, Fault> {
            match data.get(name) {
                Some(Json::String(text)) => Ok(text.clone()),
                Some(other) => Ok(py_str(other)),
                None => Err(Fault::key_error(name)),
            }
        };
        let (version, release) = (field("version")?, field("release")?);
        crate::nvr::check_nvr(&version, &release)?;
        let name = match data.get("name") {
            Some(Json::String(name)) if !name.is_empty() => name.clone(),
            _ => return Err(Fault::generic("No name or package id provided for build")),
        };
        let epoch = data.get("epoch").and_then(Json::as_i64);
        let nvr = json!({"name": name, "version": version, "release": release});
        let package_id = state.ensure_package(&name);
        let build_id = match state.find_build(&nvr)?.cloned() {
            Some(old) => match old.state {
                // The controlling "task" (none for a CG) restarting: same build.
                build_state::BUILDING if old.task_id.is_none() => old.id,
                build_state::BUILDING => {
                    return Err(Fault::generic(format!(
                        "Build already in progress (task {})",
                        old.task_id.unwrap_or_default()
                    )));
                }
                build_state::FAILED | build_state::CANCELED => {
                    if state.tag_listing.iter().any(|(_, id)| *id == old.id) {
                        return Err(Fault::generic(
                            "Build already exists. Unable to recycle, has tag history",
                        ));
                    }
                    let build = state.builds.get_mut(&old.id).expect("found above");
                    build.state = build_state::BUILDING;
                    build.owner_id = user.unwrap_or_default();
                    build.cg_id = Some(cg_id);
                    build.epoch = epoch;
                    build.creation_ts = now();
                    build.completion_ts = None;
                    old.id
                }
                other => {
                    return Err(Fault::generic(format!(
                        "Build already exists (id={}, state={}): {}",
                        old.id,
                        build_state::name(other),
                        new_build_data_repr(data, user, cg_id, package_id)
                    )));
                }
            },
            None => {
                let id = state.next("build");
                state.builds.insert(
                    id,
                    Build {
                        id,
                        name,
                        version,
                        release,
                        epoch,
                        state: build_state::BUILDING,
                        owner_id: user.unwrap_or_default(),
                        cg_id: Some(cg_id),
                        source: None,
                        extra: Json::Null,
                        task_id: None,
                        creation_ts: now(),
                        start_ts: None,
                        completion_ts: None,
                        btypes: BTreeSet::new(),
                        archives: Vec::new(),
                        logs: Vec::new(),
                        metadata: None,
                        buildroots: Vec::new(),
                    },
                );
                id
            }
        };
        if state.reservations.contains_key(&build_id) {
            return Err(Fault::generic("Build is already reserved"));
        }
        let token = random_token();
        state.reservations.insert(build_id, token.clone());
        self.save(&state)?;
        Ok(json!({"build_id": build_id, "token": token}))
    }

    fn cg_refund_build(&self, user: Option<i64>, call: &Call) -> Result<Json, Fault> {
        let cg = call.required(0, "cg")?;
        let build_id = call.required(1, "build_id")?;
        let token = call.required(2, "token")?;
        let new_state = call
            .arg(3, "state")
            .and_then(Json::as_i64)
            .unwrap_or(build_state::FAILED);
        if !matches!(new_state, build_state::FAILED | build_state::CANCELED) {
            return Err(Fault::generic(
                "Only FAILED/CANCELED build states are allowed",
            ));
        }
        let mut state = self.lock();
        let cg_id = state.assert_cg(cg, user)?;
        let build = state.require_build(build_id)?.clone();
        if build.state != build_state::BUILDING {
            return Err(Fault::generic(format!(
                "Build ID {} is not in BUILDING state",
                build.id
            )));
        }
        if state.reservations.get(&build.id).map(String::as_str) != token.as_str() {
            return Err(Fault::generic(format!(
                "Token doesn't match build ID {}",
                build.id
            )));
        }
        if build.cg_id != Some(cg_id) {
            return Err(Fault::generic(format!(
                "Build ID {} is not reserved by this CG",
                build.id
            )));
        }
        let stored = state.builds.get_mut(&build.id).expect("found above");
        stored.state = new_state;
        stored.completion_ts = Some(now());
        state.reservations.remove(&build.id);
        self.save(&state)?;
        Ok(Json::Null)
    }

    fn cg_import(&self, user: Option<i64>, call: &Call) -> Result<Json, Fault> {
        let metadata = call.required(0, "metadata")?;
        let directory = call.required(1, "directory")?;
        let directory = directory.as_str().unwrap_or_default().to_owned();
        let token = call.arg(2, "token").and_then(Json::as_str);
        let mut state = self.lock();
        let area = DiskArea { dir: &self.dir };
        let plan = plan_import(&state, user, metadata, &directory, token, &area)?;
        let build = self.apply_import(&mut state, plan, user.unwrap_or_default())?;
        self.save(&state)?;
        Ok(state.build_info(&build))
    }

    /// Writes an import that passed every check (files move into the build directory).
    fn apply_import(
        &self,
        state: &mut HubState,
        plan: ImportPlan,
        session_user: i64,
    ) -> Result<Build, Fault> {
        let build_dir = package_dir(&self.dir, &plan.name, &plan.version, &plan.release);
        let io = |error: std::io::Error| Fault::python("OSError", error);
        state.ensure_package(&plan.name);
        let id = match plan.reserved_build_id {
            Some(id) => id,
            None => {
                let nvr =
                    json!({"name": plan.name, "version": plan.version, "release": plan.release});
                match state.find_build(&nvr)?.map(|old| old.id) {
                    Some(recycled) => recycled,
                    None => state.next("build"),
                }
            }
        };
        let mut archives = Vec::new();
        let mut logs = Vec::new();
        for output in &plan.outputs {
            let from = self.work_dir().join(&output.relative);
            let (to, is_log) = match output.kind {
                OutputKind::Log => (build_dir.join("data/logs").join(&output.filename), true),
                OutputKind::Archive { .. } => {
                    (build_dir.join("images").join(&output.filename), false)
                }
            };
            if is_log && to.exists() {
                return Err(Fault::generic(format!(
                    "Error importing build log. {} already exists.",
                    to.display()
                )));
            }
            std::fs::create_dir_all(to.parent().expect("a file in a directory")).map_err(io)?;
            std::fs::rename(&from, &to).map_err(io)?;
            match &output.kind {
                OutputKind::Log => logs.push(LogFile {
                    filename: output.filename.clone(),
                    size: output.size,
                    path: to,
                }),
                OutputKind::Archive {
                    type_name,
                    btype,
                    checksum_type,
                    extra,
                    components,
                } => {
                    let archive_id = state.next("archiveinfo");
                    archives.push(Archive {
                        id: archive_id,
                        filename: output.filename.clone(),
                        size: output.size,
                        checksum: output.checksum.clone(),
                        checksum_type: *checksum_type,
                        type_name: type_name.clone(),
                        btype: btype.clone(),
                        buildroot_id: buildroot_number(&plan.buildroots, &output.buildroot_id),
                        extra: extra.clone(),
                        components: *components,
                        path: to,
                    });
                }
            }
        }
        std::fs::create_dir_all(&build_dir).map_err(io)?;
        std::fs::write(build_dir.join("metadata.json"), &plan.raw_metadata).map_err(io)?;
        let previous = state.builds.get(&id);
        let build = Build {
            id,
            name: plan.name,
            version: plan.version,
            release: plan.release,
            epoch: plan.epoch,
            state: build_state::COMPLETE,
            owner_id: plan.owner.unwrap_or(session_user),
            cg_id: Some(plan.cg_id),
            source: plan.source,
            extra: plan.extra,
            task_id: plan.task_id,
            creation_ts: previous.map(|build| build.creation_ts).unwrap_or_else(now),
            start_ts: Some(plan.start_ts),
            completion_ts: Some(now().max(plan.end_ts)),
            btypes: plan.btypes,
            archives,
            logs,
            metadata: Some(plan.raw_metadata),
            buildroots: plan.buildroots,
        };
        state.builds.insert(id, build.clone());
        state.reservations.remove(&id);
        Ok(build)
    }

    fn upload_file(&self, user: Option<i64>, call: &Call) -> Result<Json, Fault> {
        let user =
            user.ok_or_else(|| Fault::not_allowed("you must be logged in for this operation"))?;
        let path = call
            .required(0, "path")?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = call
            .required(1, "name")?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let size = decode_int(call.required(2, "size")?);
        let checksum = call
            .arg(6, "checksum")
            .filter(|value| !value.is_null())
            .or_else(|| call.arg(3, "md5sum"))
            .cloned()
            .unwrap_or(Json::Null);
        let offset = decode_int(call.required(4, "offset")?).unwrap_or(0);
        let contents = base64_arg(call.required(5, "data")?)?;
        let (verify, digest) = match &checksum {
            Json::String(md5) => ("md5".to_owned(), Some(md5.clone())),
            Json::Array(pair) => (
                pair.first().and_then(Json::as_str).unwrap_or("").to_owned(),
                pair.get(1).and_then(Json::as_str).map(str::to_owned),
            ),
            _ => (String::new(), None),
        };
        if offset != -1 {
            if let Some(size) = size
                && size != contents.len() as i64
            {
                return Ok(json!(false));
            }
            if let Some(digest) = &digest
                && &crate::digest::hexdigest(&verify, &contents)? != digest
            {
                return Ok(json!(false));
            }
        }
        let file = self.upload_path(user, &path, &name, true)?;
        let io = |error: std::io::Error| Fault::python("OSError", error);
        if let Ok(meta) = std::fs::symlink_metadata(&file) {
            if !meta.is_file() {
                return Err(Fault::generic(format!(
                    "destination not a file: {}",
                    file.display()
                )));
            }
            if offset == 0 && !file.to_string_lossy().ends_with(".log") {
                return Err(Fault::generic(format!(
                    "file already exists: {}",
                    file.display()
                )));
            }
        }
        let mut handle = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&file)
            .map_err(io)?;
        if offset == 0 || (offset == -1 && size == Some(contents.len() as i64)) {
            handle.set_len(0).map_err(io)?;
        }
        if offset == -1 {
            handle.seek(SeekFrom::End(0)).map_err(io)?;
        } else {
            handle.seek(SeekFrom::Start(offset as u64)).map_err(io)?;
        }
        handle.write_all(&contents).map_err(io)?;
        if offset == -1 {
            if let Some(size) = size {
                handle.set_len(size.max(0) as u64).map_err(io)?;
            }
            if let Some(digest) = digest {
                let mut verifier = Verifier::for_name(&verify)?.ok_or_else(|| {
                    Fault::python("TypeError", "'NoneType' object is not callable")
                })?;
                handle.seek(SeekFrom::Start(0)).map_err(io)?;
                let mut buffer = vec![0u8; 1 << 16];
                loop {
                    let read = handle.read(&mut buffer).map_err(io)?;
                    if read == 0 {
                        break;
                    }
                    verifier.update(&buffer[..read]);
                }
                if verifier.hexdigest() != digest {
                    return Ok(json!(false));
                }
            }
        }
        Ok(json!(true))
    }

    fn check_upload(&self, call: &Call) -> Result<Json, Fault> {
        let path = call
            .required(0, "path")?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = call
            .required(1, "name")?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let verify = call.arg(2, "verify").and_then(Json::as_str).unwrap_or("");
        let file = self.work_dir().join(check_upload_path(&path, &name)?);
        let io = |error: std::io::Error| Fault::python("OSError", error);
        let mut handle = match std::fs::File::open(&file) {
            Ok(handle) => handle,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Json::Null),
            Err(error) => return Err(io(error)),
        };
        let meta = handle.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(Fault::generic(format!(
                "Not a regular file: {}",
                file.display()
            )));
        }
        let mtime = meta
            .modified()
            .ok()
            .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|since| since.as_secs_f64())
            .unwrap_or(0.0);
        let mut info = json!({"size": meta.len(), "mtime": mtime});
        if let Some(mut verifier) = Verifier::for_name(verify)? {
            let mut buffer = vec![0u8; 1 << 20];
            let mut length = 0u64;
            loop {
                let read = handle.read(&mut buffer).map_err(io)?;
                if read == 0 {
                    break;
                }
                length += read as u64;
                verifier.update(&buffer[..read]);
            }
            info["sumlength"] = json!(length);
            info["hexdigest"] = json!(verifier.hexdigest());
        }
        Ok(info)
    }

    /// `get_upload_path(reldir, name, create)`: refuses bad names and directories, and
    /// makes a directory belong to the user who wrote it first.
    pub(crate) fn upload_path(
        &self,
        user: i64,
        reldir: &str,
        name: &str,
        create: bool,
    ) -> Result<PathBuf, Fault> {
        let relative = check_upload_path(reldir, name)?;
        let dir_key = normpath(reldir);
        let file = self.work_dir().join(relative);
        if create {
            let mut state = self.lock();
            match state.upload_owners.get(&dir_key) {
                Some(owner) if *owner != user => {
                    return Err(Fault::generic(format!(
                        "Invalid upload directory, not owner: {reldir}"
                    )));
                }
                Some(_) => {}
                None => {
                    state.upload_owners.insert(dir_key, user);
                    self.save(&state)?;
                }
            }
            std::fs::create_dir_all(file.parent().expect("a file in a directory"))
                .map_err(|error| Fault::python("OSError", error))?;
        }
        Ok(file)
    }

    /// `tagBuild`: the checks of the hub's call, in its order, then a task that the
    /// "builder" runs later (and that checks again, as the task's owner).
    fn tag_build(&self, user: Option<i64>, call: &Call) -> Result<Json, Fault> {
        let user =
            user.ok_or_else(|| Fault::not_allowed("you must be logged in for this operation"))?;
        let tag = call.required(0, "tag")?;
        let build = call.required(1, "build")?;
        let force = flag(call.arg(2, "force"));
        let mut state = self.lock();
        let build = state.require_build(build)?.clone();
        let tag = state.require_tag(tag)?.clone();
        if build.state != build_state::COMPLETE {
            return Err(not_complete(&build));
        }
        state.assert_tag_access(&tag, user, force)?;
        if !tag.packages.contains(&build.name) {
            // An admin's force puts the package on the list (koji's pkglist_add).
            if !(force && is_admin(&state, user)) {
                return Err(Fault::tag(format!(
                    "Package {} not in list for {}",
                    build.name, tag.name
                )));
            }
            state.ensure_package(&build.name);
            let listed = state.tags.get_mut(&tag.name).expect("found above");
            listed.packages.insert(build.name.clone());
        }
        self.assert_tag_policy(&state, &tag, &build, user, force)?;
        let id = state.next("task");
        let created = now();
        state.tasks.insert(
            id,
            Task {
                id,
                method: "tagBuild".into(),
                state: task_state::FREE,
                owner: user,
                create_ts: created,
                completion_ts: None,
                due_ts: created + self.config.tag_task_delay.as_secs_f64(),
                request: json!([tag.id, build.id, force, null]),
                result: None,
            },
        );
        self.save(&state)?;
        Ok(json!(id))
    }

    /// `tagBuildBypass`: tags at once, for a user with the `tag` permission, still under
    /// the tag policy and the tag's lock and permission.
    fn tag_build_bypass(&self, user: Option<i64>, call: &Call) -> Result<Json, Fault> {
        let tag = call.required(0, "tag")?;
        let build = call.required(1, "build")?;
        let force = flag(call.arg(2, "force"));
        let mut state = self.lock();
        let login = user.and_then(|id| state.user_by_id(id));
        let allowed =
            login.is_some_and(|user| user.perms.contains("tag") || user.perms.contains("admin"));
        let (Some(user), true) = (user, allowed) else {
            return Err(Fault::not_allowed(match login {
                Some(user) => format!("tag permission required (logged in as {})", user.name),
                None => "tag permission required (user not logged in)".into(),
            }));
        };
        let tag = state.require_tag(tag)?.clone();
        let build = state.require_build(build)?.clone();
        self.assert_tag_policy(&state, &tag, &build, user, force)?;
        state.assert_tag_access(&tag, user, force)?;
        direct_tag_build(&mut state, &tag, &build, force)?;
        self.save(&state)?;
        Ok(Json::Null)
    }

    /// The `tag` policy for `user` tagging `build` into `tag`.
    fn assert_tag_policy(
        &self,
        state: &HubState,
        tag: &Tag,
        build: &Build,
        user: i64,
        force: bool,
    ) -> Result<(), Fault> {
        let data = PolicyData {
            tag: Some(&tag.name),
            fromtag: None,
            operation: "tag",
            package: &build.name,
            user_perms: state.user_by_id(user).map(|user| &user.perms),
            user_owns_build: build.owner_id == user,
        };
        assert_policy("tag", self.tag_policy.as_ref(), &data, force)
    }

    /// What the builder's `tagBuild` task does through `host.tagBuild`, as the task's owner:
    /// the policy, the package list, the tag's lock and permission, then the tagging.
    fn run_tag_task(&self, state: &mut HubState, task: &Task) -> Result<(), Fault> {
        let request = &task.request;
        let tag_id = request[0].as_i64().unwrap_or_default();
        let build_id = request[1].as_i64().unwrap_or_default();
        let force = flag(request.get(2));
        let build = state.require_build(&json!(build_id))?.clone();
        let tag = state.require_tag(&json!(tag_id))?.clone();
        self.assert_tag_policy(state, &tag, &build, task.owner, force)?;
        if !tag.packages.contains(&build.name) {
            // The host call names the tag by the id in the task's request.
            return Err(Fault::tag(format!(
                "Package {} not in list for {tag_id}",
                build.name
            )));
        }
        state.assert_tag_access(&tag, task.owner, force)?;
        direct_tag_build(state, &tag, &build, force)
    }

    /// The "builder daemon": runs `tagBuild` tasks whose time has come.
    pub fn run_due_tasks(&self) {
        let mut state = self.lock();
        let now = now();
        let due: Vec<Task> = state
            .tasks
            .values()
            .filter(|task| task.state == task_state::FREE && task.due_ts <= now)
            .cloned()
            .collect();
        if due.is_empty() {
            return;
        }
        for task in due {
            let outcome = self.run_tag_task(&mut state, &task);
            let task = state.tasks.get_mut(&task.id).expect("listed above");
            task.completion_ts = Some(now);
            match outcome {
                Ok(()) => {
                    task.state = task_state::CLOSED;
                    task.result = Some(Json::Null);
                }
                Err(fault) => {
                    task.state = task_state::FAILED;
                    task.result = Some(json!([fault.code, fault.text]));
                }
            }
        }
        if let Err(error) = state.save(&self.dir) {
            tracing::error!(error = %error, "cannot save the hub state");
        }
    }

    /// Changes the state behind the API's back, as an admin's SQL or admin call would
    /// (the double offers neither), and keeps it.
    pub(crate) fn edit_state<T>(&self, edit: impl FnOnce(&mut HubState) -> T) -> T {
        let mut state = self.lock();
        let outcome = edit(&mut state);
        if let Err(error) = state.save(&self.dir) {
            tracing::error!(error = %error, "cannot save the hub state");
        }
        outcome
    }
}

/// Python truthiness of an optional boolean argument (`force`).
fn flag(value: Option<&Json>) -> bool {
    match value {
        None | Some(Json::Null) | Some(Json::Bool(false)) => false,
        Some(Json::Number(number)) => number.as_f64() != Some(0.0),
        Some(Json::String(text)) => !text.is_empty(),
        Some(_) => true,
    }
}

fn is_admin(state: &HubState, user: i64) -> bool {
    state
        .user_by_id(user)
        .is_some_and(|user| user.perms.contains("admin"))
}

fn not_complete(build: &Build) -> Fault {
    Fault::tag(format!(
        "build {} not complete: state {}",
        build.nvr(),
        build_state::name(build.state)
    ))
}

/// `_direct_tag_build`: the build must be complete and, unless forced, not in the tag yet.
fn direct_tag_build(
    state: &mut HubState,
    tag: &Tag,
    build: &Build,
    force: bool,
) -> Result<(), Fault> {
    if build.state != build_state::COMPLETE {
        return Err(not_complete(build));
    }
    if state.tag_listing.contains(&(tag.id, build.id)) && !force {
        return Err(Fault::tag(format!(
            "build {} already tagged ({})",
            build.nvr(),
            tag.name
        )));
    }
    state.tag_listing.insert((tag.id, build.id));
    Ok(())
}

/// `%r` of the dict `cg_init_build` hands `new_build` once both filled it in: the
/// caller's keys first (in the order they arrive here: sorted), then the hub's.
fn new_build_data_repr(data: &Json, user: Option<i64>, cg_id: i64, package_id: i64) -> String {
    let mut entries: Vec<(String, Json)> = data
        .as_object()
        .map(|map| map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut set = |key: &str, value: Json, only_if_missing: bool| match entries
        .iter_mut()
        .find(|(existing, _)| existing == key)
    {
        Some(_) if only_if_missing => {}
        Some(entry) => entry.1 = value,
        None => entries.push((key.to_owned(), value)),
    };
    // cg_init_build
    set("owner", json!(user), false);
    set("state", json!(build_state::BUILDING), false);
    set("completion_time", Json::Null, false);
    set("cg_id", json!(cg_id), false);
    set("epoch", Json::Null, true);
    // new_build
    set("pkg_id", json!(package_id), true);
    set("extra", Json::Null, true);
    set("start_time", json!("NOW"), true);
    set("source", Json::Null, true);
    set("task_id", Json::Null, true);
    set("volume_id", json!(0), true);
    set("draft", json!(false), true);
    py_dict_repr(&entries)
}

/// The listArchives dict of an archive.
fn archive_info(build_id: i64, archive: &Archive) -> Json {
    json!({
        "id": archive.id,
        "build_id": build_id,
        "buildroot_id": archive.buildroot_id,
        "filename": archive.filename,
        "size": archive.size,
        "checksum": archive.checksum,
        "checksum_type": archive.checksum_type,
        "type_name": archive.type_name,
        "btype": archive.btype,
        "extra": archive.extra,
        "metadata_only": false,
    })
}

fn task_info(task: &Task) -> Json {
    json!({
        "id": task.id,
        "state": task.state,
        "method": task.method,
        "owner": task.owner,
        "create_ts": task.create_ts,
        "create_time": crate::state::iso_time(task.create_ts),
        "completion_ts": task.completion_ts,
        "completion_time": task.completion_ts.map(crate::state::iso_time),
        "start_ts": task.completion_ts,
        "parent": null,
        "channel_id": 1,
        "host_id": null,
        "label": null,
        "arch": "noarch",
        "priority": 10,
        "weight": 0.1,
        "waiting": null,
        "awaited": null,
    })
}

/// `koji.decode_int`: ints may travel as strings (to dodge 32-bit limits).
fn decode_int(value: &Json) -> Option<i64> {
    match value {
        Json::Number(number) => number.as_i64(),
        Json::String(text) => text.parse().ok(),
        _ => None,
    }
}

/// The name and directory checks of `get_upload_path`; the relative path under `work/`.
pub(crate) fn check_upload_path(reldir: &str, name: &str) -> Result<String, Fault> {
    if name.contains('/') || name.starts_with('.') {
        return Err(Fault::generic(format!("Invalid upload filename: {name}")));
    }
    let dir = normpath(reldir);
    if reldir.is_empty() || dir.starts_with("..") || reldir.starts_with('/') {
        return Err(Fault::generic(format!(
            "Invalid upload directory: {reldir}"
        )));
    }
    Ok(join(&dir, name))
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// The hub-side number of a metadata buildroot id (its position, from 1).
fn buildroot_number(buildroots: &[Json], metadata_id: &Json) -> i64 {
    buildroots
        .iter()
        .position(|buildroot| buildroot.get("id") == Some(metadata_id))
        .map(|index| index as i64 + 1)
        .unwrap_or(0)
}

/// `koji.pathinfo.build`: `packages/<name>/<version>/<release>`.
pub(crate) fn package_dir(dir: &Path, name: &str, version: &str, release: &str) -> PathBuf {
    dir.join("packages").join(name).join(version).join(release)
}

/// The upload area of a hub on disk.
struct DiskArea<'a> {
    dir: &'a Path,
}

impl UploadArea for DiskArea<'_> {
    fn display_path(&self, relative: &str) -> String {
        self.dir.join("work").join(relative).display().to_string()
    }
    fn size(&self, relative: &str) -> Option<u64> {
        std::fs::metadata(self.dir.join("work").join(relative))
            .ok()
            .filter(|meta| meta.is_file())
            .map(|meta| meta.len())
    }
    fn digest(&self, relative: &str, mut verifier: Verifier) -> std::io::Result<String> {
        let mut file = std::fs::File::open(self.dir.join("work").join(relative))?;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = file.read(&mut buffer)?;
            if read == 0 {
                return Ok(verifier.hexdigest());
            }
            verifier.update(&buffer[..read]);
        }
    }
    fn read_text(&self, relative: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join("work").join(relative)).ok()
    }
    fn build_dir(&self, name: &str, version: &str, release: &str) -> (bool, String) {
        let path = package_dir(self.dir, name, version, release);
        (path.exists(), path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_paths_are_checked_like_koji() {
        let cases = [
            ("osbs/1", "metadata.json", Ok("osbs/1/metadata.json")),
            ("osbs/./1/", "x.log", Ok("osbs/1/x.log")),
            ("osbs", "a/b", Err("Invalid upload filename: a/b")),
            ("osbs", ".hidden", Err("Invalid upload filename: .hidden")),
            ("../etc", "x", Err("Invalid upload directory: ../etc")),
            ("", "x", Err("Invalid upload directory: ")),
        ];
        for (dir, name, expected) in cases {
            match expected {
                Ok(path) => assert_eq!(check_upload_path(dir, name).unwrap(), path),
                Err(text) => assert_eq!(check_upload_path(dir, name).unwrap_err().text, text),
            }
        }
    }
}
