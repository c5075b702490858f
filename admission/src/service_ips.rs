//! Service clusterIP allocation from `--service-cluster-ip-range`.
//!
//! The store is the source of truth, as in kube-apiserver 1.33's IPAddress allocator: every
//! allocated IP is a key of its own, `<prefix>/ipaddresses/<ip>`, holding a
//! `networking.k8s.io/v1` IPAddress whose `parentRef` names the Service — the key the served
//! `ipaddresses` resource stores its objects at, so clients read (and watch) the allocator's
//! objects, labelled `ipaddress.kubernetes.io/managed-by: ipallocator.k8s.io`, and an
//! IPAddress a client creates reserves its IP here too. Allocating is
//! creating that key — a storage transaction that fails when the key exists — so two servers
//! over one etcd can never hand out the same IP. The Service is written after its IP; when that
//! write fails, the IP key is deleted again (compare-and-swap on the revision this server
//! created it at, so nothing another writer did is undone).
//!
//! Each server also keeps the offsets it believes taken, a hint to find a free one without
//! reading storage: built at startup from the IP keys and the stored Services, updated by its
//! own allocations and releases. A create that finds a hint-free IP taken marks it and tries
//! the next; when the hint says the range is full, it is rebuilt from storage once before the
//! request fails. At startup, Services without an IP key get one (data written before this
//! allocator existed), and IP keys whose Service does not hold them any more — a server died
//! between the two writes — are deleted once older than a grace period.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use kubecache_core::status::{ApiError, Cause};
use kubecache_core::storage::{ListOptions, Revision, StorageError};
use parking_lot::Mutex;
use serde_json::{Value, json};

use super::{Admitted, Attributes, Context, Operation};
use kubecache_apimachinery::objects;
use kubecache_core::request::Subresource;
use kubecache_core::status::storage_error;

/// Largest range, in host bits (kube-apiserver refuses ranges with more than 2^20 addresses).
const MAX_HOST_BITS: u32 = 20;

/// A service IP range: `10.0.0.0/24`, `fd00::/108`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCidr {
    network: IpAddr,
    prefix: u32,
}

impl Default for ServiceCidr {
    /// kube-apiserver's default, 10.0.0.0/24.
    fn default() -> Self {
        "10.0.0.0/24".parse().expect("a valid range")
    }
}

impl fmt::Display for ServiceCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn bits(ip: IpAddr) -> u32 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl FromStr for ServiceCidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.contains(',') {
            return Err(format!(
                "{s}: dual-stack service ranges are not supported; give one range"
            ));
        }
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("{s}: not a CIDR (e.g. 10.0.0.0/24)"))?;
        let ip: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("{s}: invalid IP address"))?;
        let prefix: u32 = prefix
            .trim()
            .parse()
            .ok()
            .filter(|p| *p <= bits(ip))
            .ok_or_else(|| format!("{s}: invalid prefix length"))?;
        let host_bits = bits(ip) - prefix;
        if host_bits > MAX_HOST_BITS {
            return Err(format!(
                "{s}: the range is too large; it may have at most {MAX_HOST_BITS} host bits (a /{} for this family)",
                bits(ip) - MAX_HOST_BITS
            ));
        }
        if host_bits < 2 {
            return Err(format!("{s}: the range is too small"));
        }
        let mask = !((1u128 << host_bits) - 1);
        let network = match ip {
            IpAddr::V4(_) => IpAddr::V4(((to_u128(ip) & mask) as u32).into()),
            IpAddr::V6(_) => IpAddr::V6((to_u128(ip) & mask).into()),
        };
        Ok(ServiceCidr { network, prefix })
    }
}

impl ServiceCidr {
    fn size(&self) -> u64 {
        1u64 << (bits(self.network) - self.prefix)
    }

    /// `IPv4` or `IPv6`.
    pub fn family(&self) -> &'static str {
        if self.network.is_ipv4() {
            "IPv4"
        } else {
            "IPv6"
        }
    }

    /// Offsets that may be allocated: not the network address, nor IPv4's broadcast address.
    fn usable(&self) -> std::ops::Range<u64> {
        let end = if self.network.is_ipv4() {
            self.size() - 1
        } else {
            self.size()
        };
        1..end
    }

    /// The offset of `ip` when it is an allocatable address of the range.
    pub fn offset(&self, ip: IpAddr) -> Option<u64> {
        if ip.is_ipv4() != self.network.is_ipv4() {
            return None;
        }
        let delta = to_u128(ip).checked_sub(to_u128(self.network))?;
        let offset = u64::try_from(delta).ok()?;
        self.usable().contains(&offset).then_some(offset)
    }

    pub fn ip_at(&self, offset: u64) -> IpAddr {
        let value = to_u128(self.network) + u128::from(offset);
        match self.network {
            IpAddr::V4(_) => IpAddr::V4((value as u32).into()),
            IpAddr::V6(_) => IpAddr::V6(value.into()),
        }
    }

    /// kube's static band (KEP-3070): the low addresses automatic allocation avoids while the
    /// rest has room, so users can pick fixed IPs there.
    fn static_band(&self) -> u64 {
        (self.size() / 16).clamp(16, 256)
    }
}

/// Who holds an IP: the Service, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub ip: IpAddr,
    pub namespace: String,
    pub name: String,
}

/// An IP key this server created for a write that has not been settled.
pub struct Reservation {
    key: String,
    offset: u64,
    /// The revision the key was created at: a release only deletes that version.
    revision: Revision,
    /// Given back (or kept) already.
    done: bool,
    /// For the background release when dropped unsettled.
    release: Option<(std::sync::Weak<Mutex<HashSet<u64>>>, DropRelease)>,
}

/// What a dropped reservation needs to delete its key.
type DropRelease = std::sync::Arc<dyn kubecache_core::storage::Backend>;

impl Reservation {
    /// The write succeeded: the IP stays allocated.
    pub fn keep(mut self) {
        self.done = true;
    }

    /// The write failed: the key goes, if it is still the version this server created.
    pub async fn give_back(mut self, context: &dyn Context) {
        self.done = true;
        match context
            .backend()
            .delete(&self.key, Some(self.revision))
            .await
        {
            Ok(_) | Err(StorageError::NotFound { .. }) => {
                context
                    .admission()
                    .service_ips
                    .used
                    .lock()
                    .remove(&self.offset);
            }
            Err(e) => tracing::warn!("cannot release service IP {}: {e}", self.key),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some((used, backend)) = self.release.take() else {
            return;
        };
        let (key, revision, offset) = (self.key.clone(), self.revision, self.offset);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if backend.delete(&key, Some(revision)).await.is_ok()
                    && let Some(used) = used.upgrade()
                {
                    used.lock().remove(&offset);
                }
            });
        }
    }
}

/// The allocator: the range and the hint of taken offsets.
pub struct ServiceIps {
    range: ServiceCidr,
    /// Offsets believed taken (a hint; storage decides). Shared with reservations so a
    /// background release can update it.
    used: std::sync::Arc<Mutex<HashSet<u64>>>,
    orphan_grace: Duration,
}

impl ServiceIps {
    pub fn new(range: ServiceCidr, orphan_grace: Duration) -> ServiceIps {
        ServiceIps {
            range,
            used: Default::default(),
            orphan_grace,
        }
    }

    pub fn range(&self) -> &ServiceCidr {
        &self.range
    }

    pub fn family(&self) -> &'static str {
        self.range.family()
    }

    /// How many IPs this server believes allocated.
    pub fn allocated_hint(&self) -> usize {
        self.used.lock().len()
    }

    fn key(context: &dyn Context, ip: IpAddr) -> String {
        format!("{}/ipaddresses/{ip}", context.storage_root())
    }

    fn prefix(context: &dyn Context) -> String {
        format!("{}/ipaddresses/", context.storage_root())
    }

    fn ip_address_object(holder: &Holder) -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IPAddress",
            "metadata": {
                "name": holder.ip.to_string(),
                "uid": uuid::Uuid::new_v4().to_string(),
                "creationTimestamp": objects::now_rfc3339(),
                "labels": {
                    "ipaddress.kubernetes.io/ip-family": if holder.ip.is_ipv4() { "IPv4" } else { "IPv6" },
                    MANAGED_BY_LABEL: ALLOCATOR,
                },
            },
            "spec": {"parentRef": {
                "group": "",
                "resource": "services",
                "namespace": holder.namespace,
                "name": holder.name,
            }},
        })
    }

    /// Creates the IP key; `Ok(None)` when it is taken.
    async fn try_create(
        &self,
        context: &dyn Context,
        holder: &Holder,
        offset: u64,
    ) -> Result<Option<Reservation>, ApiError> {
        let key = Self::key(context, holder.ip);
        let value = objects::encode(&Self::ip_address_object(holder));
        match context.backend().create(&key, value).await {
            Ok(kv) => {
                self.used.lock().insert(offset);
                Ok(Some(Reservation {
                    key,
                    offset,
                    revision: kv.mod_revision,
                    done: false,
                    release: Some((
                        std::sync::Arc::downgrade(&self.used),
                        context.backend().clone(),
                    )),
                }))
            }
            Err(StorageError::KeyExists { .. }) => {
                self.used.lock().insert(offset);
                Ok(None)
            }
            Err(e) => Err(storage_error(e)),
        }
    }

    /// Whether the IP key exists (dry runs).
    async fn taken(&self, context: &dyn Context, ip: IpAddr) -> Result<bool, ApiError> {
        Ok(context
            .backend()
            .get(&Self::key(context, ip))
            .await
            .map_err(storage_error)?
            .is_some())
    }

    /// Allocates the IP the client asked for.
    async fn allocate_requested(
        &self,
        context: &dyn Context,
        holder: &Holder,
        dry_run: bool,
    ) -> Result<Option<Reservation>, ApiError> {
        let ip = holder.ip;
        let Some(offset) = self.range.offset(ip) else {
            return Err(allocation_error(
                holder,
                &format!(
                    "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                    self.range
                ),
            ));
        };
        let taken = || allocation_error(holder, "provided IP is already allocated");
        if dry_run {
            return if self.taken(context, ip).await? {
                Err(taken())
            } else {
                Ok(None)
            };
        }
        match self.try_create(context, holder, offset).await? {
            Some(r) => Ok(Some(r)),
            None => Err(taken()),
        }
    }

    /// Allocates a free IP: at random in the upper band first, then in the static band.
    async fn allocate_any(
        &self,
        context: &dyn Context,
        namespace: &str,
        name: &str,
        dry_run: bool,
    ) -> Result<(IpAddr, Option<Reservation>), ApiError> {
        for pass in 0..2 {
            if pass == 1 {
                // The hint says full: other servers may have released IPs meanwhile.
                self.resync(context).await.map_err(storage_error)?;
            }
            for offset in self.candidates() {
                let holder = Holder {
                    ip: self.range.ip_at(offset),
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                };
                if dry_run {
                    if self.taken(context, holder.ip).await? {
                        self.used.lock().insert(offset);
                        continue;
                    }
                    return Ok((holder.ip, None));
                }
                if let Some(r) = self.try_create(context, &holder, offset).await? {
                    return Ok((holder.ip, Some(r)));
                }
            }
        }
        Err(ApiError::internal(
            "failed to allocate a serviceIP: range is full",
        ))
    }

    /// Free offsets by the hint, in the order to try them.
    fn candidates(&self) -> Vec<u64> {
        let usable = self.range.usable();
        let band = self.range.static_band().min(usable.end - 1);
        let upper = (usable.start + band).min(usable.end)..usable.end;
        let lower = usable.start..upper.start;
        let random = u64::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..8]
                .try_into()
                .expect("8 bytes"),
        );
        let used = self.used.lock();
        let mut out = Vec::new();
        for band in [upper, lower] {
            let len = band.end - band.start;
            if len == 0 {
                continue;
            }
            let start = random % len;
            out.extend(
                (0..len)
                    .map(|i| band.start + (start + i) % len)
                    .filter(|o| !used.contains(o)),
            );
        }
        out
    }

    /// Gives the IP back if `holder` still holds it.
    pub async fn release(&self, context: &dyn Context, holder: &Holder) {
        let Some(offset) = self.range.offset(holder.ip) else {
            return;
        };
        let key = Self::key(context, holder.ip);
        let kv = match context.backend().get(&key).await {
            Ok(Some(kv)) => kv,
            Ok(None) => {
                self.used.lock().remove(&offset);
                return;
            }
            Err(e) => {
                tracing::warn!("cannot release service IP {}: {e}", holder.ip);
                return;
            }
        };
        let held_by = serde_json::from_slice::<Value>(&kv.value)
            .ok()
            .and_then(|v| parent(&v));
        if held_by.as_ref() != Some(&(holder.namespace.clone(), holder.name.clone())) {
            return;
        }
        match context.backend().delete(&key, Some(kv.mod_revision)).await {
            Ok(_) | Err(StorageError::NotFound { .. }) => {
                self.used.lock().remove(&offset);
            }
            Err(e) => tracing::warn!("cannot release service IP {}: {e}", holder.ip),
        }
    }

    /// Rebuilds the hint from the IP keys alone.
    async fn resync(&self, context: &dyn Context) -> Result<(), StorageError> {
        let page = context
            .backend()
            .list(ListOptions {
                prefix: Self::prefix(context),
                ..Default::default()
            })
            .await?;
        let used: HashSet<u64> = page
            .kvs
            .iter()
            .filter_map(|kv| ip_of_key(&kv.key))
            .filter_map(|ip| self.range.offset(ip))
            .collect();
        *self.used.lock() = used;
        Ok(())
    }

    /// At startup: the hint from storage; IP keys for stored Services that lack one; orphaned
    /// IP keys older than the grace period deleted.
    pub async fn rebuild(&self, context: &dyn Context) -> Result<(), StorageError> {
        let ip_keys = context
            .backend()
            .list(ListOptions {
                prefix: Self::prefix(context),
                ..Default::default()
            })
            .await?;
        let mut keys: HashMap<IpAddr, StoredIp> = HashMap::new();
        for kv in &ip_keys.kvs {
            let Some(ip) = ip_of_key(&kv.key) else {
                continue;
            };
            let object: Value = serde_json::from_slice(&kv.value).unwrap_or(Value::Null);
            keys.insert(ip, (parent(&object), object, kv.mod_revision));
        }
        let services = context
            .registry()
            .lookup("", "v1", "services")
            .expect("services are always registered");
        let stored = context
            .backend()
            .list(ListOptions {
                prefix: context.storage_prefix(&services),
                ..Default::default()
            })
            .await?;
        let mut held: HashMap<IpAddr, (String, String)> = HashMap::new();
        for kv in &stored.kvs {
            let Ok(service) = serde_json::from_slice::<Value>(&kv.value) else {
                continue;
            };
            for holder in holders(context, &service) {
                let owner = (holder.namespace.clone(), holder.name.clone());
                if let Some(existing) = held.insert(holder.ip, owner.clone()) {
                    tracing::warn!(
                        "services {}/{} and {}/{} share the cluster IP {}",
                        existing.0,
                        existing.1,
                        owner.0,
                        owner.1,
                        holder.ip
                    );
                }
                if let std::collections::hash_map::Entry::Vacant(e) = keys.entry(holder.ip) {
                    let object = Self::ip_address_object(&holder);
                    match context
                        .backend()
                        .create(&Self::key(context, holder.ip), objects::encode(&object))
                        .await
                    {
                        Ok(_) | Err(StorageError::KeyExists { .. }) => {}
                        Err(e) => return Err(e),
                    }
                    e.insert((Some(owner), object, 0));
                }
            }
        }
        let now = chrono::Utc::now();
        let mut used = HashSet::new();
        for (ip, (owner, object, revision)) in keys {
            let Some(offset) = self.range.offset(ip) else {
                continue;
            };
            // Only this allocator's objects can be orphans: an IPAddress created through
            // the API for something else keeps its IP.
            let orphan =
                allocated_here(&object) && (owner.is_none() || held.get(&ip) != owner.as_ref());
            let created = objects::meta_str(&object, "creationTimestamp")
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            let old_enough = created.is_none_or(|t| {
                (now - t.with_timezone(&chrono::Utc))
                    .to_std()
                    .is_ok_and(|age| age >= self.orphan_grace)
            });
            if orphan && old_enough && revision != 0 {
                tracing::info!("releasing service IP {ip}: no service holds it");
                match context
                    .backend()
                    .delete(&Self::key(context, ip), Some(revision))
                    .await
                {
                    Ok(_) | Err(StorageError::NotFound { .. }) => continue,
                    Err(StorageError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            used.insert(offset);
        }
        *self.used.lock() = used;
        Ok(())
    }
}

/// A namespace and name.
type ServiceName = (String, String);

/// An IP key as startup repair reads it: the Service it names, the object, its revision (0 for
/// one this repair just wrote).
type StoredIp = (Option<ServiceName>, Value, Revision);

fn ip_of_key(key: &str) -> Option<IpAddr> {
    key.rsplit('/').next()?.parse().ok()
}

/// The label naming who manages an IPAddress, and this allocator's value (kube's
/// `ipaddress.kubernetes.io/managed-by: ipallocator.k8s.io`).
const MANAGED_BY_LABEL: &str = "ipaddress.kubernetes.io/managed-by";
const ALLOCATOR: &str = "ipallocator.k8s.io";

/// The Service an IPAddress object of this allocator names: `None` for an IPAddress someone
/// else created through the API (it keeps its IP reserved, and is never released or
/// repaired here, as kube's repair loop leaves other managers' objects alone).
fn parent(ip_address: &Value) -> Option<(String, String)> {
    if ip_address
        .pointer("/metadata/labels")?
        .get(MANAGED_BY_LABEL)?
        .as_str()
        != Some(ALLOCATOR)
    {
        return None;
    }
    let p = ip_address.pointer("/spec/parentRef")?;
    if p.get("resource")?.as_str() != Some("services")
        || p.get("group")
            .and_then(Value::as_str)
            .is_some_and(|g| !g.is_empty())
    {
        return None;
    }
    Some((
        p.get("namespace")?.as_str()?.to_string(),
        p.get("name")?.as_str()?.to_string(),
    ))
}

/// Whether a stored IPAddress is this allocator's (startup repair deletes only those).
fn allocated_here(ip_address: &Value) -> bool {
    ip_address
        .pointer("/metadata/labels")
        .and_then(|labels| labels.get(MANAGED_BY_LABEL))
        .and_then(Value::as_str)
        == Some(ALLOCATOR)
}

/// The IPs of the range a stored Service holds.
pub fn holders(context: &dyn Context, service: &Value) -> Vec<Holder> {
    let range = context.admission().service_ips.range();
    let namespace = objects::meta_str(service, "namespace").unwrap_or("");
    let name = objects::name(service);
    service_ips(service)
        .into_iter()
        .filter(|ip| range.offset(*ip).is_some())
        .map(|ip| Holder {
            ip,
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
        .collect()
}

/// The cluster IPs a Service names (not `None`, not ExternalName).
fn service_ips(service: &Value) -> Vec<IpAddr> {
    if service.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName") {
        return Vec::new();
    }
    let mut ips: Vec<IpAddr> = service
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str()?.parse().ok()).collect())
        .unwrap_or_default();
    if let Some(ip) = service
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        && !ips.contains(&ip)
    {
        ips.insert(0, ip);
    }
    ips
}

/// The 422 kube answers when the requested IP cannot be had.
fn allocation_error(holder: &Holder, why: &str) -> ApiError {
    let ip = holder.ip.to_string();
    ApiError::invalid(
        "",
        "Service",
        &holder.name,
        vec![Cause::new(
            "FieldValueInvalid",
            "spec.clusterIPs[0]",
            format!("Invalid value: \"{ip}\": failed to allocate IP {ip}: {why}"),
        )],
    )
}

/// The allocation step of [`super::admit`]: a Service that needs a cluster IP and has none
/// gets one; one that names an IP it did not hold gets that one; one that stops needing its IP
/// gives it up once written.
pub(super) async fn admit(
    attrs: &Attributes<'_>,
    object: &mut Value,
) -> Result<Admitted, ApiError> {
    let mut admitted = Admitted::default();
    if attrs.kind() != ("", "Service")
        || attrs.operation == Operation::Delete
        || attrs.subresource == Some(Subresource::Status)
    {
        return Ok(admitted);
    }
    let ips = &attrs.context.admission().service_ips;
    let namespace = objects::meta_str(object, "namespace")
        .unwrap_or("")
        .to_string();
    let name = objects::name(object).to_string();
    let old_ips = attrs.old.map(service_ips).unwrap_or_default();
    let external = object.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
    let requested = object
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !external && requested.is_empty() {
        let (ip, reservation) = ips
            .allocate_any(attrs.context, &namespace, &name, attrs.dry_run)
            .await?;
        object["spec"]["clusterIP"] = json!(ip.to_string());
        object["spec"]["clusterIPs"] = json!([ip.to_string()]);
        admitted.reserved.extend(reservation);
    } else if !external
        && requested != "None"
        && let Ok(ip) = requested.parse::<IpAddr>()
        && !old_ips.contains(&ip)
    {
        let holder = Holder {
            ip,
            namespace: namespace.clone(),
            name: name.clone(),
        };
        let reservation = ips
            .allocate_requested(attrs.context, &holder, attrs.dry_run)
            .await?;
        admitted.reserved.extend(reservation);
    }
    let new_ips = service_ips(object);
    for ip in old_ips {
        if !new_ips.contains(&ip) && ips.range.offset(ip).is_some() && !attrs.dry_run {
            admitted.released.push(Holder {
                ip,
                namespace: namespace.clone(),
                name: name.clone(),
            });
        }
    }
    Ok(admitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r: ServiceCidr = "10.0.0.0/24".parse().unwrap();
        assert_eq!(r.offset("10.0.0.1".parse().unwrap()), Some(1));
        assert_eq!(r.offset("10.0.0.254".parse().unwrap()), Some(254));
        assert_eq!(r.offset("10.0.0.0".parse().unwrap()), None, "network");
        assert_eq!(r.offset("10.0.0.255".parse().unwrap()), None, "broadcast");
        assert_eq!(r.offset("10.0.1.1".parse().unwrap()), None);
        assert_eq!(r.offset("::1".parse().unwrap()), None);
        assert_eq!(r.ip_at(7).to_string(), "10.0.0.7");
        assert_eq!(r.static_band(), 16);
        let masked: ServiceCidr = "10.96.3.4/12".parse().unwrap();
        assert_eq!(masked.to_string(), "10.96.0.0/12");
        let v6: ServiceCidr = "fd00::/108".parse().unwrap();
        assert_eq!(v6.family(), "IPv6");
        assert_eq!(v6.offset("fd00::ffff".parse().unwrap()), Some(0xffff));
        assert!("10.0.0.0/8".parse::<ServiceCidr>().is_err(), "too large");
        assert!("10.0.0.0/31".parse::<ServiceCidr>().is_err(), "too small");
        assert!("10.0.0.0/24,fd00::/108".parse::<ServiceCidr>().is_err());
        assert!("nonsense".parse::<ServiceCidr>().is_err());
    }

    #[test]
    fn candidates_prefer_the_upper_band_and_skip_used() {
        let ips = ServiceIps::new("10.0.0.0/24".parse().unwrap(), Duration::ZERO);
        ips.used.lock().extend(17..254);
        let c = ips.candidates();
        assert_eq!(c[0], 254, "the only free upper offset comes first");
        let mut lower = c[1..].to_vec();
        lower.sort();
        assert_eq!(lower, (1..17).collect::<Vec<_>>());
    }

    #[test]
    fn service_ips_of_objects() {
        let svc = json!({"spec": {"clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"]}});
        assert_eq!(
            service_ips(&svc),
            vec!["10.0.0.5".parse::<IpAddr>().unwrap()]
        );
        assert!(service_ips(&json!({"spec": {"clusterIP": "None"}})).is_empty());
        assert!(
            service_ips(&json!({"spec": {"type": "ExternalName", "clusterIP": "10.0.0.5"}}))
                .is_empty()
        );
    }
}
