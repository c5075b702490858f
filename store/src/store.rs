//! The Store: every write of an object — create, update (and so every patch, apply, status
//! and scale write), delete and deletecollection — for any resource, whoever makes it.
//!
//! # Why one place
//!
//! A write is more than a storage transaction: the metadata rules of [`kubecache_apimachinery::objects`]
//! (uid, creationTimestamp, generation, what a status write may change), the admission chain
//! of [`kubecache_admission`] (defaults, validation, the clusterIP allocation) and the field
//! ownership of [`kubecache_apimachinery::managed`] must run, in kube-apiserver's order, before anything is
//! written. When the HTTP handlers, the bootstrap writers (default namespaces, the RBAC
//! policy) and the controllers (namespace finalizer, ClusterRole aggregation) each wrote on
//! their own, those rules applied to some writers and not others. Here they apply to all:
//! handlers parse the request and shape the answer, and call the Store in between; the
//! server's own writers call it with a [`Writer::internal`] and no request at all.
//!
//! # The one retry loop
//!
//! Every read-modify-write goes through [`Store::guaranteed_update`] (kube's
//! `GuaranteedUpdate`): read the current object, ask the caller for a [`Plan`] (the updated
//! object, a deletion mark, a removal, or nothing), run admission and the metadata rules on
//! an update, and write with a compare-and-swap on the mod_revision that was read. When
//! another writer got there first, the loop starts again from the value storage returned —
//! unless the caller pinned a resourceVersion (a client precondition), which makes the lost
//! race the client's: 409 Conflict. A write that changes nothing is not written (no new
//! revision, no watch event). There is no other optimistic-concurrency loop in the server.
//!
//! # Conversion
//!
//! Callers hand the Store objects in the shape of the resource they write and get answers in
//! it; what is stored may be another version's shape (events.k8s.io/v1 Events are stored as
//! core/v1, a custom resource in its CRD's storage version). The Store awaits the strategy's
//! conversions itself, off any lock and outside the transaction: the object read is
//! converted to the served shape before the caller's plan and admission see it (so they see
//! what the client sent and reads return, as in kube), and the object to write is converted
//! to the stored shape after admission, before it is encoded. A conversion that fails (a
//! custom resource's webhook) fails the write with nothing written.
//!
//! # What stays outside
//!
//! Reads (GET, LIST, WATCH) go through [`kubecache_cache::ReadPath`]. The clusterIP
//! allocator ([`kubecache_admission::service_ips`]) writes its IPAddress objects to storage
//! itself (one key per IP, with create-if-absent and CAS deletes, inside the Service's own
//! admission): they are served as `networking.k8s.io/v1` ipaddresses, but no admission or
//! managedFields apply to them (kube's allocator writes them with its own client).

use bytes::Bytes;
use kubecache_apimachinery::registry::Resource;
use kubecache_core::authz::{GROUP_MASTERS, UserInfo};
use kubecache_core::registry::ResourceInfo;
use kubecache_core::status::ApiError;
use kubecache_core::storage::{KeyValue, StorageError};
use serde_json::{Value, json};

use crate::Context;
use kubecache_admission::{self as admission, Admitted, Attributes, Operation};
use kubecache_apimachinery::objects;
use kubecache_apimachinery::strategy::Deletion;
use kubecache_core::request::Subresource;
use kubecache_core::status::storage_error;

/// Who writes and how: what the Store needs to know of a request, so that the server's own
/// writers need none.
#[derive(Debug, Clone)]
pub struct Writer {
    /// Who asks: the request's authenticated user, or `system:apiserver` for the server's
    /// own writes (kube's loopback user); for admission and audit to come.
    pub user: UserInfo,
    /// The field manager recorded in `managedFields` as an `Update` entry; `None` when the
    /// caller records ownership itself (server-side apply).
    pub manager: Option<String>,
    /// The subresource written (`status`, `scale`), `None` for the main resource: what the
    /// write may change and under which managedFields entry it is recorded.
    pub subresource: Option<Subresource>,
    /// `dryRun=All`: everything runs, nothing is kept.
    pub dry_run: bool,
}

impl Writer {
    /// The server writing on its own behalf (bootstrap, controllers), recorded in
    /// managedFields as `manager`.
    pub fn internal(manager: &str) -> Writer {
        Writer {
            user: UserInfo {
                name: "system:apiserver".to_string(),
                groups: vec![GROUP_MASTERS.to_string()],
                ..UserInfo::default()
            },
            manager: Some(manager.to_string()),
            subresource: None,
            dry_run: false,
        }
    }
}

/// A create's outcome.
#[derive(Debug)]
pub struct Created {
    /// The object as stored, with its resourceVersion (none on a dry run).
    pub object: Value,
    /// The stored bytes and their revision (`None` on a dry run), so an answer can splice
    /// the resourceVersion into them rather than serialize the object again.
    pub stored: Option<(Bytes, i64)>,
}

/// What became of the object a delete named.
#[derive(Debug)]
pub enum Deleted {
    /// Removed from storage; the object as it was last, with the deletion's revision.
    Removed(Value),
    /// Marked for deletion (finalizers pending or a namespace terminating).
    Marked(Value),
}

/// A delete's preconditions (`DeleteOptions.preconditions`), checked against every fresh
/// read.
#[derive(Debug, Default, Clone)]
pub struct Preconditions {
    pub uid: Option<String>,
    pub resource_version: Option<String>,
}

impl Preconditions {
    /// Whether `current` meets the preconditions: a 409 Conflict when it does not.
    pub fn check(
        &self,
        resource: &ResourceInfo,
        name: &str,
        current: &Value,
    ) -> Result<(), ApiError> {
        let uid = objects::meta_str(current, "uid").unwrap_or("");
        if let Some(expected) = self.uid.as_deref().filter(|u| *u != uid) {
            return Err(ApiError::conflict(
                &resource.group,
                &resource.resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {expected}, UID in object meta: {uid}"
                ),
            ));
        }
        let rv = objects::meta_str(current, "resourceVersion").unwrap_or("");
        if let Some(expected) = self.resource_version.as_deref().filter(|v| *v != rv) {
            return Err(ApiError::conflict(
                &resource.group,
                &resource.resource,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {expected}, ResourceVersion in object meta: {rv}"
                ),
            ));
        }
        Ok(())
    }
}

/// What a caller of the loop wants done with the object it was shown.
enum Plan {
    /// Nothing: the answer is the object as read.
    Keep,
    /// This successor, after admission and the metadata rules of an update. A
    /// resourceVersion in it is the client's precondition.
    Update(Value),
    /// This object as is: metadata only the server sets (a deletion mark), so no admission.
    Mark(Value),
    /// The object leaves storage.
    Remove,
}

/// What the loop did.
enum Written {
    /// Nothing was written (no change, or already marked); the object as read.
    Unchanged(Value),
    /// The object was replaced (or would be, on a dry run).
    Replaced(Value),
    /// The object was removed (or would be, on a dry run).
    Removed(Value),
}

impl Written {
    fn into_object(self) -> Value {
        match self {
            Written::Unchanged(o) | Written::Replaced(o) | Written::Removed(o) => o,
        }
    }
}

/// What one attempt ends with: a storage operation, or an answer without one.
enum Step {
    /// Nothing to write (a dry run, or an update that changes nothing).
    Done(Written),
    Replace {
        object: Value,
        bytes: Bytes,
        admitted: Admitted,
    },
    /// `answer` is the object to answer with (an update's result); `None` answers with the
    /// object as read.
    Remove { answer: Option<Value> },
}

/// The writes of one resource; cheap to make, one per call. Generic over the context (not
/// `dyn`) so that it hands admission its `&dyn kubecache_admission::Context` without trait
/// upcasting, which the crate's minimum Rust version lacks.
pub struct Store<'a, C: Context> {
    context: &'a C,
    resource: &'a Resource,
}

impl<'a, C: Context> Store<'a, C> {
    pub fn new(context: &'a C, resource: &'a Resource) -> Store<'a, C> {
        Store { context, resource }
    }

    /// Creates `object` (decoded, in the resource's shape, its namespace checked): the
    /// metadata rules of a create, the mutating plugins, the writer's managedFields entry, the
    /// validating plugins and allocation, the conversion to the stored shape, then a
    /// transaction on "key absent". The answer is in the resource's shape.
    pub async fn create(
        &self,
        writer: &Writer,
        namespace: Option<&str>,
        mut object: Value,
    ) -> Result<Created, ApiError> {
        let resource = self.resource;
        if let Some(refused) = resource.strategy().refuse_create() {
            return Err(refused);
        }
        objects::prepare_create(resource, &mut object);
        resource
            .strategy()
            .record_requester(&mut object, &writer.user);
        // Field ownership is recorded between mutation and validation, as for updates: the
        // writer owns the defaulted fields, as kube (which defaults while decoding) records.
        let attrs = self.attributes(writer, namespace, None);
        admission::mutate(&attrs, &mut object).await?;
        self.record_manager(writer, None, &mut object);
        let admitted = admission::admit(&attrs, &mut object).await?;
        let name = objects::name(&object).to_string();
        let key = self.context.object_key(resource, namespace, &name);
        let already_exists =
            || ApiError::already_exists(&resource.group, &resource.resource, &name);
        if writer.dry_run {
            let found = self
                .context
                .backend()
                .get(&key)
                .await
                .map_err(storage_error)?;
            return match found {
                Some(_) => Err(already_exists()),
                None => Ok(Created {
                    object,
                    stored: None,
                }),
            };
        }
        let bytes = match self.to_storage(&mut object).await {
            Ok(bytes) => bytes,
            Err(e) => {
                admitted.settle(self.context, false).await;
                return Err(e);
            }
        };
        let created = self.context.backend().create(&key, bytes.clone()).await;
        admitted.settle(self.context, created.is_ok()).await;
        let kv = created.map_err(|e| match e {
            StorageError::KeyExists { .. } => already_exists(),
            other => storage_error(other),
        })?;
        objects::set_resource_version(&mut object, kv.mod_revision);
        Ok(Created {
            object,
            stored: Some((bytes, kv.mod_revision)),
        })
    }

    /// Updates the object: `try_update` maps the current object to its successor, and is
    /// called again on a fresh read after a lost race (see [`Store::guaranteed_update`]). A
    /// successor whose deletion was pending and that has no finalizers left is removed.
    pub async fn update<F>(
        &self,
        writer: &Writer,
        namespace: Option<&str>,
        name: &str,
        mut try_update: F,
    ) -> Result<Value, ApiError>
    where
        F: FnMut(&Value) -> Result<Value, ApiError>,
    {
        let written = self
            .guaranteed_update(writer, namespace, name, |current| {
                try_update(current).map(Plan::Update)
            })
            .await?;
        Ok(written.into_object())
    }

    /// Deletes the object after the client's preconditions: an object with finalizers (or
    /// of a resource that terminates, namespaces) is only marked with a
    /// `deletionTimestamp`; anything else leaves storage.
    pub async fn delete(
        &self,
        writer: &Writer,
        namespace: Option<&str>,
        name: &str,
        preconditions: &Preconditions,
    ) -> Result<Deleted, ApiError> {
        let resource = self.resource;
        admission::admit_delete(resource, name)?;
        let strategy = resource.strategy();
        let deletion = strategy.deletion();
        let terminating = deletion == Deletion::Terminating;
        let written = self
            .guaranteed_update(writer, namespace, name, |current| {
                preconditions.check(resource, name, current)?;
                let graceful =
                    deletion != Deletion::Immediate || !objects::finalizers(current).is_empty();
                if !graceful {
                    return Ok(Plan::Remove);
                }
                if objects::is_deleting(current) {
                    return Ok(Plan::Keep);
                }
                let mut marked = current.clone();
                let meta = objects::metadata_mut(&mut marked);
                meta.insert("deletionTimestamp".into(), json!(objects::now_rfc3339()));
                meta.insert("deletionGracePeriodSeconds".into(), json!(0));
                strategy.mark_deleting(&mut marked);
                Ok(Plan::Mark(marked))
            })
            .await?;
        Ok(match written {
            Written::Removed(object) => Deleted::Removed(object),
            Written::Unchanged(object) => Deleted::Marked(object),
            Written::Replaced(object) => {
                if terminating && !writer.dry_run {
                    // Creates in the namespace now read it at this revision or newer, and
                    // the finalizer wakes up to empty it.
                    let revision = objects::resource_version(&object)?.unwrap_or_default();
                    self.context
                        .terminating_namespaces()
                        .lock()
                        .insert(name.to_string(), revision);
                    self.context.namespace_deleted().notify_one();
                }
                Deleted::Marked(object)
            }
        })
    }

    /// Deletes each of `items` (namespace, name) as [`Store::delete`] does; one already gone
    /// is skipped. The outcomes, in order.
    pub async fn delete_collection(
        &self,
        writer: &Writer,
        preconditions: &Preconditions,
        items: &[(Option<&str>, &str)],
    ) -> Result<Vec<Deleted>, ApiError> {
        let mut deleted = Vec::new();
        for &(namespace, name) in items {
            match self.delete(writer, namespace, name, preconditions).await {
                Ok(outcome) => deleted.push(outcome),
                // Someone else deleted it first: it is gone either way.
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// Removes an object whose deletion is pending and whose finalizers are all gone (the
    /// namespace finalizer's last step, once the namespace is empty); one that still has
    /// finalizers, or is not being deleted, is left as it is (`Marked`).
    pub async fn remove_finalized(
        &self,
        writer: &Writer,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Deleted, ApiError> {
        let written = self
            .guaranteed_update(writer, namespace, name, |current| {
                let finalized =
                    objects::is_deleting(current) && objects::finalizers(current).is_empty();
                Ok(if finalized { Plan::Remove } else { Plan::Keep })
            })
            .await?;
        Ok(match written {
            Written::Removed(object) => Deleted::Removed(object),
            Written::Unchanged(object) | Written::Replaced(object) => Deleted::Marked(object),
        })
    }

    /// The read-modify-write loop, the only one in the server (kube's `GuaranteedUpdate`; see
    /// the module documentation). `plan` sees the object as read, with its resourceVersion.
    async fn guaranteed_update<F>(
        &self,
        writer: &Writer,
        namespace: Option<&str>,
        name: &str,
        mut plan: F,
    ) -> Result<Written, ApiError>
    where
        F: FnMut(&Value) -> Result<Plan, ApiError>,
    {
        let resource = self.resource;
        let key = self.context.object_key(resource, namespace, name);
        let not_found = || ApiError::not_found(&resource.group, &resource.resource, name);
        let modified = || ApiError::modified(&resource.group, &resource.resource, name);
        // The value a lost race returned: the next attempt starts from it without a read.
        let mut current: Option<KeyValue> = None;
        // No bound on the attempts, as in kube: a lost race means another writer's write
        // landed, so the writers as a whole always progress, and a request's wait is bounded
        // by its timeout (the filter chain's). A fixed bound made a busy object answer 409s to
        // writers that never named a resourceVersion.
        loop {
            let kv = match current.take() {
                Some(kv) => kv,
                None => self
                    .context
                    .backend()
                    .get(&key)
                    .await
                    .map_err(storage_error)?
                    .ok_or_else(not_found)?,
            };
            let old = objects::decode(&kv)?;
            let old = if self.resource.converts() {
                self.resource.strategy().convert_to_served(old).await?
            } else {
                old
            };
            // `pinned`: the client named the revision it updates; a lost race is a 409.
            let (step, pinned) = match plan(&old)? {
                Plan::Keep => return Ok(Written::Unchanged(old)),
                Plan::Mark(object) if writer.dry_run => return Ok(Written::Replaced(object)),
                Plan::Remove if writer.dry_run => return Ok(Written::Removed(old)),
                Plan::Mark(mut object) => {
                    let bytes = self.to_storage(&mut object).await?;
                    let admitted = Admitted::default();
                    let step = Step::Replace {
                        object,
                        bytes,
                        admitted,
                    };
                    (step, false)
                }
                Plan::Remove => (Step::Remove { answer: None }, false),
                Plan::Update(new) => {
                    let precondition = objects::resource_version(&new)?;
                    if precondition.is_some_and(|rv| rv != kv.mod_revision) {
                        return Err(modified());
                    }
                    let step = self.admit_update(writer, namespace, name, &old, &kv, new);
                    (step.await?, precondition.is_some())
                }
            };
            let lost = match step {
                Step::Done(written) => return Ok(written),
                Step::Replace {
                    mut object,
                    bytes,
                    admitted,
                } => match self
                    .context
                    .backend()
                    .update(&key, bytes, kv.mod_revision)
                    .await
                {
                    Ok(written) => {
                        admitted.settle(self.context, true).await;
                        objects::set_resource_version(&mut object, written.mod_revision);
                        return Ok(Written::Replaced(object));
                    }
                    Err(e) => e,
                },
                Step::Remove { answer } => {
                    match self
                        .context
                        .backend()
                        .delete(&key, Some(kv.mod_revision))
                        .await
                    {
                        Ok(deleted) => {
                            admission::removed(self.context, resource, &old).await;
                            let mut object = answer.unwrap_or(old);
                            // The answer carries the deletion's revision, as the DELETED
                            // event does.
                            objects::set_resource_version(&mut object, deleted.revision);
                            return Ok(Written::Removed(object));
                        }
                        Err(e) => e,
                    }
                }
            };
            match lost {
                StorageError::Conflict {
                    current: Some(kv), ..
                } if !pinned => current = Some(kv),
                StorageError::Conflict { current: None, .. } | StorageError::NotFound { .. } => {
                    return Err(not_found());
                }
                StorageError::Conflict { .. } => return Err(modified()),
                other => return Err(storage_error(other)),
            }
        }
    }

    /// One attempt's update: the successor through the mutating plugins, the metadata rules
    /// of an update (after mutation, so defaults never bump `generation`), the writer's
    /// managedFields entry, then validation and allocation.
    async fn admit_update(
        &self,
        writer: &Writer,
        namespace: Option<&str>,
        name: &str,
        old: &Value,
        kv: &KeyValue,
        mut new: Value,
    ) -> Result<Step, ApiError> {
        if objects::name(&new) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                objects::name(&new)
            )));
        }
        let status_write = writer.subresource.is_some_and(Subresource::writes_status);
        let attrs = self.attributes(writer, namespace, Some(old));
        admission::mutate(&attrs, &mut new).await?;
        objects::prepare_update(self.resource, old, &mut new, status_write);
        self.record_manager(writer, Some(old), &mut new);
        objects::set_resource_version(&mut new, kv.mod_revision);
        let admitted = admission::admit(&attrs, &mut new).await?;
        let finalized = objects::is_deleting(&new) && objects::finalizers(&new).is_empty();
        // A dry run is not converted to the stored shape, as kube's dry-run storage never
        // encodes.
        if writer.dry_run {
            return Ok(Step::Done(Written::Replaced(new)));
        }
        if finalized {
            return Ok(Step::Remove { answer: Some(new) });
        }
        let bytes = match self.to_storage(&mut new).await {
            Ok(bytes) => bytes,
            Err(e) => {
                admitted.settle(self.context, false).await;
                return Err(e);
            }
        };
        if bytes == kv.value {
            return Ok(Step::Done(Written::Unchanged(old.clone())));
        }
        Ok(Step::Replace {
            object: new,
            bytes,
            admitted,
        })
    }

    /// The bytes to store for `object` (in the resource's shape): converted to the stored
    /// shape first when the resource is stored as another (the strategy's conversion, awaited:
    /// a webhook may fail it), without its resourceVersion.
    async fn to_storage(&self, object: &mut Value) -> Result<Bytes, ApiError> {
        if !self.resource.converts() {
            return Ok(objects::encode_owned(object));
        }
        let mut stored = self
            .resource
            .strategy()
            .convert_to_storage(object.clone())
            .await?;
        Ok(objects::encode_owned(&mut stored))
    }

    /// What admission knows of this write.
    fn attributes<'c>(
        &'c self,
        writer: &'c Writer,
        namespace: Option<&'c str>,
        old: Option<&'c Value>,
    ) -> Attributes<'c> {
        Attributes {
            context: self.context,
            resource: self.resource,
            operation: if old.is_some() {
                Operation::Update
            } else {
                Operation::Create
            },
            user: &writer.user,
            subresource: writer.subresource,
            namespace,
            old,
            dry_run: writer.dry_run,
        }
    }

    /// Records the writer in managedFields (unless it records its own).
    fn record_manager(&self, writer: &Writer, old: Option<&Value>, new: &mut Value) {
        if let Some(manager) = &writer.manager {
            let subresource = kubecache_apimachinery::managed::subresource_name(writer.subresource);
            kubecache_apimachinery::managed::record_update(
                self.resource,
                subresource,
                manager,
                old,
                new,
            );
        }
    }
}

/// A bootstrap write's failure as the server's startup reports it.
pub fn startup_error(err: ApiError) -> StorageError {
    match err.code {
        503 => StorageError::Unavailable(err.message),
        _ => StorageError::Internal(err.to_string()),
    }
}

#[cfg(test)]
mod tests;
