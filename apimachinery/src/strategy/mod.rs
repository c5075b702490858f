//! What differs per resource, in one place per resource: kube-apiserver's `RESTStrategy`
//! (`PrepareForCreate`, `PrepareForUpdate`, `Validate`, `ValidateUpdate`, `Canonicalize`) plus
//! what its scheme and registry attach to a type (defaulting, the typed form, the table
//! printer, the storage version and conversion, delete behaviour).
//!
//! Handlers, admission and the codec know verbs and metadata; they ask the resource's
//! [`Strategy`] for what is kind-specific (the exceptions left are listed in
//! docs/ARCHITECTURE.md). Every
//! built-in resource is one strategy in the file of its API group ([`core`], [`apps`],
//! [`autoscaling`], [`batch`], [`admissionregistration`], [`apiregistration`],
//! [`certificates`], [`flowcontrol`], [`networking`], [`node`], [`storage`], [`others`]), listed
//! in [`builtin`]; the registry (`crate::registry`) pairs each
//! served resource with its strategy. Adding a built-in resource is a strategy (identity
//! included), its line in [`builtin`], two regenerated tables and a protobuf sample
//! (docs/ARCHITECTURE.md, "Worked example: adding v1 PodTemplate").
//!
//! The defaults are kube's for a plain resource: no generation, no defaults, no
//! type-specific validation, the default table (Name, Age), stored in the version served,
//! deleted at once (finalizers aside) and answered with a `Status`.

pub mod admissionregistration;
pub mod apiregistration;
pub mod apps;
pub mod autoscaling;
pub mod batch;
pub mod certificates;
pub mod core;
pub mod custom;
pub mod defaults;
pub mod events;
pub mod flowcontrol;
pub mod networking;
pub mod node;
pub mod others;
pub mod quota;
pub mod storage;
pub mod validation;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use kubecache_core::authz::UserInfo;
use kubecache_core::registry::ResourceInfo;
use kubecache_core::request::Subresource;
use kubecache_core::status::{ApiError, Cause};
use serde_json::Value;

use crate::openapi::schemas::Kind;
use crate::table::Printer;
use k8s_openapi::schemars::SchemaGenerator;

/// What defaulting may depend on besides the object.
#[derive(Debug, Clone, Copy)]
pub struct DefaultContext<'a> {
    /// A create of the main resource (not an update, not a subresource write).
    pub create: bool,
    /// The stored object an update replaces.
    pub old: Option<&'a Value>,
    /// The family of the service cluster IP range (`IPv4` or `IPv6`).
    pub ip_family: &'a str,
}

/// How the typed form serializes an object again, which decides how it is put back into
/// canonical form after server code changed it (`typed::canonicalize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypedForm {
    /// Plain structs and maps: the canonical form is the object with its maps' keys sorted.
    Plain,
    /// Holds free-form JSON whose key order the round trip keeps (a CRD's schemas, a
    /// ControllerRevision's `data`): canonicalized by a real round trip.
    FreeForm,
}

/// What a DELETE of an object without finalizers does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// The object is removed at once.
    Immediate,
    /// The object is marked (`deletionTimestamp` and what [`Strategy::mark_deleting`] adds)
    /// and a controller finishes the deletion: a CRD, whose objects go first.
    Finalized,
    /// As [`Deletion::Finalized`], and the namespace lifecycle follows the mark (creates in
    /// the namespace are refused while its finalizer empties it): namespaces.
    Terminating,
}

/// Everything kind-specific about one resource at one group/version.
pub trait Strategy: Send + Sync + 'static {
    /// The resource's identity: group, version, names, scope, subresources, where it is
    /// stored (asked once, when the resource is registered).
    fn info(&self) -> ResourceInfo;

    /// The object decoded as its typed form and serialized again: unknown fields dropped,
    /// wrong types an error — kube decoding into its Go struct.
    fn round_trip(&self, object: &Value) -> Result<Value, serde_json::Error>;

    /// The kind's OpenAPI definition, added to `generator` (none for types kube publishes
    /// none for).
    fn openapi_kind(&self, generator: &mut SchemaGenerator) -> Option<Kind>;

    /// The kind's OpenAPI v3 schema as JSON, for a kind without a Rust type: a custom
    /// resource's `openAPIV3Schema`, which `crate::openapi::custom` turns into the kind's
    /// definitions as kube's CRD builder does. Asked only when [`Strategy::openapi_kind`]
    /// gives none; a resource with neither is published free-form.
    fn openapi_schema(&self) -> Option<Arc<Value>> {
        None
    }

    /// How the typed form serializes (see [`TypedForm`]).
    fn typed_form(&self) -> TypedForm {
        TypedForm::Plain
    }

    /// `metadata.generation` tracks changes to the desired state (bumped when anything outside
    /// metadata and status changes).
    fn tracks_generation(&self) -> bool {
        false
    }

    /// Scheme defaults: fields a built-in object gets when it omits them, on every write.
    fn default(&self, _object: &mut Value, _context: &DefaultContext<'_>) {}

    /// What the server sets on create beyond metadata (kube's `PrepareForCreate`); by default
    /// a resource with a status subresource starts without status.
    fn prepare_for_create(&self, info: &ResourceInfo, object: &mut Value) {
        if info.status_subresource
            && let Some(map) = object.as_object_mut()
        {
            map.remove("status");
        }
    }

    /// What an update of the main resource may not change beyond metadata and status
    /// (kube's `PrepareForUpdate`); not called for a `/status` write, which keeps everything
    /// but the status anyway.
    fn prepare_for_update(&self, _new: &mut Value, _old: &Value) {}

    /// The type's own validation of a created or updated object (not of a status write).
    fn validate(&self, _object: &Value) -> Vec<Cause> {
        Vec::new()
    }

    /// The validation of a `/status` write (kube's status strategy `ValidateUpdate`), which
    /// [`Strategy::validate`] does not see.
    fn validate_status(&self, _object: &Value) -> Vec<Cause> {
        Vec::new()
    }

    /// What an update of the main resource may not change.
    fn validate_update(&self, _new: &Value, _old: &Value) -> Vec<Cause> {
        Vec::new()
    }

    /// The object a write to a subresource other than `scale` makes of the stored one (kube's
    /// subresource strategy's `PrepareForUpdate`): by default the stored object with only
    /// `.status` taken from the write (`status`, a CSR's `approval`); a pod's
    /// `ephemeralcontainers` and `resize` take what they are for.
    fn merge_subresource_write(
        &self,
        _subresource: Subresource,
        current: &Value,
        submitted: &Value,
    ) -> Value {
        crate::objects::apply_status_update(current, submitted)
    }

    /// The validation of such a write (kube's subresource strategy's `ValidateUpdate`); none
    /// by default, as the rest of the object is the stored one.
    fn validate_subresource_update(
        &self,
        _subresource: Subresource,
        _new: &Value,
        _old: &Value,
    ) -> Vec<Cause> {
        Vec::new()
    }

    /// What a create records of its requester (kube's CSR `PrepareForCreate` writes the
    /// user into the spec); nothing by default.
    fn record_requester(&self, _object: &mut Value, _user: &UserInfo) {}

    /// The field watchers most often select by, indexed so an event reaches only the watchers
    /// of its value (kube's `IndexerFunc`: every kubelet watches its own pods by
    /// `spec.nodeName`).
    fn trigger_field(&self) -> Option<&'static str> {
        None
    }

    /// The table `kubectl get` prints.
    fn printer(&self) -> &'static Printer {
        &crate::table::DEFAULT
    }

    /// The Table's `columnDefinitions`: the printer's unless the columns are only known at
    /// run time (a custom resource's `additionalPrinterColumns`).
    fn table_columns(&self) -> Vec<Value> {
        self.printer().columns.iter().map(|c| c.to_json()).collect()
    }

    /// One object's row cells, in [`Strategy::table_columns`]' order.
    fn table_cells(&self, object: &Value, now: DateTime<Utc>) -> Vec<Value> {
        self.printer().cells(object, now)
    }

    /// What the `scale` subresource shows of an object (resources that declare one).
    fn scale(&self, object: &Value) -> crate::scale::ScaleView {
        crate::scale::builtin(object)
    }

    /// What a write to the `scale` subresource changes.
    fn set_replicas(&self, object: &mut Value, replicas: i64) {
        crate::scale::set_builtin_replicas(object, replicas);
    }

    /// A DELETE answers with the deleted object instead of a `Status` (kube's
    /// `ReturnDeletedObject`).
    fn delete_returns_object(&self) -> bool {
        false
    }

    fn deletion(&self) -> Deletion {
        Deletion::Immediate
    }

    /// What marking an object for deletion adds besides `deletionTimestamp` (a namespace's
    /// `Terminating` phase, a CRD's cleanup finalizer).
    fn mark_deleting(&self, _object: &mut Value) {}

    /// Why a create is refused whatever its object, when it is: the objects of a CRD being
    /// deleted are going away, so new ones are not taken (kube's 405).
    fn refuse_create(&self) -> Option<ApiError> {
        None
    }

    /// The resource whose shape objects are stored in, when it is not this one; objects are
    /// converted with [`Strategy::to_storage`] and [`Strategy::to_served`].
    fn storage_version(&self) -> Option<(&str, &str, &str)> {
        None
    }

    /// A served object in its stored shape.
    fn to_storage(&self, object: Value) -> Value {
        object
    }

    /// A stored object in this resource's shape.
    fn to_served(&self, object: Value) -> Value {
        object
    }

    /// A stored object in this resource's shape: what the read path (a GET, a LIST item, a
    /// watch event) and the Store (the object an update starts from, every answer) await, in
    /// the task serving the request or the watch and never on a shard thread, so an
    /// implementation may wait (a custom resource's conversion webhook) or fail (500). The
    /// read path converts each object once per version however many read it. By default
    /// [`Strategy::to_served`], at once.
    fn convert_to_served(&self, object: Value) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(std::future::ready(Ok(self.to_served(object))))
    }

    /// A served object in its stored shape, awaited by the Store before it writes (after
    /// admission, which sees the served shape, as in kube); a failure writes nothing. By
    /// default [`Strategy::to_storage`], at once.
    fn convert_to_storage(&self, object: Value) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(std::future::ready(Ok(self.to_storage(object))))
    }

    /// The `Warning` every request to this resource is answered with (a deprecated custom
    /// resource version's).
    fn warning(&self) -> Option<String> {
        None
    }
}

/// The methods of a strategy whose objects are the k8s-openapi type `$type`: the typed round
/// trip and the OpenAPI definition.
macro_rules! typed_as {
    ($type:ty) => {
        fn round_trip(&self, object: &Value) -> Result<Value, serde_json::Error> {
            $crate::strategy::round_trip_via::<$type>(object)
        }
        fn openapi_kind(
            &self,
            generator: &mut k8s_openapi::schemars::SchemaGenerator,
        ) -> Option<$crate::openapi::schemas::Kind> {
            Some($crate::openapi::schemas::Kind::generate::<$type>(generator))
        }
    };
}
pub(crate) use typed_as;

/// The object decoded as `T` and serialized again.
pub fn round_trip_via<T>(object: &Value) -> Result<Value, serde_json::Error>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let typed: T = T::deserialize(object)?;
    serde_json::to_value(typed)
}

/// Every built-in strategy, in discovery order within each group.
pub fn builtin() -> impl Iterator<Item = Arc<dyn Strategy>> {
    let all: Vec<Arc<dyn Strategy>> = vec![
        Arc::new(core::Bindings),
        Arc::new(core::ComponentStatuses),
        Arc::new(core::ConfigMaps),
        Arc::new(core::Endpoints),
        Arc::new(core::Events),
        Arc::new(core::LimitRanges),
        Arc::new(core::Namespaces),
        Arc::new(core::Nodes),
        Arc::new(core::PersistentVolumeClaims),
        Arc::new(core::PersistentVolumes),
        Arc::new(core::Pods),
        Arc::new(core::PodTemplates),
        Arc::new(core::ReplicationControllers),
        Arc::new(core::ResourceQuotas),
        Arc::new(core::Secrets),
        Arc::new(core::ServiceAccounts),
        Arc::new(core::Services),
        Arc::new(apps::ControllerRevisions),
        Arc::new(apps::DaemonSets),
        Arc::new(apps::Deployments),
        Arc::new(apps::ReplicaSets),
        Arc::new(apps::StatefulSets),
        Arc::new(autoscaling::HorizontalPodAutoscalers),
        Arc::new(autoscaling::HorizontalPodAutoscalersV1),
        Arc::new(batch::CronJobs),
        Arc::new(batch::Jobs),
        Arc::new(others::CustomResourceDefinitions),
        Arc::new(others::SelfSubjectReviews),
        Arc::new(others::TokenReviews),
        Arc::new(others::LocalSubjectAccessReviews),
        Arc::new(others::SelfSubjectAccessReviews),
        Arc::new(others::SelfSubjectRulesReviews),
        Arc::new(others::SubjectAccessReviews),
        Arc::new(others::Leases),
        Arc::new(others::EndpointSlices),
        Arc::new(others::EventsV1),
        Arc::new(networking::IngressClasses),
        Arc::new(networking::Ingresses),
        Arc::new(networking::IpAddresses),
        Arc::new(networking::NetworkPolicies),
        Arc::new(networking::ServiceCidrs),
        Arc::new(node::RuntimeClasses),
        Arc::new(others::PodDisruptionBudgets),
        Arc::new(others::ClusterRoleBindings),
        Arc::new(others::ClusterRoles),
        Arc::new(others::RoleBindings),
        Arc::new(others::Roles),
        Arc::new(others::PriorityClasses),
        Arc::new(admissionregistration::MutatingWebhookConfigurations),
        Arc::new(admissionregistration::ValidatingAdmissionPolicies),
        Arc::new(admissionregistration::ValidatingAdmissionPolicyBindings),
        Arc::new(admissionregistration::ValidatingWebhookConfigurations),
        Arc::new(apiregistration::ApiServices),
        Arc::new(certificates::CertificateSigningRequests),
        Arc::new(flowcontrol::FlowSchemas),
        Arc::new(flowcontrol::PriorityLevelConfigurations),
        Arc::new(storage::CsiDrivers),
        Arc::new(storage::CsiNodes),
        Arc::new(storage::CsiStorageCapacities),
        Arc::new(storage::StorageClasses),
        Arc::new(storage::VolumeAttachments),
    ];
    all.into_iter()
}

/// The strategy of a resource without one: no typed form (objects are kept as sent), no
/// OpenAPI definition, and every default of [`Strategy`].
pub struct Untyped;

impl Strategy for Untyped {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new("", "", "", "", "", false)
    }
    fn round_trip(&self, object: &Value) -> Result<Value, serde_json::Error> {
        Ok(object.clone())
    }
    fn openapi_kind(&self, _: &mut SchemaGenerator) -> Option<Kind> {
        None
    }
    fn typed_form(&self) -> TypedForm {
        TypedForm::FreeForm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn storage_versions_are_registered_and_share_storage() {
        let snapshot = Registry::builtin().snapshot();
        for served in snapshot.iter() {
            if let Some((group, version, resource)) = served.strategy().storage_version() {
                let stored = snapshot.lookup(group, version, resource).unwrap();
                assert!(served.shares_storage_with(stored), "{}", served.resource);
            }
        }
    }

    #[test]
    fn every_typed_form_knows_its_kind() {
        // The round trip of an empty object keeps nothing but what the type always writes;
        // for a type that is really decoded, that differs from a pass-through.
        let probe = serde_json::json!({"unknownField": 1});
        for strategy in builtin() {
            let typed = strategy.round_trip(&probe).unwrap_or_default();
            assert_ne!(
                typed,
                probe,
                "{:?} has no typed form",
                strategy.info().resource
            );
        }
    }
}
