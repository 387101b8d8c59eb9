//! The generic REST verbs over storage: get, list, create, update, patch, delete, deletecollection, for every built-in resource.

use std::collections::HashMap;

use api::resources::Resource;
use base64::Engine;
use serde_json::{Value, json};
use storage::{DynStorage, ListRequest, Precondition, StorageError};

use crate::field_validation::{self, Write};
use crate::objects::{self, meta_str, metadata_mut};
use crate::request::{Rendering, Target};
use crate::status::{ApiError, from_storage};

mod eviction;

/// Largest request body accepted, as kube-apiserver (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
/// Objects larger than this are refused as too large to store.
pub const MAX_OBJECT_BYTES: usize = storage::MAX_VALUE_BYTES;

/// Shared state of the REST handlers.
pub struct Rest {
    pub storage: DynStorage,
    /// LIST and WATCH are served from here when it can.
    pub cache: std::sync::Arc<crate::cache::WatchCache>,
    /// Where Services' ClusterIPs come from.
    pub service_cidr: crate::allocator::ServiceCidr,
}

/// A successful response: HTTP status and JSON body.
pub struct Reply {
    pub code: u16,
    pub body: Value,
    /// A list written from stored bytes, sent instead of `body`.
    pub raw: Option<objects::StoredList>,
    /// Texts of `Warning` headers to answer with (unknown fields, ...).
    pub warnings: Vec<String>,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Reply::with_code(200, body)
    }

    fn with_code(code: u16, body: Value) -> Self {
        Reply {
            code,
            body,
            raw: None,
            warnings: Vec::new(),
        }
    }

    fn with_warnings(mut self, warnings: Vec<String>) -> Self {
        self.warnings.extend(warnings);
        self
    }
}

fn name_of(target: &Target) -> Result<&str, ApiError> {
    target.name.as_deref().ok_or_else(|| {
        ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )
    })
}

/// Options every mutating verb shares.
fn dry_run(query: &HashMap<String, String>) -> Result<bool, ApiError> {
    match query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid dry run value: {other:?}; supported values: \"All\""
        ))),
    }
}

/// Parses a JSON request body into an object.
pub fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large("the request body is too large"));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "error decoding request body: the object is not a JSON object",
        ));
    }
    Ok(value)
}

/// Checks `apiVersion`/`kind` of a body against the resource, filling them when absent.
fn check_kind(resource: &Resource, object: &mut Value) -> Result<(), ApiError> {
    let expected_version = resource.api_version();
    match object.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => object["apiVersion"] = json!(expected_version),
        Some(version) if version == expected_version => {}
        Some(version) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({version}) does not match the expected API version ({expected_version})"
            )));
        }
    }
    match object.get("kind").and_then(Value::as_str) {
        None | Some("") => object["kind"] = json!(resource.kind),
        Some(kind) if kind == resource.kind => {}
        Some(kind) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                resource.kind
            )));
        }
    }
    Ok(())
}

/// Metadata and per-kind rules; `previous` is the stored object an update replaces.
fn validate(resource: &Resource, object: &Value, previous: Option<&Value>) -> Result<(), ApiError> {
    let mut errors = api::validation::validate_object_meta(
        object.get("metadata"),
        resource.namespaced,
        resource.name_rule,
    );
    errors.extend(match previous {
        None => api::validation::kinds::validate_create(resource.kind, object),
        Some(previous) => api::validation::kinds::validate_update(resource.kind, previous, object),
    });
    if errors.is_empty() {
        return Ok(());
    }
    let name = meta_str(object, "name").unwrap_or_default();
    Err(ApiError::invalid(api::validation::invalid_status(
        resource.kind,
        resource.group,
        name,
        &errors,
    )))
}

/// Tracks `metadata.generation` like upstream's strategies do for kinds with a spec.
fn tracks_generation(resource: &Resource) -> bool {
    matches!(
        resource.kind,
        "Pod"
            | "ReplicationController"
            | "Deployment"
            | "ReplicaSet"
            | "StatefulSet"
            | "DaemonSet"
            | "Job"
            | "CronJob"
            | "HorizontalPodAutoscaler"
            | "Ingress"
            | "NetworkPolicy"
            | "PodDisruptionBudget"
            | "EndpointSlice"
    )
}

/// What a kind's generation follows: its spec, or for kinds without one
/// (EndpointSlice) everything but metadata.
fn generation_content(resource: &Resource, object: &Value) -> Value {
    match resource.kind {
        "EndpointSlice" => {
            let mut content = object.clone();
            if let Some(map) = content.as_object_mut() {
                map.remove("metadata");
            }
            content
        }
        _ => object.get("spec").cloned().unwrap_or(Value::Null),
    }
}

/// Upstream's DaemonSet templateGeneration, which apps/v1 shows as this
/// annotation: 1 at create, one more whenever the pod template changes.
const DAEMONSET_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn set_daemonset_template_generation(object: &mut Value, current: Option<&Value>) {
    let generation = match current {
        None => 1,
        Some(current) => {
            let before = current["metadata"]["annotations"][DAEMONSET_TEMPLATE_GENERATION]
                .as_str()
                .and_then(|g| g.parse::<i64>().ok())
                .unwrap_or(1);
            if current["spec"]["template"] != object["spec"]["template"] {
                before + 1
            } else {
                before
            }
        }
    };
    let metadata = metadata_mut(object);
    let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations[DAEMONSET_TEMPLATE_GENERATION] = json!(generation.to_string());
}

/// The status a freshly created object starts with when status is written
/// through its own subresource.
fn initial_status(resource: &Resource, object: &Value) -> Option<Value> {
    // Nodes register with their status (a kubelet's capacity, addresses and
    // conditions), which upstream's node strategy keeps on create.
    if !resource.has_status_subresource() || resource.kind == "Node" {
        return None;
    }
    Some(match resource.kind {
        "Pod" => json!({"phase": "Pending", "qosClass": api::defaults::pod_qos_class(object)}),
        "Namespace" => json!({"phase": "Active"}),
        "PersistentVolume" => json!({"phase": "Pending"}),
        "PersistentVolumeClaim" => json!({"phase": "Pending"}),
        "Service" => json!({"loadBalancer": {}}),
        _ => json!({}),
    })
}

impl Rest {
    async fn namespace_allows_create(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ApiError> {
        let Some(namespace) = namespace.filter(|_| resource.namespaced) else {
            return Ok(());
        };
        let namespaces =
            api::resources::find("", "v1", "namespaces").expect("namespaces are built in");
        let found = self
            .storage
            .get(&objects::key(namespaces, None, namespace), 0)
            .await
            .map_err(|e| from_storage(e, "", "namespaces", namespace))?;
        let Some(kv) = found else {
            return Err(ApiError::not_found("", "namespaces", namespace));
        };
        let object = objects::decode(&kv).unwrap_or_default();
        if meta_str(&object, "deletionTimestamp").is_some() {
            return Err(ApiError {
                code: 403,
                reason: "Forbidden",
                message: format!(
                    "{} is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                    crate::status::qualified(resource.group, resource.plural, name),
                ),
                details: Some(
                    json!({"name": name, "kind": resource.plural, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {namespace} is being terminated"), "field": "metadata.namespace"}]}),
                ),
            });
        }
        Ok(())
    }

    pub async fn get(&self, target: &Target, rendering: Rendering) -> Result<Reply, ApiError> {
        let resource = target.resource;
        let name = name_of(target)?;
        let object = self.read(target, name).await?.0;
        Ok(Reply::ok(render_one(resource, object, rendering)))
    }

    /// Reads the object a target names, with its storage revision.
    async fn read(&self, target: &Target, name: &str) -> Result<(Value, i64), ApiError> {
        let resource = target.resource;
        let key = objects::key(resource, target.namespace.as_deref(), name);
        let kv = self
            .storage
            .get(&key, 0)
            .await
            .map_err(|e| from_storage(e, resource.group, resource.plural, name))?
            .ok_or_else(|| ApiError::not_found(resource.group, resource.plural, name))?;
        let object = objects::decode_as(resource, &kv)
            .ok_or_else(|| ApiError::internal(format!("stored object {key} is not JSON")))?;
        Ok((object, kv.mod_revision))
    }

    pub async fn list(
        &self,
        target: &Target,
        query: &HashMap<String, String>,
        rendering: Rendering,
    ) -> Result<Reply, ApiError> {
        let resource = target.resource;
        let (selected, metadata) = self.select(target, query).await?;
        if rendering == Rendering::Object && !objects::is_converted(resource) {
            // Plain lists are written from the stored bytes: building a value
            // tree per object would cost about ten times the list's size.
            let list = objects::StoredList::new(
                &format!("{}List", resource.kind),
                &resource.api_version(),
                &metadata,
                selected.into_items(),
            );
            return Ok(Reply {
                code: 200,
                body: Value::Null,
                raw: Some(list),
                warnings: Vec::new(),
            });
        }
        let objects = selected
            .into_items()
            .filter_map(|kv| objects::decode_as(resource, &kv))
            .collect();
        Ok(Reply::ok(render_list(
            resource, objects, metadata, rendering,
        )))
    }

    /// The stored objects a list selects (one page of them when limited),
    /// with the list's metadata (resourceVersion, continue, remainingItemCount).
    async fn select(
        &self,
        target: &Target,
        query: &HashMap<String, String>,
    ) -> Result<(Selected, Value), ApiError> {
        let resource = target.resource;
        let filter = Filter::from_query(resource, query)?;
        let limit: usize = match query.get("limit").map(String::as_str) {
            None | Some("") => 0,
            Some(text) => text
                .parse::<i64>()
                .map(|n| n.max(0) as usize)
                .map_err(|_| ApiError::bad_request(format!("invalid limit {text:?}")))?,
        };
        let prefix = objects::collection_prefix(resource, target.namespace.as_deref());
        let continuing = match query.get("continue").filter(|c| !c.is_empty()) {
            Some(token) => {
                let (revision, start) = decode_continue(token)?;
                Some((revision, format!("{prefix}{start}")))
            }
            None => None,
        };
        let cached = match (&continuing, list_revision(query)?) {
            (Some((revision, start)), _) => {
                self.cache
                    .list_unchanged_since(resource, &prefix, start, *revision)
                    .await
            }
            (None, ListAt::Exact(_)) => None,
            (None, ListAt::NotOlderThan(revision)) => {
                self.cache.list(resource, &prefix, None, revision).await
            }
            (None, ListAt::Latest) => {
                let current = self
                    .storage
                    .current_revision()
                    .await
                    .map_err(|e| from_storage(e, resource.group, resource.plural, ""))?;
                self.cache.list(resource, &prefix, None, current).await
            }
        };
        if let Some(list) = cached {
            if limit == 0 {
                // A whole list is written straight from the snapshot, never
                // gathered first.
                let metadata = list_metadata(list.revision, None, None);
                return Ok((Selected::Snapshot(list, filter), metadata));
            }
            let (items, metadata) = select_page(&filter, limit, &prefix, &list);
            return Ok((Selected::Items(items), metadata));
        }
        let (mut revision, mut start_after) = match continuing {
            Some((revision, start)) => (revision, Some(start)),
            None => match list_revision(query)? {
                ListAt::Exact(revision) => (revision, None),
                _ => (0, None),
            },
        };
        let mut items = Vec::new();
        let mut next_continue = None;
        let mut remaining = None;
        loop {
            let want = if limit == 0 { 0 } else { limit - items.len() };
            let page = self
                .storage
                .list(ListRequest {
                    prefix: prefix.clone(),
                    start_after: start_after.clone(),
                    revision,
                    limit: if filter.is_everything() { want } else { want.max(500) },
                })
                .await
                .map_err(|e| match e {
                    StorageError::Compacted { .. } => ApiError::gone(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
                    ),
                    other => from_storage(other, resource.group, resource.plural, ""),
                })?;
            revision = page.revision;
            let in_page = page.kvs.len();
            let mut examined = 0;
            let mut last_key = None;
            for kv in page.kvs {
                examined += 1;
                last_key = Some(kv.key.clone());
                if filter.selects(&kv) {
                    items.push(kv);
                    if limit > 0 && items.len() == limit {
                        break;
                    }
                }
            }
            if limit > 0 && items.len() == limit {
                if examined < in_page || page.more {
                    let last = last_key.expect("a full page has a last key");
                    next_continue = Some(encode_continue(revision, &last[prefix.len()..]));
                    if filter.is_everything() {
                        remaining = Some(page.count - examined as i64);
                    }
                }
                break;
            }
            if !page.more {
                break;
            }
            start_after = last_key;
        }
        Ok((
            Selected::Items(items),
            list_metadata(revision, next_continue, remaining),
        ))
    }

    pub async fn create(
        &self,
        target: &Target,
        body: &[u8],
        query: &HashMap<String, String>,
    ) -> Result<Reply, ApiError> {
        let resource = target.resource;
        if target.name.is_some() {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let dry_run = dry_run(query)?;
        let mut object = parse_body(body)?;
        check_kind(resource, &mut object)?;
        let warnings = field_validation::check(resource, Write::Create, query, &mut object, None)?;
        let namespace = target.namespace.clone();
        {
            let metadata = metadata_mut(&mut object);
            match (
                metadata.get("namespace").and_then(Value::as_str),
                &namespace,
            ) {
                (Some(given), Some(url)) if !given.is_empty() && given != url => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                (_, Some(url)) if resource.namespaced => {
                    metadata.insert("namespace".into(), json!(url));
                }
                _ => {
                    if !resource.namespaced {
                        metadata.remove("namespace");
                    }
                }
            }
            let name_empty = metadata
                .get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if name_empty
                && let Some(prefix) = metadata
                    .get("generateName")
                    .and_then(Value::as_str)
                    .filter(|p| !p.is_empty())
            {
                let generated = format!("{prefix}{}", objects::generated_suffix());
                metadata.insert("name".into(), json!(generated));
            }
            for field in [
                "resourceVersion",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
                "selfLink",
            ] {
                metadata.remove(field);
            }
            metadata.insert("uid".into(), json!(objects::new_uid()));
            metadata.insert("creationTimestamp".into(), json!(objects::now_rfc3339()));
            if tracks_generation(resource) {
                metadata.insert("generation".into(), json!(1));
            } else {
                metadata.remove("generation");
            }
        }
        api::defaults::apply_defaults(resource.group, resource.version, resource.kind, &mut object);
        if resource.kind == "DaemonSet" {
            set_daemonset_template_generation(&mut object, None);
        }
        crate::admission::admit_create(self, resource.kind, resource.group, &mut object).await?;
        if let Some(status) = initial_status(resource, &object) {
            object["status"] = status;
        }
        validate(resource, &object, None)?;
        let name = meta_str(&object, "name").unwrap_or_default().to_string();
        self.namespace_allows_create(resource, namespace.as_deref(), &name)
            .await?;
        let bytes = objects::encode_as(resource, &object);
        if bytes.len() > MAX_OBJECT_BYTES {
            return Err(ApiError::too_large("etcdserver: request is too large"));
        }
        let key = objects::key(resource, namespace.as_deref(), &name);
        if dry_run {
            let exists = self
                .storage
                .get(&key, 0)
                .await
                .map_err(|e| from_storage(e, resource.group, resource.plural, &name))?;
            if exists.is_some() {
                return Err(ApiError::already_exists(
                    resource.group,
                    resource.plural,
                    &name,
                ));
            }
            return Ok(Reply::with_code(201, object).with_warnings(warnings));
        }
        let is_service = resource.kind == "Service";
        if is_service {
            crate::allocator::allocate(&self.storage, self.service_cidr, &mut object, None).await?;
        }
        let bytes = objects::encode_as(resource, &object);
        let written = self
            .storage
            .put(&key, bytes, Precondition::Absent)
            .await
            .map_err(|e| match e {
                StorageError::PreconditionFailed { .. } => {
                    ApiError::already_exists(resource.group, resource.plural, &name)
                }
                other => from_storage(other, resource.group, resource.plural, &name),
            });
        let written = match written {
            Ok(written) => written,
            Err(error) => {
                if is_service {
                    crate::allocator::release(&self.storage, &object).await;
                }
                return Err(error);
            }
        };
        objects::set_resource_version(&mut object, written.revision);
        Ok(Reply::with_code(201, object).with_warnings(warnings))
    }

    pub async fn update(
        &self,
        target: &Target,
        body: &[u8],
        query: &HashMap<String, String>,
    ) -> Result<Reply, ApiError> {
        let mut object = parse_body(body)?;
        check_kind(target.resource, &mut object)?;
        let name = name_of(target)?.to_string();
        if let Some(given) = meta_str(&object, "name")
            && given != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
        let (current, revision) = self.read(target, &name).await?;
        let warnings = field_validation::check(
            target.resource,
            Write::Update,
            query,
            &mut object,
            Some(&current),
        )?;
        let expected = match meta_str(&object, "resourceVersion").filter(|rv| !rv.is_empty()) {
            Some(rv) => {
                let rv: i64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                })?;
                if rv != revision {
                    return Err(ApiError::modified(
                        target.resource.group,
                        target.resource.plural,
                        &name,
                    ));
                }
                rv
            }
            None => revision,
        };
        self.replace(target, &name, current, object, expected, query)
            .await
            .map(|reply| reply.with_warnings(warnings))
    }

    /// Writes `object` over `current` (read at `expected`), keeping what
    /// clients may not change through this verb.
    async fn replace(
        &self,
        target: &Target,
        name: &str,
        current: Value,
        mut object: Value,
        expected: i64,
        query: &HashMap<String, String>,
    ) -> Result<Reply, ApiError> {
        let resource = target.resource;
        let dry_run = dry_run(query)?;
        let status_only = target.subresource.as_deref() == Some("status");
        let namespace_kind = resource.kind == "Namespace" && resource.group.is_empty();
        if namespace_kind {
            // spec.finalizers changes only through `finalize`, and `finalize`
            // changes nothing else (upstream's namespace strategies).
            let finalize = target.subresource.as_deref() == Some("finalize");
            let (mut base, from) = if finalize {
                (current.clone(), &object)
            } else {
                (object.clone(), &current)
            };
            match from["spec"].get("finalizers") {
                Some(finalizers) => base["spec"]["finalizers"] = finalizers.clone(),
                None => {
                    if let Some(spec) = base.get_mut("spec").and_then(Value::as_object_mut) {
                        spec.remove("finalizers");
                    }
                }
            }
            if finalize {
                base["metadata"]["resourceVersion"] = object["metadata"]["resourceVersion"].clone();
            }
            object = base;
        }
        if status_only {
            // The status subresource changes status and nothing else.
            let status = object.get("status").cloned();
            object = current.clone();
            match status {
                Some(status) => object["status"] = status,
                None => {
                    if let Some(map) = object.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
        } else if resource.has_status_subresource() {
            match current.get("status") {
                Some(status) => object["status"] = status.clone(),
                None => {
                    if let Some(map) = object.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
        }
        {
            let current_meta = objects::metadata(&current).cloned().unwrap_or_default();
            let metadata = metadata_mut(&mut object);
            for field in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "namespace",
                "name",
                "generation",
            ] {
                match current_meta.get(field) {
                    Some(value) => metadata.insert(field.into(), value.clone()),
                    None => metadata.remove(field),
                };
            }
            if status_only {
                // Upstream's status strategies keep labels (pods: owner
                // references, which old kubelets corrupted) and let
                // annotations and finalizers through: controllers record
                // e.g. a Deployment's revision annotation with their status.
                let kept: &[&str] = if resource.kind == "Pod" {
                    &["ownerReferences"]
                } else {
                    &["labels", "ownerReferences"]
                };
                for &field in kept {
                    match current_meta.get(field) {
                        Some(value) => metadata.insert(field.into(), value.clone()),
                        None => metadata.remove(field),
                    };
                }
            }
            metadata.remove("resourceVersion");
            metadata.remove("managedFields");
        }
        api::defaults::apply_defaults(resource.group, resource.version, resource.kind, &mut object);
        if resource.kind == "DaemonSet" && !status_only {
            set_daemonset_template_generation(&mut object, Some(&current));
        }
        if tracks_generation(resource) && !status_only {
            let spec_changed =
                generation_content(resource, &current) != generation_content(resource, &object);
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
            metadata_mut(&mut object).insert(
                "generation".into(),
                json!(if spec_changed {
                    generation + 1
                } else {
                    generation
                }),
            );
        }
        validate(resource, &object, Some(&current))?;
        if resource.kind == "Service" && !status_only && !dry_run {
            crate::allocator::allocate(
                &self.storage,
                self.service_cidr,
                &mut object,
                Some(&current),
            )
            .await?;
        }
        let key = objects::key(resource, target.namespace.as_deref(), name);
        let deleting = meta_str(&object, "deletionTimestamp").is_some();
        let finalizers_left = objects::metadata(&object)
            .and_then(|m| m.get("finalizers"))
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
            || (namespace_kind && crate::admission::namespace_spec_finalizers_left(&object));
        if dry_run {
            objects::set_resource_version(&mut object, expected);
            return Ok(Reply::ok(object));
        }
        if deleting && !finalizers_left {
            // The last finalizer is gone: the deletion completes now.
            let deleted = self
                .storage
                .delete(&key, Precondition::ModRevision(expected))
                .await
                .map_err(|e| from_storage(e, resource.group, resource.plural, name))?;
            if resource.kind == "Service" {
                crate::allocator::release(&self.storage, &current).await;
            }
            objects::set_resource_version(&mut object, deleted.revision);
            return Ok(Reply::ok(object));
        }
        let unchanged = {
            let mut before = current.clone();
            objects::set_resource_version(&mut before, 0);
            let mut after = object.clone();
            objects::set_resource_version(&mut after, 0);
            before == after
        };
        if unchanged {
            // Upstream skips writing an identical object and keeps its resourceVersion.
            objects::set_resource_version(&mut object, expected);
            return Ok(Reply::ok(object));
        }
        let bytes = objects::encode_as(resource, &object);
        if bytes.len() > MAX_OBJECT_BYTES {
            return Err(ApiError::too_large("etcdserver: request is too large"));
        }
        let written = self
            .storage
            .put(&key, bytes, Precondition::ModRevision(expected))
            .await
            .map_err(|e| from_storage(e, resource.group, resource.plural, name))?;
        objects::set_resource_version(&mut object, written.revision);
        Ok(Reply::ok(object))
    }

    pub async fn patch(
        &self,
        target: &Target,
        content_type: &str,
        body: &[u8],
        query: &HashMap<String, String>,
    ) -> Result<Reply, ApiError> {
        let resource = target.resource;
        let name = name_of(target)?.to_string();
        if body.len() > MAX_BODY_BYTES {
            return Err(ApiError::too_large("the request body is too large"));
        }
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let media = content_type.split(';').next().unwrap_or("").trim();
        // A patch without a resourceVersion applies to whatever is current:
        // on a concurrent write, re-read and apply again, as upstream does.
        for _ in 0..5 {
            let (current, revision) = self.read(target, &name).await?;
            let patched = match media {
                "application/json-patch+json" => api::patch::apply_json_patch(&current, &patch),
                "application/merge-patch+json" => api::patch::apply_merge_patch(&current, &patch),
                "application/strategic-merge-patch+json" => {
                    if !api::patch::supports_strategic_merge(resource.group, resource.kind) {
                        return Err(ApiError::unsupported_media_type(media));
                    }
                    api::patch::apply_strategic_merge_patch(
                        &current,
                        &patch,
                        resource.group,
                        resource.kind,
                    )
                }
                "application/apply-patch+yaml" => {
                    return Err(ApiError::unsupported_media_type(media));
                }
                other => return Err(ApiError::unsupported_media_type(other)),
            }
            .map_err(patch_error)?;
            let mut patched = patched;
            check_kind(resource, &mut patched)?;
            let warnings = field_validation::check(
                resource,
                Write::Patch,
                query,
                &mut patched,
                Some(&current),
            )?;
            let expected = match meta_str(&patched, "resourceVersion").filter(|rv| !rv.is_empty()) {
                Some(rv) if rv != revision.to_string() => {
                    return Err(ApiError::modified(resource.group, resource.plural, &name));
                }
                _ => revision,
            };
            match self
                .replace(target, &name, current, patched, expected, query)
                .await
            {
                Err(error)
                    if error.code == 409
                        && error.reason == "Conflict"
                        && !patch_pins_version(&patch) =>
                {
                    continue;
                }
                other => return other.map(|reply| reply.with_warnings(warnings)),
            }
        }
        Err(ApiError::modified(resource.group, resource.plural, &name))
    }

    /// GET of the scale subresource: the parent's replicas as an autoscaling/v1 Scale.
    pub async fn get_scale(&self, target: &Target) -> Result<Reply, ApiError> {
        let name = name_of(target)?;
        let (object, _) = self.read(target, name).await?;
        Ok(Reply::ok(scale_of(&object)))
    }

    /// PUT (no content type) or PATCH of the scale subresource: only
    /// `spec.replicas` reaches the parent; a resourceVersion in the Scale must
    /// match the parent's.
    pub async fn update_scale(
        &self,
        target: &Target,
        patch_type: Option<&str>,
        body: &[u8],
        query: &HashMap<String, String>,
    ) -> Result<Reply, ApiError> {
        let resource = target.resource;
        let name = name_of(target)?.to_string();
        let (current, revision) = self.read(target, &name).await?;
        let scale = scale_of(&current);
        let new_scale = match patch_type {
            None => parse_body(body)?,
            Some(media) => {
                let patch: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                match media.split(';').next().unwrap_or("").trim() {
                    "application/json-patch+json" => api::patch::apply_json_patch(&scale, &patch),
                    "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                        api::patch::apply_merge_patch(&scale, &patch)
                    }
                    other => return Err(ApiError::unsupported_media_type(other)),
                }
                .map_err(patch_error)?
            }
        };
        if let Some(rv) = meta_str(&new_scale, "resourceVersion").filter(|rv| !rv.is_empty())
            && rv != revision.to_string()
        {
            return Err(ApiError::modified(resource.group, resource.plural, &name));
        }
        let replicas = new_scale["spec"]["replicas"].as_i64().unwrap_or(0);
        if replicas < 0 {
            let error = api::validation::FieldError::invalid(
                "spec.replicas",
                json!(replicas),
                "must be greater than or equal to 0",
            );
            return Err(ApiError::invalid(api::validation::invalid_status(
                "Scale",
                "autoscaling",
                &name,
                &[error],
            )));
        }
        let mut parent = current.clone();
        parent["spec"]["replicas"] = json!(replicas);
        let main = Target {
            subresource: None,
            ..target.clone()
        };
        let written = self
            .replace(&main, &name, current, parent, revision, query)
            .await?;
        Ok(Reply::ok(scale_of(&written.body)))
    }

    /// POST pods/NAME/binding: assigns an unscheduled pod to a node, as
    /// the scheduler does; a pod already on a node is a conflict.
    pub async fn bind(&self, target: &Target, body: &[u8]) -> Result<Reply, ApiError> {
        let resource = target.resource;
        let name = name_of(target)?.to_string();
        let binding = parse_body(body)?;
        if let Some(given) = meta_str(&binding, "name")
            && given != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
        let node = binding["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if node.is_empty() {
            let error = api::validation::FieldError::required("target.name", "");
            return Err(ApiError::invalid(api::validation::invalid_status(
                "Binding",
                "",
                &name,
                &[error],
            )));
        }
        let (mut pod, revision) = self.read(target, &name).await?;
        if meta_str(&pod, "deletionTimestamp").is_some() {
            return Err(ApiError::conflict(
                resource.group,
                resource.plural,
                &name,
                "pod is being deleted, cannot be assigned to a host",
            ));
        }
        if let Some(assigned) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
            return Err(ApiError::conflict(
                resource.group,
                resource.plural,
                &name,
                &format!("pod {name} is already assigned to node \"{assigned}\""),
            ));
        }
        pod["spec"]["nodeName"] = json!(node);
        let condition = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": objects::now_rfc3339()});
        match pod["status"]["conditions"].as_array_mut() {
            Some(conditions) => {
                conditions.retain(|c| c["type"] != "PodScheduled");
                conditions.push(condition);
            }
            None => pod["status"]["conditions"] = json!([condition]),
        }
        let key = objects::key(resource, target.namespace.as_deref(), &name);
        self.storage
            .put(
                &key,
                objects::encode(&pod),
                Precondition::ModRevision(revision),
            )
            .await
            .map_err(|e| from_storage(e, resource.group, resource.plural, &name))?;
        Ok(Reply::with_code(
            201,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        ))
    }

    pub async fn delete(
        &self,
        target: &Target,
        body: &[u8],
        query: &HashMap<String, String>,
    ) -> Result<Reply, ApiError> {
        let resource = target.resource;
        let name = name_of(target)?.to_string();
        let options = delete_options(body, query)?;
        let dry_run = dry_run(query)? || options.dry_run;
        let (mut object, revision) = self.read(target, &name).await?;
        let meta = objects::metadata(&object).cloned().unwrap_or_default();
        if let Some(uid) = &options.precondition_uid
            && meta.get("uid").and_then(Value::as_str) != Some(uid)
        {
            return Err(ApiError::conflict(
                resource.group,
                resource.plural,
                &name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta.get("uid").and_then(Value::as_str).unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = &options.precondition_resource_version
            && *rv != revision.to_string()
        {
            return Err(ApiError::conflict(
                resource.group,
                resource.plural,
                &name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {revision}"
                ),
            ));
        }
        let key = objects::key(resource, target.namespace.as_deref(), &name);
        if resource.kind == "Pod" && resource.group.is_empty() {
            let period = pod_grace_period(&object, options.grace_period);
            let pending = meta
                .get("deletionGracePeriodSeconds")
                .and_then(Value::as_i64);
            if period > 0 {
                // A pod on a node is removed by its kubelet once the
                // containers have stopped; the delete only marks it, or
                // shortens a grace period already running.
                if pending.is_some_and(|pending| pending <= period) {
                    return Ok(Reply::ok(object));
                }
                let deadline = objects::now_unix() + period;
                let metadata = metadata_mut(&mut object);
                metadata.insert(
                    "deletionTimestamp".into(),
                    json!(objects::rfc3339(deadline)),
                );
                metadata.insert("deletionGracePeriodSeconds".into(), json!(period));
                if !dry_run {
                    self.write_pending_delete(resource, &key, &mut object, revision)
                        .await?;
                }
                return Ok(Reply::ok(object));
            }
        }
        let mut finalizers: Vec<Value> = meta
            .get("finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        match options.propagation.as_deref() {
            Some("Foreground") => push_unique(&mut finalizers, "foregroundDeletion"),
            Some("Orphan") => push_unique(&mut finalizers, "orphan"),
            Some("Background") | None => {}
            Some(other) => {
                return Err(ApiError::invalid(api::validation::invalid_status(
                    "DeleteOptions",
                    "",
                    "",
                    &[api::validation::FieldError::not_supported(
                        "propagationPolicy",
                        json!(other),
                        &["Foreground", "Background", "Orphan"],
                    )],
                )));
            }
        }
        // Namespaces with `spec.finalizers` finish through their controller.
        let namespace_finalizing = resource.kind == "Namespace"
            && crate::admission::namespace_spec_finalizers_left(&object);
        if !finalizers.is_empty() || namespace_finalizing {
            if meta.get("deletionTimestamp").is_none() {
                let metadata = metadata_mut(&mut object);
                metadata.insert("deletionTimestamp".into(), json!(objects::now_rfc3339()));
                metadata.insert(
                    "deletionGracePeriodSeconds".into(),
                    json!(options.grace_period.unwrap_or(0)),
                );
                if !finalizers.is_empty() {
                    metadata.insert("finalizers".into(), Value::Array(finalizers));
                }
                if namespace_finalizing {
                    object["status"]["phase"] = json!("Terminating");
                }
                if !dry_run {
                    self.write_pending_delete(resource, &key, &mut object, revision)
                        .await?;
                }
            }
            // Upstream answers 200 for a delete left pending on finalizers.
            return Ok(Reply::ok(object));
        }
        if dry_run {
            return Ok(Reply::ok(object));
        }
        let deleted = self
            .storage
            .delete(&key, Precondition::ModRevision(revision))
            .await
            .map_err(|e| from_storage(e, resource.group, resource.plural, &name))?;
        if resource.kind == "Service" {
            crate::allocator::release(&self.storage, &object).await;
        }
        objects::set_resource_version(&mut object, deleted.revision);
        Ok(Reply::ok(deleted_reply(resource, object)))
    }

    /// Stores an object marked for deletion (still waiting on a grace period
    /// or finalizers), if it has not changed since `revision`.
    async fn write_pending_delete(
        &self,
        resource: &Resource,
        key: &str,
        object: &mut Value,
        revision: i64,
    ) -> Result<(), ApiError> {
        let name = meta_str(object, "name").unwrap_or_default().to_string();
        let written = self
            .storage
            .put(
                key,
                objects::encode_as(resource, object),
                Precondition::ModRevision(revision),
            )
            .await
            .map_err(|e| from_storage(e, resource.group, resource.plural, &name))?;
        objects::set_resource_version(object, written.revision);
        Ok(())
    }

    pub async fn delete_collection(
        &self,
        target: &Target,
        body: &[u8],
        query: &HashMap<String, String>,
    ) -> Result<Reply, ApiError> {
        let resource = target.resource;
        if !resource.verbs.contains(&"deletecollection") {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
        let (selected, _) = self.select(target, query).await?;
        let items: Vec<Value> = selected
            .into_items()
            .filter_map(|kv| objects::decode_as(resource, &kv))
            .collect();
        let mut deleted = Vec::new();
        for item in items {
            let Some(name) = meta_str(&item, "name") else {
                continue;
            };
            let one = Target {
                name: Some(name.to_string()),
                namespace: meta_str(&item, "namespace").map(str::to_string),
                ..target.clone()
            };
            match self.delete(&one, body, query).await {
                Ok(reply) => deleted.push(reply.body),
                Err(error) if error.code == 404 => {}
                Err(error) => return Err(error),
            }
        }
        let revision = self.storage.current_revision().await.unwrap_or_default();
        Ok(Reply::ok(render_list(
            resource,
            deleted,
            json!({"resourceVersion": revision.to_string()}),
            Rendering::Object,
        )))
    }
}

/// The autoscaling/v1 Scale view of a scalable object.
fn scale_of(object: &Value) -> Value {
    let metadata = objects::metadata(object).cloned().unwrap_or_default();
    let pick = |field: &str| metadata.get(field).cloned().unwrap_or(Value::Null);
    let selector = match object["spec"]["selector"].as_object() {
        // ReplicationControllers select with a plain label map.
        Some(map) if !map.contains_key("matchLabels") && !map.contains_key("matchExpressions") => {
            let mut pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            pairs.sort();
            pairs.join(",")
        }
        Some(_) => {
            api::selector::LabelSelector::from_label_selector_json(&object["spec"]["selector"])
                .map(|selector| selector.to_string())
                .unwrap_or_default()
        }
        None => String::new(),
    };
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": pick("name"),
            "namespace": pick("namespace"),
            "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"),
            "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(1)},
        "status": {"replicas": object["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

/// What a completed delete answers: most resources answer a Success
/// Status naming the object; pods, services and namespaces (upstream's
/// `ReturnDeletedObject` registries) answer the deleted object itself.
fn deleted_reply(resource: &Resource, object: Value) -> Value {
    if matches!(resource.kind, "Pod" | "Service" | "Namespace") {
        return object;
    }
    let mut details = json!({
        "name": meta_str(&object, "name").unwrap_or_default(),
        "kind": resource.plural,
        "uid": meta_str(&object, "uid").unwrap_or_default(),
    });
    if !resource.group.is_empty() {
        details["group"] = json!(resource.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

fn push_unique(finalizers: &mut Vec<Value>, finalizer: &str) {
    if !finalizers.iter().any(|f| f == finalizer) {
        finalizers.push(json!(finalizer));
    }
}

fn patch_pins_version(patch: &Value) -> bool {
    patch
        .get("metadata")
        .and_then(|m| m.get("resourceVersion"))
        .is_some_and(|rv| !rv.is_null())
}

fn patch_error(error: api::patch::PatchError) -> ApiError {
    ApiError {
        code: error.http_status(),
        reason: error.reason(),
        message: error.to_string(),
        details: None,
    }
}

/// The grace period a pod delete gets, as upstream's pod strategy decides:
/// the request's, else the pod's `terminationGracePeriodSeconds`, else 30;
/// but none for a pod no node runs (unscheduled or finished).
fn pod_grace_period(pod: &Value, requested: Option<i64>) -> i64 {
    let unscheduled = pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    if unscheduled || finished {
        return 0;
    }
    requested
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30)
        .max(0)
}

/// What DELETE's body and query ask for.
struct DeleteOptions {
    grace_period: Option<i64>,
    propagation: Option<String>,
    precondition_uid: Option<String>,
    precondition_resource_version: Option<String>,
    dry_run: bool,
}

fn delete_options(body: &[u8], query: &HashMap<String, String>) -> Result<DeleteOptions, ApiError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let orphan_dependents = body
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .or_else(|| query.get("orphanDependents").map(|v| v == "true"));
    let propagation = body
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| query.get("propagationPolicy").cloned())
        .or(match orphan_dependents {
            Some(true) => Some("Orphan".into()),
            Some(false) => Some("Background".into()),
            None => None,
        });
    let grace_period = body
        .get("gracePeriodSeconds")
        .and_then(Value::as_i64)
        .or_else(|| query.get("gracePeriodSeconds").and_then(|v| v.parse().ok()));
    let preconditions = body.get("preconditions");
    Ok(DeleteOptions {
        grace_period,
        propagation,
        precondition_uid: preconditions
            .and_then(|p| p.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_resource_version: preconditions
            .and_then(|p| p.get("resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run: body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|v| v == "All")),
    })
}

/// The objects a list selected.
enum Selected {
    /// Gathered already (a page, or read from storage).
    Items(Vec<storage::KeyValue>),
    /// A whole collection in the watch cache, filtered as it is read.
    Snapshot(crate::cache::CacheList, Filter),
}

impl Selected {
    fn into_items(self) -> Box<dyn Iterator<Item = storage::KeyValue> + Send> {
        match self {
            Selected::Items(items) => Box::new(items.into_iter()),
            Selected::Snapshot(list, filter) => {
                Box::new(list.into_items().filter(move |kv| filter.selects(kv)))
            }
        }
    }
}

/// Which state a list without `continue` reads.
enum ListAt {
    /// The most recent state (resourceVersion unset): a consistent read.
    Latest,
    /// Any state at least this new (resourceVersion "0" is 0).
    NotOlderThan(i64),
    /// Exactly this revision (resourceVersionMatch=Exact).
    Exact(i64),
}

fn list_revision(query: &HashMap<String, String>) -> Result<ListAt, ApiError> {
    let rv = query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let exact = query.get("resourceVersionMatch").map(String::as_str) == Some("Exact");
    match rv {
        "" => Ok(ListAt::Latest),
        "0" => Ok(ListAt::NotOlderThan(0)),
        text => {
            let revision: i64 = text
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {text:?}")))?;
            Ok(if exact {
                ListAt::Exact(revision)
            } else {
                ListAt::NotOlderThan(revision)
            })
        }
    }
}

/// One page of a list read at `revision` from the watch cache: the
/// selected items up to `limit`, and the metadata to continue after them.
fn select_page(
    filter: &Filter,
    limit: usize,
    prefix: &str,
    list: &crate::cache::CacheList,
) -> (Vec<storage::KeyValue>, Value) {
    let revision = list.revision;
    let mut items = Vec::new();
    for kv in list.items() {
        if !filter.selects(&kv) {
            continue;
        }
        items.push(kv);
        if limit > 0 && items.len() == limit {
            break;
        }
    }
    let mut next_continue = None;
    let mut remaining = None;
    if limit > 0 && items.len() == limit {
        let last = &items[items.len() - 1].key;
        let left = list.count_after(last);
        if left > 0 {
            next_continue = Some(encode_continue(revision, &last[prefix.len()..]));
            if filter.is_everything() {
                remaining = Some(left as i64);
            }
        }
    }
    (items, list_metadata(revision, next_continue, remaining))
}

fn list_metadata(revision: i64, next_continue: Option<String>, remaining: Option<i64>) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some(token) = next_continue {
        metadata["continue"] = json!(token);
        if let Some(remaining) = remaining.filter(|r| *r > 0) {
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    metadata
}

/// The continue token: upstream's base64 JSON form, so clients can treat it as opaque.
fn encode_continue(revision: i64, start: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": start});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(i64, String), ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .map_err(|_| invalid())?;
    let token: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let revision = token["rv"]
        .as_i64()
        .filter(|rv| *rv > 0)
        .ok_or_else(invalid)?;
    let start = token["start"].as_str().ok_or_else(invalid)?;
    if start.contains("..") || start.starts_with('/') {
        return Err(invalid());
    }
    Ok((revision, start.to_string()))
}

/// Label and field selectors of a list or watch.
pub struct Filter {
    resource: &'static Resource,
    labels: api::selector::LabelSelector,
    fields: api::selector::FieldSelector,
}

impl Filter {
    pub fn from_query(
        resource: &'static Resource,
        query: &HashMap<String, String>,
    ) -> Result<Filter, ApiError> {
        let labels = api::selector::parse_label_selector(
            query.get("labelSelector").map_or("", String::as_str),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let fields = api::selector::parse_field_selector(
            query.get("fieldSelector").map_or("", String::as_str),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
        fields
            .check_supported(&resource.supported_field_selectors())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Filter {
            resource,
            labels,
            fields,
        })
    }

    pub fn is_everything(&self) -> bool {
        self.labels.is_everything() && self.fields.is_everything()
    }

    /// Whether a stored object is selected (decoding it only when needed).
    pub fn selects(&self, kv: &storage::KeyValue) -> bool {
        self.is_everything()
            || objects::decode_as(self.resource, kv).is_some_and(|object| self.matches(&object))
    }

    pub fn matches(&self, object: &Value) -> bool {
        let labels = objects::metadata(object)
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_object);
        self.labels.matches(labels)
            && self
                .fields
                .matches(|field| Some(objects::field_value(object, field)))
    }
}

/// One object as the client asked for it.
pub fn render_one(resource: &Resource, object: Value, rendering: Rendering) -> Value {
    match rendering {
        Rendering::Object => object,
        Rendering::PartialMetadata => partial_metadata(&object),
        Rendering::Table => {
            let rv = meta_str(&object, "resourceVersion")
                .unwrap_or_default()
                .to_string();
            let mut table = api::table::table(
                resource.plural,
                resource.group,
                std::slice::from_ref(&object),
                objects::now_unix(),
                api::table::IncludeObject::Metadata,
            );
            table["metadata"]["resourceVersion"] = json!(rv);
            table
        }
    }
}

fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// A list as the client asked for it; list items carry no kind or apiVersion.
pub fn render_list(
    resource: &Resource,
    items: Vec<Value>,
    metadata: Value,
    rendering: Rendering,
) -> Value {
    match rendering {
        Rendering::Object => {
            let items: Vec<Value> = items
                .into_iter()
                .map(|mut item| {
                    if let Some(map) = item.as_object_mut() {
                        map.remove("kind");
                        map.remove("apiVersion");
                    }
                    item
                })
                .collect();
            json!({
                "kind": format!("{}List", resource.kind),
                "apiVersion": resource.api_version(),
                "metadata": metadata,
                "items": items,
            })
        }
        Rendering::PartialMetadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "items": items.iter().map(partial_metadata).collect::<Vec<_>>(),
        }),
        Rendering::Table => {
            let mut table = api::table::table(
                resource.plural,
                resource.group,
                &items,
                objects::now_unix(),
                api::table::IncludeObject::Metadata,
            );
            table["metadata"] = metadata;
            table
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_refuse_tampering() {
        let token = encode_continue(42, "default/web-2");
        assert_eq!(
            decode_continue(&token).unwrap(),
            (42, "default/web-2".to_string())
        );
        assert_eq!(decode_continue("not base64!").unwrap_err().code, 400);
        let escaping = encode_continue(42, "../secrets/x");
        assert_eq!(decode_continue(&escaping).unwrap_err().code, 400);
    }

    #[test]
    fn kinds_in_bodies_must_match_the_url() {
        let pods = api::resources::find("", "v1", "pods").unwrap();
        let mut object = json!({"metadata": {"name": "x"}});
        check_kind(pods, &mut object).unwrap();
        assert_eq!(
            (object["kind"].as_str(), object["apiVersion"].as_str()),
            (Some("Pod"), Some("v1"))
        );
        let mut wrong = json!({"kind": "Service", "apiVersion": "v1"});
        assert_eq!(check_kind(pods, &mut wrong).unwrap_err().code, 400);
        let mut wrong_version = json!({"kind": "Pod", "apiVersion": "apps/v1"});
        assert!(
            check_kind(pods, &mut wrong_version)
                .unwrap_err()
                .message
                .contains("does not match the expected API version (v1)")
        );
    }
}
