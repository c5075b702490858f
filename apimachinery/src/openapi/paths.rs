//! The `paths` of a group-version document: for each resource its collection and item
//! paths (namespaced and across namespaces, or cluster-scoped), `/status` and `/scale`
//! where they exist and the legacy `/watch/` paths, each operation with kube's
//! `operationId`, `x-kubernetes-action`, `x-kubernetes-group-version-kind`, parameters,
//! request body media types and responses.
//!
//! kubectl reads two things here: the `patch` operation of a kind carrying an
//! operation-level `fieldValidation` parameter (then it leaves validation to the server,
//! `query_param_verifier_v3.go`), and the kind of the collection and item paths (`kubectl
//! explain` finds a resource's kind through them before looking for its schema).

use crate::registry::Resource;
use serde_json::{Map, Value, json};

use super::schemas::{self, Kind, reference};

/// What kubecache encodes responses as: JSON and kube's protobuf (for a built-in type, all
/// of which [`crate::protobuf`] transcodes).
const RESPONSE_MEDIA_TYPES: &[&str] = &["application/json", crate::protobuf::MEDIA_TYPE];
/// What watches stream.
const WATCH_MEDIA_TYPES: &[&str] = &[
    "application/json",
    crate::protobuf::MEDIA_TYPE,
    "application/json;stream=watch",
    crate::protobuf::STREAM_MEDIA_TYPE,
];
/// The same for a free-form kind, which has no protobuf form (JSON only, as kube's custom
/// resources offer no protobuf).
const FREE_FORM_RESPONSE_MEDIA_TYPES: &[&str] = &["application/json"];
const FREE_FORM_WATCH_MEDIA_TYPES: &[&str] = &["application/json", "application/json;stream=watch"];

/// The patch media types of patch operations: those the server accepts
/// ([`crate::patch::PATCH_TYPES`], server-side apply's `application/apply-patch+yaml`
/// included). Strategic merge patch is listed because the merge keys are published
/// ([`schemas::publishes_merge_keys`]): kubectl then computes client-side apply patches from
/// these documents, as on a real cluster; the guard keeps it off should the keys ever be
/// missing, when kubectl would replace lists instead of merging them. A free-form kind has
/// no merge keys: strategic merge patch is refused (415, as kube refuses it for a custom
/// resource) and not listed, so kubectl sends it a JSON merge patch.
fn patch_media_types(built_in: bool) -> Vec<&'static str> {
    let merge_keys = built_in && schemas::publishes_merge_keys();
    let mut types: Vec<&'static str> = crate::patch::PATCH_TYPES
        .iter()
        .copied()
        .filter(|t| merge_keys || *t != "application/strategic-merge-patch+json")
        .collect();
    types.sort_unstable();
    types
}

/// `core` for the legacy group, else the group without `.k8s.io` in lower camel case
/// (`rbacAuthorization`): the first half of kube's tags.
pub fn group_word(group: &str) -> String {
    if group.is_empty() {
        return "core".to_string();
    }
    let trimmed = group.strip_suffix(".k8s.io").unwrap_or(group);
    let mut word = String::new();
    for (i, part) in trimmed.split('.').enumerate() {
        if i == 0 {
            word.push_str(part);
        } else {
            word.push_str(&capitalize(part));
        }
    }
    word
}

pub fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The group-version part of kube's operation ids: `CoreV1`, `AppsV1`, `RbacAuthorizationV1`.
fn gv_word(group: &str, version: &str) -> String {
    format!("{}{}", capitalize(&group_word(group)), capitalize(version))
}

/// The tag of a group-version's operations: `core_v1`, `rbacAuthorization_v1`.
fn tag(group: &str, version: &str) -> String {
    format!("{}_{version}", group_word(group))
}

/// The path prefix of a group-version: `/api/v1`, `/apis/apps/v1`.
pub fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

fn parameter(location: &str, name: &str, kind: &str, description: &str) -> Value {
    let mut p = json!({
        "description": description,
        "in": location,
        "name": name,
        "schema": {"type": kind},
    });
    if location == "path" {
        p["required"] = Value::Bool(true);
    }
    p
}

fn query(name: &str, kind: &str, description: &str) -> Value {
    parameter("query", name, kind, description)
}

fn pretty() -> Value {
    query(
        "pretty",
        "string",
        "If 'true', the output is indented for reading.",
    )
}

fn namespace_param() -> Value {
    parameter(
        "path",
        "namespace",
        "string",
        "The namespace of the objects.",
    )
}

fn name_param(kind: &str) -> Value {
    parameter(
        "path",
        "name",
        "string",
        &format!("The name of the {kind}."),
    )
}

fn dry_run() -> Value {
    query(
        "dryRun",
        "string",
        "When present, the request is admitted and validated but nothing is persisted. The only valid value is All.",
    )
}

fn field_manager(patch: bool) -> Value {
    let mut text = String::from(
        "The name of the actor making the change, recorded in metadata.managedFields: at most 128 printable characters.",
    );
    if patch {
        text.push_str(" Required for apply patches (application/apply-patch+yaml), optional for the other patch types.");
    }
    query("fieldManager", "string", &text)
}

/// The parameter kubectl looks for before it leaves validation to the server.
fn field_validation() -> Value {
    query(
        "fieldValidation",
        "string",
        "How the server treats unknown or duplicate fields in the request body. Ignore: drop them silently. Warn (the default): drop them and report each in a Warning response header. Strict: reject the request with a BadRequest error naming every unknown and duplicate field.",
    )
}

fn force() -> Value {
    query(
        "force",
        "boolean",
        "Apply patches only: take over the fields other managers own instead of failing with a conflict. Must be unset for the other patch types.",
    )
}

/// The parameters of list and watch requests.
fn list_params() -> Vec<Value> {
    vec![
        query(
            "allowWatchBookmarks",
            "boolean",
            "Watch only: ask for BOOKMARK events, which carry only a resourceVersion. The server may send them at any time, or not at all.",
        ),
        query(
            "continue",
            "string",
            "The continue token of the previous page of a list (metadata.continue), to get the next page. An expired token is answered with 410 Gone. Not supported with watch.",
        ),
        query(
            "fieldSelector",
            "string",
            "Restricts the objects returned by their fields. Defaults to everything.",
        ),
        query(
            "labelSelector",
            "string",
            "Restricts the objects returned by their labels. Defaults to everything.",
        ),
        query(
            "limit",
            "integer",
            "The most objects a list may return; when more exist, metadata.continue is set to a token for the rest. Not supported with watch.",
        ),
        query(
            "resourceVersion",
            "string",
            "Constrains the resource version a request is served at; see https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions. Defaults to unset (the latest).",
        ),
        query(
            "resourceVersionMatch",
            "string",
            "How resourceVersion applies to a list: Exact or NotOlderThan. Defaults to unset.",
        ),
        query(
            "sendInitialEvents",
            "boolean",
            "Watch only: start with synthetic ADDED events for every current object, then a bookmark, before the changes.",
        ),
        query(
            "timeoutSeconds",
            "integer",
            "The longest a list or watch call may take, whatever happens.",
        ),
        query(
            "watch",
            "boolean",
            "Stream the changes to the described objects (ADDED, MODIFIED, DELETED) instead of listing them.",
        ),
    ]
}

/// The parameters of deletions.
fn delete_params() -> Vec<Value> {
    vec![
        dry_run(),
        query(
            "gracePeriodSeconds",
            "integer",
            "Seconds before the object is deleted; zero deletes at once. Defaults to the type's grace period.",
        ),
        query(
            "ignoreStoreReadErrorWithClusterBreakingPotential",
            "boolean",
            "Delete an object that cannot be read from storage (corrupt). Dangerous; off by default.",
        ),
        query(
            "orphanDependents",
            "boolean",
            "Deprecated, use propagationPolicy: whether the dependents are orphaned.",
        ),
        query(
            "propagationPolicy",
            "string",
            "What happens to the dependents: Orphan, Background or Foreground.",
        ),
    ]
}

fn content(media_types: &[&str], schema: &Value) -> Value {
    let mut map = Map::new();
    for media in media_types {
        map.insert(media.to_string(), json!({ "schema": schema }));
    }
    Value::Object(map)
}

/// Responses: each status code with its description, all with the same schema.
fn responses(codes: &[(&str, &str)], media_types: &[&str], schema: &Value) -> Value {
    let mut map = Map::new();
    for (code, description) in codes {
        map.insert(
            code.to_string(),
            json!({"content": content(media_types, schema), "description": description}),
        );
    }
    map.insert("401".to_string(), json!({"description": "Unauthorized"}));
    Value::Object(map)
}

const OK: (&str, &str) = ("200", "OK");
const CREATED: (&str, &str) = ("201", "Created");
const ACCEPTED: (&str, &str) = ("202", "Accepted");

/// One operation.
struct Operation<'a> {
    id: String,
    description: String,
    action: &'a str,
    gvk: Value,
    parameters: Vec<Value>,
    request_body: Option<Value>,
    responses: Value,
    tag: &'a str,
}

impl Operation<'_> {
    fn into_value(self) -> Value {
        let mut op = json!({
            "description": self.description,
            "operationId": self.id,
            "responses": self.responses,
            "tags": [self.tag],
            "x-kubernetes-action": self.action,
            "x-kubernetes-group-version-kind": self.gvk,
        });
        if !self.parameters.is_empty() {
            op["parameters"] = Value::Array(self.parameters);
        }
        if let Some(body) = self.request_body {
            op["requestBody"] = body;
        }
        op
    }
}

/// Every path of one group-version's resources, keyed by path.
pub struct PathSet {
    pub paths: Map<String, Value>,
}

impl PathSet {
    pub fn new(group: &str, version: &str) -> PathSet {
        let mut paths = Map::new();
        let gv = gv_word(group, version);
        paths.insert(
            format!("{}/", prefix(group, version)),
            json!({
                "get": {
                    "description": "get the resources this group-version serves",
                    "operationId": format!("get{gv}APIResources"),
                    "responses": responses(&[OK], RESPONSE_MEDIA_TYPES, &reference(schemas::API_RESOURCE_LIST)),
                    "tags": [tag(group, version)],
                }
            }),
        );
        PathSet { paths }
    }

    fn insert(&mut self, path: String, params: Vec<Value>, operations: Vec<(&str, Operation)>) {
        let mut item = Map::new();
        for (method, op) in operations {
            item.insert(method.to_string(), op.into_value());
        }
        item.insert("parameters".to_string(), Value::Array(params));
        item.sort_keys();
        self.paths.insert(path, Value::Object(item));
    }

    /// Adds every path of `resource`, whose kind is `kind` (and, for `/scale`, `scale`).
    pub fn add_resource(&mut self, resource: &Resource, kind: &Kind, scale: Option<&Kind>) {
        let prefix = prefix(&resource.group, &resource.version);
        let gv = gv_word(&resource.group, &resource.version);
        let tag = tag(&resource.group, &resource.version);
        let k = &resource.kind;
        let plural = &resource.resource;
        let gvk = kind.gvk();
        let (response_types, watch_types) = if kind.built_in {
            (RESPONSE_MEDIA_TYPES, WATCH_MEDIA_TYPES)
        } else {
            (FREE_FORM_RESPONSE_MEDIA_TYPES, FREE_FORM_WATCH_MEDIA_TYPES)
        };
        let object = reference(&kind.definition);
        let list = reference(&format!("{}List", kind.definition));
        let status = reference(schemas::STATUS);
        let watch_event = reference(schemas::WATCH_EVENT);
        let (scoped, ns_word, mut scope_params) = if resource.namespaced {
            (
                format!("{prefix}/namespaces/{{namespace}}/{plural}"),
                "Namespaced",
                vec![namespace_param()],
            )
        } else {
            (format!("{prefix}/{plural}"), "", Vec::new())
        };
        scope_params.push(pretty());
        let watch_scoped = if resource.namespaced {
            format!("{prefix}/watch/namespaces/{{namespace}}/{plural}")
        } else {
            format!("{prefix}/watch/{plural}")
        };
        let op = |id: String, description: String, action: &'static str| Operation {
            id,
            description,
            action,
            gvk: gvk.clone(),
            parameters: Vec::new(),
            request_body: None,
            responses: Value::Null,
            tag: &tag,
        };
        let list_op = |id: String| Operation {
            parameters: list_params(),
            responses: responses(&[OK], watch_types, &list),
            ..op(id, format!("list or watch objects of kind {k}"), "list")
        };
        let body = |schema: &Value| json!({"content": content(&["*/*"], schema), "required": true});
        let write_params = || vec![dry_run(), field_manager(false), field_validation()];

        // The collection.
        let mut collection = vec![
            ("get", list_op(format!("list{gv}{ns_word}{k}"))),
            (
                "post",
                Operation {
                    parameters: write_params(),
                    request_body: Some(body(&object)),
                    responses: responses(&[OK, CREATED, ACCEPTED], response_types, &object),
                    ..op(
                        format!("create{gv}{ns_word}{k}"),
                        format!("create a {k}"),
                        "post",
                    )
                },
            ),
        ];
        if resource.supports("deletecollection") {
            // The delete options and the list options that select (not the watch ones).
            let mut parameters = delete_params();
            parameters.extend(
                list_params().into_iter().filter(|p| {
                    !matches!(p["name"].as_str(), Some("watch" | "allowWatchBookmarks"))
                }),
            );
            collection.push((
                "delete",
                Operation {
                    parameters,
                    request_body: Some(
                        json!({"content": content(&["*/*"], &reference(schemas::DELETE_OPTIONS))}),
                    ),
                    responses: responses(&[OK], response_types, &status),
                    ..op(
                        format!("delete{gv}Collection{ns_word}{k}"),
                        format!("delete a collection of {k}"),
                        "deletecollection",
                    )
                },
            ));
        }
        self.insert(scoped.clone(), scope_params.clone(), collection);

        // Across namespaces.
        if resource.namespaced {
            self.insert(
                format!("{prefix}/{plural}"),
                vec![pretty()],
                vec![("get", list_op(format!("list{gv}{k}ForAllNamespaces")))],
            );
            self.insert(
                format!("{prefix}/watch/{plural}"),
                vec![pretty()],
                vec![(
                    "get",
                    Operation {
                        parameters: list_params(),
                        responses: responses(&[OK], watch_types, &watch_event),
                        ..op(
                            format!("watch{gv}{k}ListForAllNamespaces"),
                            format!(
                                "watch every {k} (deprecated: use list with the 'watch' parameter)"
                            ),
                            "watchlist",
                        )
                    },
                )],
            );
        }

        // One object.
        let mut item_params = vec![name_param(k)];
        item_params.extend(scope_params.iter().cloned());
        let item = format!("{scoped}/{{name}}");
        let read = |id: String, description: String, schema: &Value, gvk: &Value| Operation {
            responses: responses(&[OK], response_types, schema),
            gvk: gvk.clone(),
            ..op(id, description, "get")
        };
        let replace = |id: String, description: String, schema: &Value, gvk: &Value| Operation {
            parameters: write_params(),
            request_body: Some(body(schema)),
            responses: responses(&[OK, CREATED], response_types, schema),
            gvk: gvk.clone(),
            ..op(id, description, "put")
        };
        let patch = |id: String, description: String, schema: &Value, gvk: &Value| Operation {
            parameters: vec![dry_run(), field_manager(true), field_validation(), force()],
            request_body: Some(json!({
                "content": content(&patch_media_types(kind.built_in), &reference(schemas::PATCH)),
                "required": true,
            })),
            responses: responses(&[OK, CREATED], response_types, schema),
            gvk: gvk.clone(),
            ..op(id, description, "patch")
        };
        self.insert(
            item.clone(),
            item_params.clone(),
            vec![
                (
                    "get",
                    read(
                        format!("read{gv}{ns_word}{k}"),
                        format!("read the specified {k}"),
                        &object,
                        &gvk,
                    ),
                ),
                (
                    "put",
                    replace(
                        format!("replace{gv}{ns_word}{k}"),
                        format!("replace the specified {k}"),
                        &object,
                        &gvk,
                    ),
                ),
                (
                    "patch",
                    patch(
                        format!("patch{gv}{ns_word}{k}"),
                        format!("partially update the specified {k}"),
                        &object,
                        &gvk,
                    ),
                ),
                (
                    "delete",
                    Operation {
                        parameters: delete_params(),
                        request_body: Some(json!({"content": content(&["*/*"], &reference(schemas::DELETE_OPTIONS))})),
                        responses: responses(&[OK, ACCEPTED], response_types, &status),
                        ..op(format!("delete{gv}{ns_word}{k}"), format!("delete a {k}"), "delete")
                    },
                ),
            ],
        );

        // Subresources.
        let mut subresources: Vec<(&str, String, &Value, Value)> = Vec::new();
        // The object's other views (`pods/ephemeralcontainers`, `pods/resize`): get, patch
        // and put of the object itself, named like kube's (`readCoreV1NamespacedPodResize`).
        // The subresources that only take a create of their own kind are not published.
        for sub in &resource.subresources {
            if sub.response_kind("").is_none() && sub.verbs().contains(&"get") && !sub.is_connect()
            {
                let name = sub.as_str();
                let word = name[..1].to_ascii_uppercase() + &name[1..];
                subresources.push((name, word, &object, gvk.clone()));
            }
        }
        if resource.status_subresource {
            subresources.push(("status", "Status".to_string(), &object, gvk.clone()));
        }
        let scale_ref = scale.map(|s| reference(&s.definition));
        if let (true, Some(scale), Some(scale_ref)) =
            (resource.scale_subresource, scale, scale_ref.as_ref())
        {
            subresources.push(("scale", "Scale".to_string(), scale_ref, scale.gvk()));
        }
        for (path, word, schema, sub_gvk) in subresources {
            self.insert(
                format!("{item}/{path}"),
                item_params.clone(),
                vec![
                    (
                        "get",
                        read(
                            format!("read{gv}{ns_word}{k}{word}"),
                            format!("read {path} of the specified {k}"),
                            schema,
                            &sub_gvk,
                        ),
                    ),
                    (
                        "patch",
                        patch(
                            format!("patch{gv}{ns_word}{k}{word}"),
                            format!("partially update {path} of the specified {k}"),
                            schema,
                            &sub_gvk,
                        ),
                    ),
                    (
                        "put",
                        replace(
                            format!("replace{gv}{ns_word}{k}{word}"),
                            format!("replace {path} of the specified {k}"),
                            schema,
                            &sub_gvk,
                        ),
                    ),
                ],
            );
        }

        // The legacy watch paths.
        self.insert(
            watch_scoped.clone(),
            scope_params.clone(),
            vec![(
                "get",
                Operation {
                    parameters: list_params(),
                    responses: responses(&[OK], watch_types, &watch_event),
                    ..op(
                        format!("watch{gv}{ns_word}{k}List"),
                        format!("watch a collection of {k} (deprecated: use list with the 'watch' parameter)"),
                        "watchlist",
                    )
                },
            )],
        );
        self.insert(
            format!("{watch_scoped}/{{name}}"),
            item_params,
            vec![(
                "get",
                Operation {
                    parameters: list_params(),
                    responses: responses(&[OK], watch_types, &watch_event),
                    ..op(
                        format!("watch{gv}{ns_word}{k}"),
                        format!("watch one {k} (deprecated: use list with the 'watch' parameter and a metadata.name field selector)"),
                        "watch",
                    )
                },
            )],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kube() {
        assert_eq!(gv_word("", "v1"), "CoreV1");
        assert_eq!(
            gv_word("rbac.authorization.k8s.io", "v1"),
            "RbacAuthorizationV1"
        );
        assert_eq!(gv_word("apiextensions.k8s.io", "v1"), "ApiextensionsV1");
        assert_eq!(tag("networking.k8s.io", "v1"), "networking_v1");
        assert_eq!(
            tag("rbac.authorization.k8s.io", "v1"),
            "rbacAuthorization_v1"
        );
        assert_eq!(prefix("apps", "v1"), "/apis/apps/v1");
        assert_eq!(prefix("", "v1"), "/api/v1");
    }
}
