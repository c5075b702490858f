//! networking.k8s.io/v1: Ingresses, IngressClasses, IPAddresses, NetworkPolicies and
//! ServiceCIDRs (kube 1.33's `pkg/registry/networking/*`).
//!
//! The group's own field rules (kube's `pkg/apis/networking/validation`) live beside its
//! strategies, over the shared checks of [`super::validation`]. IPAddresses are also what the
//! clusterIP allocator writes (`kubecache_admission::service_ips`), and the ServiceCIDR
//! `kubernetes` describes `--service-cluster-ip-range` (docs/ARCHITECTURE.md, "Service
//! clusterIP allocation").

use k8s_openapi::api::networking::v1 as networking;
use kubecache_core::registry::{CLUSTER, NAMESPACED, ResourceInfo};
use kubecache_core::status::Cause;
use kubecache_core::validation::{self as names, NameRule};
use serde_json::Value;

use super::validation::{forbidden, immutable, invalid, not_supported, required, too_long};
use super::{DefaultContext, Strategy, defaults, typed_as};
use crate::table::{self, Printer};

pub struct Ingresses;

impl Strategy for Ingresses {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "networking.k8s.io",
            "v1",
            "ingresses",
            "ingress",
            "Ingress",
            NAMESPACED,
        )
        .short(&["ing"])
        .status()
        .stored_at("ingress")
    }
    typed_as!(networking::Ingress);
    fn tracks_generation(&self) -> bool {
        true
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        ingress_spec(&object["spec"])
    }
    fn printer(&self) -> &'static Printer {
        &table::INGRESS
    }
}

pub struct IngressClasses;

impl Strategy for IngressClasses {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "networking.k8s.io",
            "v1",
            "ingressclasses",
            "ingressclass",
            "IngressClass",
            CLUSTER,
        )
    }
    typed_as!(networking::IngressClass);
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::ingress_class(object);
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        ingress_class_controller(&object["spec"]["controller"], &mut out);
        ingress_class_parameters(&object["spec"]["parameters"], &mut out);
        out
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        immutable(
            "spec.controller",
            new["spec"].get("controller"),
            old["spec"].get("controller"),
            &mut out,
        );
        out
    }
    fn printer(&self) -> &'static Printer {
        &table::INGRESSCLASS
    }
}

pub struct IpAddresses;

impl Strategy for IpAddresses {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "networking.k8s.io",
            "v1",
            "ipaddresses",
            "ipaddress",
            "IPAddress",
            CLUSTER,
        )
        .short(&["ip"])
        .names(NameRule::IpAddress)
    }
    typed_as!(networking::IPAddress);
    fn validate(&self, object: &Value) -> Vec<Cause> {
        ip_address_parent(&object["spec"]["parentRef"])
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        immutable(
            "spec.parentRef",
            new["spec"].get("parentRef"),
            old["spec"].get("parentRef"),
            &mut out,
        );
        out
    }
    fn printer(&self) -> &'static Printer {
        &table::IPADDRESS
    }
}

pub struct NetworkPolicies;

impl Strategy for NetworkPolicies {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "networkpolicy",
            "NetworkPolicy",
            NAMESPACED,
        )
        .short(&["netpol"])
    }
    typed_as!(networking::NetworkPolicy);
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::network_policy(object);
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        network_policy_spec(&object["spec"])
    }
    fn printer(&self) -> &'static Printer {
        &table::NETWORKPOLICY
    }
}

pub struct ServiceCidrs;

impl Strategy for ServiceCidrs {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new(
            "networking.k8s.io",
            "v1",
            "servicecidrs",
            "servicecidr",
            "ServiceCIDR",
            CLUSTER,
        )
        .status()
    }
    typed_as!(networking::ServiceCIDR);
    fn validate(&self, object: &Value) -> Vec<Cause> {
        service_cidrs(&object["spec"])
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        let mut out = Vec::new();
        immutable(
            "spec.cidrs",
            new["spec"].get("cidrs"),
            old["spec"].get("cidrs"),
            &mut out,
        );
        out
    }
    fn printer(&self) -> &'static Printer {
        &table::SERVICECIDR
    }
}

// ---- field rules (kube's pkg/apis/networking/validation) ----

/// kube's `IsDomainPrefixedPath` over `spec.controller`, at most 250 bytes.
fn ingress_class_controller(value: &Value, out: &mut Vec<Cause>) {
    const FIELD: &str = "spec.controller";
    let controller = value.as_str().unwrap_or("");
    if controller.len() > 250 {
        out.push(too_long(FIELD, 250));
    }
    if controller.is_empty() {
        out.push(required(FIELD));
        return;
    }
    let Some((host, path)) = controller
        .split_once('/')
        .filter(|(host, path)| !host.is_empty() && !path.is_empty())
    else {
        out.push(invalid(
            FIELD,
            value,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        ));
        return;
    };
    for problem in names::is_dns1123_subdomain(host) {
        out.push(invalid(FIELD, &Value::from(host), &problem));
    }
    const PATH_CHARS: &str = "/-._~%!$&'()*+,;=:";
    if !path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || PATH_CHARS.contains(c))
    {
        out.push(invalid(
            FIELD,
            &Value::from(path),
            &names::regex_error("Invalid path", "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+", &[]),
        ));
    }
}

/// kube's `ValidateIngressSpec`: a default backend or rules, each rule's host a (wildcard)
/// DNS name, each HTTP path typed and shaped by its type, each backend a service with one
/// port (name or number) or a resource, TLS hosts DNS names.
fn ingress_spec(spec: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let rules = spec["rules"].as_array().map_or(&[][..], Vec::as_slice);
    let default_backend = spec.get("defaultBackend").filter(|b| !b.is_null());
    if rules.is_empty() && default_backend.is_none() {
        out.push(invalid(
            "spec",
            &spec["rules"],
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = default_backend {
        ingress_backend(backend, "spec.defaultBackend", &mut out);
    }
    if let Some(class) = spec["ingressClassName"].as_str() {
        for problem in names::is_dns1123_subdomain(class) {
            out.push(invalid(
                "spec.ingressClassName",
                &spec["ingressClassName"],
                &problem,
            ));
        }
    }
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        if let Some(host) = rule["host"].as_str().filter(|h| !h.is_empty()) {
            ingress_host(host, &format!("{path}.host"), &mut out);
        }
        if let Some(http) = rule.get("http").filter(|h| h.is_object()) {
            let paths = http["paths"].as_array().map_or(&[][..], Vec::as_slice);
            if paths.is_empty() {
                out.push(required(&format!("{path}.http.paths")));
            }
            for (j, http_path) in paths.iter().enumerate() {
                ingress_path(http_path, &format!("{path}.http.paths[{j}]"), &mut out);
            }
        }
    }
    let tls = spec["tls"].as_array().map_or(&[][..], Vec::as_slice);
    for (i, entry) in tls.iter().enumerate() {
        let hosts = entry["hosts"].as_array().map_or(&[][..], Vec::as_slice);
        for (j, host) in hosts.iter().enumerate() {
            ingress_host(
                host.as_str().unwrap_or(""),
                &format!("spec.tls[{i}].hosts[{j}]"),
                &mut out,
            );
        }
        if let Some(secret) = entry["secretName"].as_str().filter(|s| !s.is_empty()) {
            for problem in names::is_dns1123_subdomain(secret) {
                out.push(invalid(
                    &format!("spec.tls[{i}].secretName"),
                    &entry["secretName"],
                    &problem,
                ));
            }
        }
    }
    out
}

/// A rule or TLS host: a DNS subdomain, optionally behind one leading `*.`, never an IP.
fn ingress_host(host: &str, field: &str, out: &mut Vec<Cause>) {
    if names::is_valid_ip(host).is_empty() {
        out.push(invalid(
            field,
            &Value::from(host),
            "must be a DNS name, not an IP address",
        ));
        return;
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    for problem in names::is_dns1123_subdomain(name) {
        out.push(invalid(field, &Value::from(host), &problem));
    }
}

/// kube's `validateHTTPIngressPath`: `Exact` and `Prefix` paths are absolute and free of
/// `//`, dot segments and encoded slashes; `ImplementationSpecific` ones absolute if set.
fn ingress_path(http_path: &Value, field: &str, out: &mut Vec<Cause>) {
    let path = http_path["path"].as_str().unwrap_or("");
    let path_field = format!("{field}.path");
    let not_absolute = || invalid(&path_field, &http_path["path"], "must be an absolute path");
    match http_path["pathType"].as_str() {
        None => out.push(super::validation::required_because(
            &format!("{field}.pathType"),
            "pathType must be specified",
        )),
        Some("Exact" | "Prefix") => {
            if !path.starts_with('/') {
                out.push(not_absolute());
            }
            for sequence in ["//", "/./", "/../", "%2f", "%2F"] {
                if path.contains(sequence) {
                    let message = format!("must not contain '{sequence}'");
                    out.push(invalid(&path_field, &http_path["path"], &message));
                }
            }
            for suffix in ["/..", "/."] {
                if path.ends_with(suffix) {
                    let message = format!("cannot end with '{suffix}'");
                    out.push(invalid(&path_field, &http_path["path"], &message));
                }
            }
        }
        Some("ImplementationSpecific") => {
            if !path.is_empty() && !path.starts_with('/') {
                out.push(not_absolute());
            }
        }
        Some(_) => out.push(not_supported(
            &format!("{field}.pathType"),
            &http_path["pathType"],
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
    ingress_backend(&http_path["backend"], &format!("{field}.backend"), out);
}

/// kube's `validateIngressBackend`: a service (a DNS-1035 name and one port, by name or by
/// number) or a resource, not both.
fn ingress_backend(backend: &Value, field: &str, out: &mut Vec<Cause>) {
    let present = |key: &str| backend.get(key).is_some_and(|v| !v.is_null());
    let empty = Value::from("");
    match (present("service"), present("resource")) {
        (true, true) => out.push(invalid(
            field,
            &empty,
            "cannot set both resource and service backends",
        )),
        (false, false) => out.push(invalid(
            field,
            &empty,
            "resource or service backend is required",
        )),
        (false, true) => {
            let resource = &backend["resource"];
            for key in ["kind", "name"] {
                if resource[key].as_str().unwrap_or("").is_empty() {
                    out.push(required(&format!("{field}.resource.{key}")));
                }
            }
        }
        (true, false) => {
            let service = &backend["service"];
            let name_field = format!("{field}.service.name");
            match service["name"].as_str().unwrap_or("") {
                "" => out.push(required(&name_field)),
                name => {
                    for problem in names::is_dns1035_label(name) {
                        out.push(invalid(&name_field, &service["name"], &problem));
                    }
                }
            }
            let port = &service["port"];
            let port_name = port["name"].as_str().unwrap_or("");
            let port_number = port["number"].as_i64().unwrap_or(0);
            if !port_name.is_empty() && port_number != 0 {
                out.push(invalid(
                    field,
                    &empty,
                    "cannot set both port name & port number",
                ));
            } else if !port_name.is_empty() {
                for problem in names::is_valid_port_name(port_name) {
                    out.push(invalid(
                        &format!("{field}.service.port.name"),
                        &port["name"],
                        &problem,
                    ));
                }
            } else if port_number != 0 {
                for problem in names::is_valid_port_num(port_number) {
                    out.push(invalid(
                        &format!("{field}.service.port.number"),
                        &port["number"],
                        &problem,
                    ));
                }
            } else {
                out.push(super::validation::required_because(
                    field,
                    "port name or number is required",
                ));
            }
        }
    }
}

/// kube's `ValidateNetworkPolicySpec` without the label-selector checks: ports (protocol,
/// port and endPort), peers (one of the three kinds, an ipBlock's CIDRs) and policyTypes.
fn network_policy_spec(spec: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        let rules = spec[direction].as_array().map_or(&[][..], Vec::as_slice);
        for (i, rule) in rules.iter().enumerate() {
            let path = format!("spec.{direction}[{i}]");
            let ports = rule["ports"].as_array().map_or(&[][..], Vec::as_slice);
            for (j, port) in ports.iter().enumerate() {
                network_policy_port(port, &format!("{path}.ports[{j}]"), &mut out);
            }
            let list = rule[peers].as_array().map_or(&[][..], Vec::as_slice);
            for (j, peer) in list.iter().enumerate() {
                network_policy_peer(peer, &format!("{path}.{peers}[{j}]"), &mut out);
            }
        }
    }
    let types = spec["policyTypes"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    for (i, kind) in types.iter().enumerate() {
        if !matches!(kind.as_str(), Some("Ingress" | "Egress")) {
            out.push(not_supported(
                &format!("spec.policyTypes[{i}]"),
                kind,
                &["Egress", "Ingress"],
            ));
        }
    }
    if types.len() > 2 {
        out.push(invalid(
            "spec.policyTypes",
            &spec["policyTypes"],
            "may not specify more than two policyTypes",
        ));
    }
    out
}

fn network_policy_port(port: &Value, field: &str, out: &mut Vec<Cause>) {
    if let Some(protocol) = port.get("protocol").filter(|p| !p.is_null())
        && !matches!(protocol.as_str(), Some("TCP" | "UDP" | "SCTP"))
    {
        out.push(not_supported(
            &format!("{field}.protocol"),
            protocol,
            &["SCTP", "TCP", "UDP"],
        ));
    }
    let port_field = format!("{field}.port");
    let end_field = format!("{field}.endPort");
    let end_port = port.get("endPort").and_then(Value::as_i64);
    match &port["port"] {
        Value::Number(number) => {
            let number = number.as_i64().unwrap_or(0);
            for problem in names::is_valid_port_num(number) {
                out.push(invalid(&port_field, &port["port"], &problem));
            }
            if let Some(end) = end_port {
                if end < number {
                    out.push(invalid(
                        &end_field,
                        &port["endPort"],
                        "must be greater than or equal to `port`",
                    ));
                }
                for problem in names::is_valid_port_num(end) {
                    out.push(invalid(&end_field, &port["endPort"], &problem));
                }
            }
        }
        Value::String(name) => {
            if end_port.is_some() {
                out.push(invalid(
                    &end_field,
                    &port["endPort"],
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for problem in names::is_valid_port_name(name) {
                out.push(invalid(&port_field, &port["port"], &problem));
            }
        }
        _ => {
            if end_port.is_some() {
                out.push(super::validation::required_because(
                    &port_field,
                    "must be specified when `endPort` is specified",
                ));
            }
        }
    }
}

fn network_policy_peer(peer: &Value, field: &str, out: &mut Vec<Cause>) {
    let kinds = ["podSelector", "namespaceSelector", "ipBlock"];
    let count = kinds
        .iter()
        .filter(|k| peer.get(**k).is_some_and(|v| !v.is_null()))
        .count();
    if count == 0 {
        out.push(super::validation::required_because(
            field,
            "must specify a peer",
        ));
    }
    let Some(block) = peer.get("ipBlock").filter(|b| !b.is_null()) else {
        return;
    };
    if count > 1 {
        out.push(forbidden(
            field,
            "may not specify both ipBlock and another peer",
        ));
        return;
    }
    let cidr_field = format!("{field}.ipBlock.cidr");
    match block["cidr"].as_str().unwrap_or("") {
        "" => out.push(required(&cidr_field)),
        cidr => {
            for problem in names::is_valid_cidr(cidr) {
                out.push(invalid(&cidr_field, &block["cidr"], &problem));
            }
        }
    }
    let except = block["except"].as_array().map_or(&[][..], Vec::as_slice);
    for (i, entry) in except.iter().enumerate() {
        for problem in names::is_valid_cidr(entry.as_str().unwrap_or("")) {
            out.push(invalid(
                &format!("{field}.ipBlock.except[{i}]"),
                entry,
                &problem,
            ));
        }
    }
}

/// kube's `validateIngressClassParametersReference`: a kind and a name, a scope of
/// `Cluster` (no namespace) or `Namespace` (with one).
fn ingress_class_parameters(parameters: &Value, out: &mut Vec<Cause>) {
    if !parameters.is_object() {
        return;
    }
    const PATH: &str = "spec.parameters";
    if let Some(group) = parameters["apiGroup"].as_str() {
        for problem in names::is_dns1123_subdomain(group) {
            out.push(invalid(
                &format!("{PATH}.apiGroup"),
                &parameters["apiGroup"],
                &problem,
            ));
        }
    }
    for (key, what) in [("kind", "kind is required"), ("name", "name is required")] {
        let field = format!("{PATH}.{key}");
        match parameters[key].as_str().unwrap_or("") {
            "" => out.push(super::validation::required_because(&field, what)),
            text => {
                for problem in names::is_path_segment_name(text) {
                    out.push(invalid(&field, &parameters[key], &problem));
                }
            }
        }
    }
    let namespace = parameters.get("namespace").filter(|n| !n.is_null());
    match parameters["scope"].as_str() {
        None => out.push(required(&format!("{PATH}.scope"))),
        Some("Namespace") => match namespace {
            None => out.push(super::validation::required_because(
                &format!("{PATH}.namespace"),
                "`parameters.scope` is set to 'Namespace'",
            )),
            Some(ns) => {
                for problem in names::is_dns1123_label(ns.as_str().unwrap_or("")) {
                    out.push(invalid(&format!("{PATH}.namespace"), ns, &problem));
                }
            }
        },
        Some("Cluster") => {
            if namespace.is_some() {
                out.push(forbidden(
                    &format!("{PATH}.namespace"),
                    "`parameters.scope` is set to 'Cluster'",
                ));
            }
        }
        Some(_) => out.push(not_supported(
            &format!("{PATH}.scope"),
            &parameters["scope"],
            &["Cluster", "Namespace"],
        )),
    }
}

/// kube's `validateIPAddressParentReference`: a resource and a name, all path segments.
fn ip_address_parent(parent: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    if !parent.is_object() {
        out.push(required("spec.parentRef"));
        return out;
    }
    if let Some(group) = parent["group"].as_str().filter(|g| !g.is_empty()) {
        for problem in names::is_dns1123_subdomain(group) {
            out.push(invalid("spec.parentRef.group", &parent["group"], &problem));
        }
    }
    for (key, needed) in [("resource", true), ("name", true), ("namespace", false)] {
        let field = format!("spec.parentRef.{key}");
        match parent[key].as_str().unwrap_or("") {
            "" if needed => out.push(required(&field)),
            "" => {}
            text => {
                for problem in names::is_path_segment_name(text) {
                    out.push(invalid(&field, &parent[key], &problem));
                }
            }
        }
    }
    out
}

/// kube's `ValidateServiceCIDR`: one or two CIDRs, one per family, each a canonical subnet.
fn service_cidrs(spec: &Value) -> Vec<Cause> {
    const FIELD: &str = "spec.cidrs";
    let cidrs = spec["cidrs"].as_array().map_or(&[][..], Vec::as_slice);
    if cidrs.is_empty() {
        return vec![super::validation::required_because(
            FIELD,
            "at least one CIDR required",
        )];
    }
    if cidrs.len() > 2 {
        return vec![invalid(FIELD, spec, "may only hold up to 2 values")];
    }
    if let [first, second] = cidrs {
        let family = |cidr: &Value| {
            let address = cidr.as_str()?.split_once('/')?.0;
            Some(address.contains(':'))
        };
        let dual = matches!((family(first), family(second)), (Some(a), Some(b)) if a != b);
        if !dual {
            return vec![invalid(
                FIELD,
                spec,
                "may specify no more than one IP for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64",
            )];
        }
    }
    let mut out = Vec::new();
    for (i, cidr) in cidrs.iter().enumerate() {
        for problem in names::is_valid_cidr(cidr.as_str().unwrap_or("")) {
            out.push(invalid(&format!("{FIELD}[{i}]"), cidr, &problem));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(causes: &[Cause]) -> Vec<(&str, &str)> {
        causes
            .iter()
            .map(|c| (c.field.as_str(), c.message.as_str()))
            .collect()
    }

    /// Each cause's field and reason (kube's cause type).
    fn reasons(causes: &[Cause]) -> Vec<(&str, &str)> {
        causes
            .iter()
            .map(|c| (c.field.as_str(), c.reason.as_str()))
            .collect()
    }

    #[test]
    fn an_ingress_needs_a_backend_with_one_port_and_typed_absolute_paths() {
        let valid = json!({"spec": {"tls": [{"hosts": ["*.example.com"], "secretName": "tls"}],
            "rules": [{"host": "a.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                {"pathType": "ImplementationSpecific",
                 "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}]}});
        assert!(Ingresses.validate(&valid).is_empty());
        assert_eq!(
            reasons(&Ingresses.validate(&json!({"spec": {}}))),
            [("spec", "FieldValueInvalid")]
        );
        let backend = |service: Value| json!({"spec": {"defaultBackend": {"service": service}}});
        assert_eq!(
            reasons(&Ingresses.validate(&backend(json!({"name": "web", "port": {}})))),
            [("spec.defaultBackend", "FieldValueRequired")]
        );
        assert_eq!(
            reasons(&Ingresses.validate(&backend(
                json!({"name": "web", "port": {"name": "http", "number": 80}})
            ))),
            [("spec.defaultBackend", "FieldValueInvalid")]
        );
        assert_eq!(
            reasons(
                &Ingresses.validate(&backend(json!({"name": "web", "port": {"number": 70000}})))
            ),
            [(
                "spec.defaultBackend.service.port.number",
                "FieldValueInvalid"
            )]
        );
        assert_eq!(
            reasons(&Ingresses.validate(&json!({"spec": {"defaultBackend": {}}}))),
            [("spec.defaultBackend", "FieldValueInvalid")]
        );
        let path = |path: Value| {
            json!({"spec": {"rules": [{"host": "10.0.0.1", "http": {"paths": [path]}}],
                "tls": [{"hosts": ["bad_host"]}]}})
        };
        let service = json!({"service": {"name": "web", "port": {"number": 80}}});
        assert_eq!(
            reasons(&Ingresses.validate(&path(json!({"path": "/a/../b", "backend": service})))),
            [
                ("spec.rules[0].host", "FieldValueInvalid"),
                ("spec.rules[0].http.paths[0].pathType", "FieldValueRequired"),
                ("spec.tls[0].hosts[0]", "FieldValueInvalid"),
            ]
        );
        assert_eq!(
            reasons(&Ingresses.validate(&path(
                json!({"path": "a//b", "pathType": "Exact", "backend": service})
            )))[1..3],
            [
                ("spec.rules[0].http.paths[0].path", "FieldValueInvalid"),
                ("spec.rules[0].http.paths[0].path", "FieldValueInvalid"),
            ]
        );
        assert_eq!(
            reasons(&Ingresses.validate(&path(
                json!({"path": "/", "pathType": "Regex", "backend": service})
            )))[1],
            (
                "spec.rules[0].http.paths[0].pathType",
                "FieldValueNotSupported"
            )
        );
    }

    #[test]
    fn a_network_policy_checks_ports_peers_and_policy_types() {
        let valid = json!({"spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"protocol": "TCP", "port": 80, "endPort": 90},
                                   {"port": "http"}],
                         "from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                                  {"podSelector": {}, "namespaceSelector": {}}]}]}});
        assert!(NetworkPolicies.validate(&valid).is_empty());
        let bad = json!({"spec": {"podSelector": {}, "policyTypes": ["Sideways"],
            "ingress": [{"ports": [{"protocol": "ICMP", "port": 90, "endPort": 80},
                                   {"port": "http", "endPort": 81}, {"endPort": 82}],
                         "from": [{}, {"ipBlock": {"cidr": "10.0.0.0/33"}},
                                  {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}],
            "egress": [{"to": [{"ipBlock": {}}]}]}});
        assert_eq!(
            reasons(&NetworkPolicies.validate(&bad)),
            [
                (
                    "spec.ingress[0].ports[0].protocol",
                    "FieldValueNotSupported"
                ),
                ("spec.ingress[0].ports[0].endPort", "FieldValueInvalid"),
                ("spec.ingress[0].ports[1].endPort", "FieldValueInvalid"),
                ("spec.ingress[0].ports[2].port", "FieldValueRequired"),
                ("spec.ingress[0].from[0]", "FieldValueRequired"),
                ("spec.ingress[0].from[1].ipBlock.cidr", "FieldValueInvalid"),
                ("spec.ingress[0].from[2]", "FieldValueForbidden"),
                ("spec.egress[0].to[0].ipBlock.cidr", "FieldValueRequired"),
                ("spec.policyTypes[0]", "FieldValueNotSupported"),
            ]
        );
    }

    #[test]
    fn an_ingress_class_names_a_domain_prefixed_controller_and_scoped_parameters() {
        let mut class = json!({"spec": {"controller": "example.com/ingress",
            "parameters": {"kind": "Params", "name": "p"}}});
        IngressClasses.default(
            &mut class,
            &DefaultContext {
                create: true,
                old: None,
                ip_family: "IPv4",
            },
        );
        assert_eq!(class["spec"]["parameters"]["scope"], "Cluster");
        assert!(IngressClasses.validate(&class).is_empty());
        let bad = json!({"spec": {"controller": "nginx",
            "parameters": {"kind": "Params", "name": "p", "scope": "Cluster", "namespace": "x"}}});
        assert_eq!(
            fields(&IngressClasses.validate(&bad)),
            [
                (
                    "spec.controller",
                    "Invalid value: \"nginx\": must be a domain-prefixed path (such as \"acme.io/foo\")"
                ),
                (
                    "spec.parameters.namespace",
                    "Forbidden: `parameters.scope` is set to 'Cluster'"
                ),
            ]
        );
        let changed = json!({"spec": {"controller": "example.com/other"}});
        assert_eq!(
            IngressClasses.validate_update(&changed, &class)[0].field,
            "spec.controller"
        );
    }

    #[test]
    fn an_ip_address_names_its_parent_which_never_changes() {
        let ip = json!({"spec": {"parentRef": {"group": "", "resource": "services",
                                               "namespace": "default", "name": "web"}}});
        assert!(IpAddresses.validate(&ip).is_empty());
        assert_eq!(
            fields(&IpAddresses.validate(&json!({"spec": {}}))),
            [("spec.parentRef", "Required value")]
        );
        assert_eq!(
            fields(
                &IpAddresses.validate(&json!({"spec": {"parentRef": {"resource": "services"}}}))
            ),
            [("spec.parentRef.name", "Required value")]
        );
        let mut moved = ip.clone();
        moved["spec"]["parentRef"]["name"] = json!("other");
        assert_eq!(
            IpAddresses.validate_update(&moved, &ip)[0].field,
            "spec.parentRef"
        );
        assert_eq!(IpAddresses.info().name_rule, NameRule::IpAddress);
    }

    #[test]
    fn a_service_cidr_holds_one_subnet_per_family() {
        let spec = |cidrs: Value| json!({"spec": {"cidrs": cidrs}});
        assert!(
            ServiceCidrs
                .validate(&spec(json!(["10.96.0.0/12", "fd00::/108"])))
                .is_empty()
        );
        assert_eq!(
            fields(&ServiceCidrs.validate(&spec(json!([])))),
            [("spec.cidrs", "Required value: at least one CIDR required")]
        );
        let causes = ServiceCidrs.validate(&spec(json!(["10.0.0.0/24", "10.1.0.0/24"])));
        assert!(
            causes[0]
                .message
                .ends_with("i.e 192.168.0.0/24 and 2001:db8::/64")
        );
        assert_eq!(
            fields(&ServiceCidrs.validate(&spec(json!(["10.0.0.1/24"])))),
            [(
                "spec.cidrs[0]",
                "Invalid value: \"10.0.0.1/24\": must not have bits set beyond the prefix length"
            )]
        );
        let old = spec(json!(["10.0.0.0/24"]));
        let causes = ServiceCidrs.validate_update(&spec(json!(["10.1.0.0/24"])), &old);
        assert_eq!(causes[0].field, "spec.cidrs");
    }
}
