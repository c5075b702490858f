//! Resource handlers, one module per family of verbs. Each takes a [`Call`] and returns a
//! [`Reply`] or an [`ApiError`]; reads go through the read path, writes through the
//! [`Store`](kubecache_store::Store) (the handlers parse the request and shape the answer).

pub mod apply;
pub mod binding;
pub mod component_status;
pub mod connect;
pub mod delete;
pub mod discovery;
pub mod eviction;
pub mod list_body;
pub mod read;
pub mod scale;
pub mod watch;
pub mod write;

use kubecache_core::status::ApiError;

use crate::call::{Call, Reply};
use kubecache_core::request::{Subresource, Verb};

pub async fn serve(call: Call<'_>) -> Result<Reply, ApiError> {
    // A client that asks for protobuf first gets objects, lists and errors in protobuf (the
    // watch handler renders its stream itself).
    let protobuf = crate::edge::protobuf::wants_protobuf(&call.headers);
    let outcome = route(call).await;
    if protobuf {
        crate::edge::protobuf::render(outcome)
    } else {
        outcome
    }
}

async fn route(call: Call<'_>) -> Result<Reply, ApiError> {
    let request = &call.request;
    if request.resource.create_only {
        // `bindings` is the one create-only resource that writes (a pod); the others are the
        // reviews, answered by the authorizer chain.
        if request.resource.group.is_empty() && request.resource.resource == "bindings" {
            return binding::create(&call).await;
        }
        return crate::authz::reviews::serve(&call).await;
    }
    if request.resource.read_only {
        return component_status::serve(&call).await;
    }
    match (request.subresource, request.verb) {
        (None, Verb::Get) => read::get(&call).await,
        (None, Verb::List) => read::list(&call).await,
        (None, Verb::Watch) => watch::watch(&call).await,
        (None, Verb::Create) => write::create(&call).await,
        (None, Verb::Update) => write::update(&call).await,
        (None, Verb::Patch) => write::patch(&call).await,
        (None, Verb::Delete) => delete::delete(&call).await,
        (None, Verb::DeleteCollection) => delete::delete_collection(&call).await,
        (Some(Subresource::Status), Verb::Get) => read::get(&call).await,
        (Some(Subresource::Status), Verb::Update) => write::update(&call).await,
        (Some(Subresource::Status), Verb::Patch) => write::patch(&call).await,
        (Some(Subresource::Scale), Verb::Get) => scale::get(&call).await,
        (Some(Subresource::Scale), Verb::Update) => scale::update(&call).await,
        (Some(Subresource::Scale), Verb::Patch) => scale::patch(&call).await,
        (Some(Subresource::Approval), Verb::Get) => read::get(&call).await,
        (Some(Subresource::Approval), Verb::Update) => write::update(&call).await,
        (Some(Subresource::Approval), Verb::Patch) => write::patch(&call).await,
        (Some(Subresource::Binding), Verb::Create) => binding::create(&call).await,
        (Some(Subresource::Eviction), Verb::Create) => eviction::create(&call).await,
        // The pod itself, of which a write changes only what the subresource allows
        // (`write::merge_into_current`).
        (Some(Subresource::EphemeralContainers | Subresource::Resize), Verb::Get) => {
            read::get(&call).await
        }
        (Some(Subresource::EphemeralContainers | Subresource::Resize), Verb::Update) => {
            write::update(&call).await
        }
        (Some(Subresource::EphemeralContainers | Subresource::Resize), Verb::Patch) => {
            write::patch(&call).await
        }
        (Some(Subresource::Token), Verb::Create) => {
            crate::service_accounts::token_request::create(&call).await
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// The name from the path (present for every verb that names one object).
pub fn path_name<'a>(call: &'a Call<'_>) -> &'a str {
    call.request.name.as_deref().unwrap_or("")
}

pub fn not_found(call: &Call<'_>) -> ApiError {
    let r = &call.request.resource;
    ApiError::not_found(&r.group, &r.resource, path_name(call))
}

/// Key of the object the path names.
pub fn object_key(call: &Call<'_>) -> String {
    call.api.object_key(
        &call.request.resource,
        call.request.namespace.as_deref(),
        path_name(call),
    )
}

/// The request's field manager (`fieldManager`, else its User-Agent's product name).
pub fn field_manager(call: &Call<'_>) -> Result<String, ApiError> {
    let user_agent = call
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    kubecache_apimachinery::managed::manager_name(call.query.get("fieldManager"), user_agent)
}
