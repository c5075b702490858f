//! What a resource request does: its verb and the subresource it names, in
//! kube-apiserver's vocabulary. Parsing a request into them is the server's; everything that
//! decides by them (admission, the Store, field ownership, metrics) needs only these types.

/// The verb of a resource request, in kube-apiserver's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    /// Verbs that write.
    pub fn is_mutating(self) -> bool {
        matches!(
            self,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
        )
    }
}

/// A subresource kubecache serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Status,
    Scale,
    /// `certificatesigningrequests/approval`: only the Approved and Denied conditions change.
    Approval,
    /// `pods/binding`: a v1 Binding assigns the pod to a node, once.
    Binding,
    /// `pods/eviction`: a policy/v1 Eviction deletes the pod if its disruption budget allows.
    Eviction,
    /// `pods/ephemeralcontainers`: the pod, of which only `spec.ephemeralContainers` changes.
    EphemeralContainers,
    /// `pods/resize`: the pod, of which only its containers' resources and resize policies
    /// change.
    Resize,
    /// `serviceaccounts/{name}/token`: a TokenRequest (create only).
    Token,
    /// `pods/{name}/log`: the container's log, streamed from its node's kubelet.
    Log,
    /// `pods/{name}/exec`: a command run in a container, an upgraded stream to the kubelet.
    Exec,
    /// `pods/{name}/attach`: the container's main process's streams, upgraded.
    Attach,
    /// `pods/{name}/portforward`: streams to the pod's ports, upgraded.
    PortForward,
    /// `pods/{name[:port]}/proxy/...`, `nodes/{name[:port]}/proxy/...`: HTTP to the pod or
    /// the node, any path after `proxy`.
    Proxy,
}

/// What discovery says a subresource answers with: the kind of its body
/// (`None`: the parent resource's own kind, as for `status`).
pub struct ResponseKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: String,
}

/// Subresources kube-apiserver serves with the verbs of an object view.
const VIEW_VERBS: &[&str] = &["get", "patch", "update"];
/// Subresources that only take a POST of their own kind.
const CREATE_VERBS: &[&str] = &["create"];
/// Upgraded streams (exec, attach, portforward): a GET (WebSocket) or a POST (SPDY).
const CONNECT_VERBS: &[&str] = &["create", "get"];
/// HTTP proxies: every method is passed on.
const PROXY_VERBS: &[&str] = &["create", "delete", "get", "patch", "update"];

impl Subresource {
    /// The path segment (`status`, `scale`).
    pub fn as_str(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Approval => "approval",
            Subresource::Binding => "binding",
            Subresource::Eviction => "eviction",
            Subresource::EphemeralContainers => "ephemeralcontainers",
            Subresource::Resize => "resize",
            Subresource::Token => "token",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::Attach => "attach",
            Subresource::PortForward => "portforward",
            Subresource::Proxy => "proxy",
        }
    }

    /// The subresource a path segment names, among those served by a handler of their own
    /// (`status` and `scale` are flags of a resource's identity).
    pub fn parse(segment: &str) -> Option<Subresource> {
        [
            Subresource::Approval,
            Subresource::Binding,
            Subresource::Eviction,
            Subresource::EphemeralContainers,
            Subresource::Resize,
            Subresource::Token,
            Subresource::Log,
            Subresource::Exec,
            Subresource::Attach,
            Subresource::PortForward,
            Subresource::Proxy,
        ]
        .into_iter()
        .find(|s| s.as_str() == segment)
    }

    /// The verbs the subresource takes, as discovery lists them.
    pub fn verbs(self) -> &'static [&'static str] {
        match self {
            Subresource::Binding | Subresource::Eviction | Subresource::Token => CREATE_VERBS,
            Subresource::Log => &["get"],
            Subresource::Exec | Subresource::Attach | Subresource::PortForward => CONNECT_VERBS,
            Subresource::Proxy => PROXY_VERBS,
            Subresource::Status
            | Subresource::Scale
            | Subresource::Approval
            | Subresource::EphemeralContainers
            | Subresource::Resize => VIEW_VERBS,
        }
    }

    /// The kind of the subresource's body when it is not the parent's (`parent_kind`, for
    /// the proxies' options: `PodProxyOptions`, `NodeProxyOptions`).
    pub fn response_kind(self, parent_kind: &str) -> Option<ResponseKind> {
        let kind = |group, version, kind: &str| {
            Some(ResponseKind {
                group,
                version,
                kind: kind.to_string(),
            })
        };
        match self {
            Subresource::Scale => kind("autoscaling", "v1", "Scale"),
            Subresource::Binding => kind("", "v1", "Binding"),
            Subresource::Eviction => kind("policy", "v1", "Eviction"),
            Subresource::Token => kind("authentication.k8s.io", "v1", "TokenRequest"),
            Subresource::Exec => kind("", "v1", "PodExecOptions"),
            Subresource::Attach => kind("", "v1", "PodAttachOptions"),
            Subresource::PortForward => kind("", "v1", "PodPortForwardOptions"),
            Subresource::Proxy => kind("", "v1", &format!("{parent_kind}ProxyOptions")),
            Subresource::Status
            | Subresource::Approval
            | Subresource::EphemeralContainers
            | Subresource::Resize
            | Subresource::Log => None,
        }
    }

    /// Whether the subresource is served by passing the request on to a kubelet or a pod
    /// (kube's "connect" subresources): its body is streamed, never buffered, and it may
    /// upgrade the connection.
    pub fn is_connect(self) -> bool {
        matches!(
            self,
            Subresource::Log
                | Subresource::Exec
                | Subresource::Attach
                | Subresource::PortForward
                | Subresource::Proxy
        )
    }

    /// Whether a write through the subresource changes (part of) `.status` and nothing of
    /// the rest but what it is for: the stored status is not restored, generation is not
    /// bumped and the main resource's update rules (`prepare_for_update`) do not apply. A
    /// `status` write, a CSR's `approval` (its Approved/Denied conditions), a pod's
    /// `binding` (nodeName and the PodScheduled condition, written straight to storage by
    /// kube). Every other write keeps the stored status.
    pub fn writes_status(self) -> bool {
        matches!(
            self,
            Subresource::Status | Subresource::Approval | Subresource::Binding
        )
    }
}
