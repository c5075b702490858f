//! The strategy's own steps as admission plugins: scheme defaults (mutating), then object
//! metadata, the kind's fields and what an update may not change (validating). Each asks the
//! request's resource strategy ([`kubecache_apimachinery::strategy`]); the per-kind rules live there.

use async_trait::async_trait;
use kubecache_core::request::Subresource;
use kubecache_core::status::{ApiError, Cause};
use serde_json::Value;

use super::{Attributes, MutatingPlugin, Operation, ValidatingPlugin};
use kubecache_apimachinery::objects;
use kubecache_apimachinery::strategy::DefaultContext;

/// Scheme defaults, applied on every create, update and patch as kube applies them when
/// decoding a write.
pub struct Defaulting;

#[async_trait]
impl MutatingPlugin for Defaulting {
    fn name(&self) -> &'static str {
        "Defaulting"
    }

    async fn admit(&self, attrs: &Attributes<'_>, object: &mut Value) -> Result<(), ApiError> {
        let context = DefaultContext {
            create: attrs.operation == Operation::Create && attrs.subresource.is_none(),
            old: attrs.old,
            ip_family: attrs.context.admission().service_ips.family(),
        };
        attrs.resource.strategy().default(object, &context);
        Ok(())
    }
}

/// Object metadata: name rule, label and annotation syntax and sizes
/// ([`objects::validate_metadata`]).
pub struct ObjectMeta;

#[async_trait]
impl ValidatingPlugin for ObjectMeta {
    fn name(&self) -> &'static str {
        "ObjectMetaValidation"
    }

    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        object: &Value,
    ) -> Result<Vec<Cause>, ApiError> {
        Ok(objects::validate_metadata(attrs.resource, object))
    }
}

/// The fields of built-in kinds, checked on create and update of the main resource; a status
/// write (which keeps the stored spec) is checked by the kind's status rules.
pub struct Fields;

#[async_trait]
impl ValidatingPlugin for Fields {
    fn name(&self) -> &'static str {
        "FieldValidation"
    }

    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        object: &Value,
    ) -> Result<Vec<Cause>, ApiError> {
        let strategy = attrs.resource.strategy();
        if attrs.subresource.is_some_and(Subresource::writes_status) {
            return Ok(strategy.validate_status(object));
        }
        Ok(strategy.validate(object))
    }
}

/// What an update may not change: the main resource's rules, or those of the subresource
/// written (a status write keeps the stored spec and is not checked here).
pub struct Immutable;

#[async_trait]
impl ValidatingPlugin for Immutable {
    fn name(&self) -> &'static str {
        "ImmutableFields"
    }

    async fn validate(
        &self,
        attrs: &Attributes<'_>,
        object: &Value,
    ) -> Result<Vec<Cause>, ApiError> {
        let strategy = attrs.resource.strategy();
        match (attrs.operation, attrs.old, attrs.subresource) {
            // A scale write changes the main resource's replicas: its rules apply.
            (Operation::Update, Some(old), None | Some(Subresource::Scale)) => {
                Ok(strategy.validate_update(object, old))
            }
            (Operation::Update, Some(old), Some(subresource)) => {
                Ok(strategy.validate_subresource_update(subresource, object, old))
            }
            _ => Ok(Vec::new()),
        }
    }
}
