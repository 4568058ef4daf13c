//! IncusOS install seeds checked as incus-osd reads them.
//!
//! Everything here is read from lxc/incus-os at commit
//! `de2717305758401aa1add53200caa5e3c212f25c` (paths below are relative to that repository):
//!
//! - Which files: `incus-osd/internal/seed/*.go` each call `parseFileContents(getSeedPath(),
//!   "<name>", …)` with one of [`SEED_NAMES`] (e.g. `internal/seed/install.go:15`).
//! - Which extensions and how strictly: `internal/seed/seed.go:275-298` (the tar on the install
//!   medium) matches `<name>.json`, `<name>.yaml` and `<name>.yml` (a leading `./` trimmed);
//!   JSON goes through `json.NewDecoder` with `DisallowUnknownFields()` (seed.go:277-278), YAML
//!   through go.yaml.in/yaml/v4's `NewLoader(…, yaml.WithKnownFields())` (seed.go:288). An
//!   unknown field, a wrong type or a syntax error is an error, and the install stops on it
//!   (`internal/install/install.go:69-72`).
//! - An empty file: the decoder returns `io.EOF`; `GetInstall` takes that as "install with the
//!   defaults" (`internal/seed/install.go:17-19`), every other seed returns it as an error
//!   (e.g. `internal/seed/applications.go:14-17`; `seed.go:127-130` keeps it from falling back).
//! - No install seed, no install: `ShouldPerformInstall` is `GetInstall() == nil`
//!   (`internal/install/install.go:305-311`), read at start-up (`cmd/incus-osd/main.go:146`).
//! - Where: `/dev/disk/by-partlabel/seed-data` (`internal/seed/seed.go:116`), a partition named
//!   `seed-data` (`mkosi.repart/01-seed-data.conf`: `Label=seed-data`, 100 MB), whose first
//!   bytes must be a ustar tar (`seed.go:241-251`).
//!
//! The types mirror upstream's Go structs field for field: the JSON and YAML names are the Go
//! tags, every struct refuses unknown fields, and each cites its upstream file and line. Go
//! decodes `null` into any field as "leave it zero", so every field here is an `Option`.
//! Go's YAML decoder gives a string field the text of any scalar (`version: 1` is `"1"`) while
//! its JSON decoder refuses a number there: [`GoString`] does the same; both refuse a string or
//! a fraction for an `int` ([`GoInt`]), and go-yaml reads `yes`/`no`/`on`/`off` into a bool, as
//! serde-saphyr does. Go embeds
//! `api.SystemNetworkConfig` (and the provider, security and update configs) into the seed
//! struct (`yaml:",inline"`, and an untagged embedded struct for JSON), so those fields sit at
//! the top level here too. What upstream takes from other modules (Incus's `InitPreseed`,
//! Migration Manager's and Operations Center's system APIs) is not mirrored: those values are
//! read as any YAML/JSON value, and only the fields around them are checked.
//!
//! Where labflash is stricter than incus-osd (it refuses, incus-osd would read): a YAML file with
//! a second document (go-yaml's `Loader.Load` reads the first only), a JSON key in another case
//! (`encoding/json` matches field names case-insensitively) or given twice (Go keeps the last).

use std::cell::Cell;
use std::collections::BTreeMap;

use serde::de::{self, IgnoredAny};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The GPT partition name of the seed partition (`mkosi.repart/01-seed-data.conf:3`,
/// `incus-osd/internal/seed/seed.go:116`).
pub const SEED_PARTITION: &str = "seed-data";

/// The seed files incus-osd reads (`incus-osd/internal/seed/<name>.go`, each calling
/// `parseFileContents(getSeedPath(), "<name>", …)`), each as `.json`, `.yaml` or `.yml`
/// (`incus-osd/internal/seed/seed.go:276,287`).
pub const SEED_NAMES: [&str; 11] = [
    "applications",
    "incus",
    "install",
    "kernel",
    "migration-manager",
    "network",
    "operations-center",
    "provider",
    "security",
    "services",
    "update",
];

/// The extensions incus-osd matches (`incus-osd/internal/seed/seed.go:276,287`).
pub const SEED_EXTENSIONS: [&str; 3] = ["json", "yaml", "yml"];

thread_local! {
    /// Set while a YAML file is decoded: Go's YAML decoder puts any scalar's text into a
    /// string field, its JSON decoder does not.
    static YAML: Cell<bool> = const { Cell::new(false) };
}

/// A Go `string` field: a string, or in YAML any scalar's text (go-yaml's decoder sets a string
/// field from the scalar's value whatever its resolved type).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GoString(pub String);

impl<'de> Deserialize<'de> for GoString {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        /// A scalar that is not a string: its text in YAML, refused in JSON.
        fn lenient<E: de::Error>(
            text: String,
            unexpected: de::Unexpected<'_>,
        ) -> std::result::Result<GoString, E> {
            if YAML.with(Cell::get) {
                Ok(GoString(text))
            } else {
                Err(E::invalid_type(unexpected, &"a string"))
            }
        }
        impl de::Visitor<'_> for V {
            type Value = GoString;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<GoString, E> {
                Ok(GoString(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<GoString, E> {
                lenient(v.to_string(), de::Unexpected::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<GoString, E> {
                lenient(v.to_string(), de::Unexpected::Signed(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<GoString, E> {
                lenient(v.to_string(), de::Unexpected::Unsigned(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<GoString, E> {
                lenient(v.to_string(), de::Unexpected::Float(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A Go `int` field: an integer. Both of Go's decoders refuse a string there (go-yaml: "cannot
/// unmarshal !!str into int", even `"1500"` quoted) and a number with a fraction.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GoInt(pub i64);

impl<'de> Deserialize<'de> for GoInt {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = GoInt;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<GoInt, E> {
                Ok(GoInt(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<GoInt, E> {
                i64::try_from(v)
                    .map(GoInt)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

// ---- incus-osd/api/seed/install.go ----

/// `seed.Install` (incus-osd/api/seed/install.go:4).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Install {
    pub version: Option<GoString>,
    pub force_install: Option<bool>,
    pub force_install_confirmation: Option<GoString>,
    pub force_reboot: Option<bool>,
    pub security: Option<InstallSecurity>,
    pub target: Option<InstallTarget>,
}

/// `seed.InstallSecurity` (incus-osd/api/seed/install.go:16).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallSecurity {
    pub missing_tpm: Option<bool>,
    pub missing_secure_boot: Option<bool>,
}

/// `seed.InstallTarget` (incus-osd/api/seed/install.go:22).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallTarget {
    pub bus: Option<GoString>,
    pub id: Option<GoString>,
    pub max_size: Option<GoString>,
    pub min_size: Option<GoString>,
    pub sort_order: Option<GoString>,
}

// ---- incus-osd/api/seed/applications.go ----

/// `seed.Applications` (incus-osd/api/seed/applications.go:4).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applications {
    pub version: Option<GoString>,
    pub applications: Option<Vec<Application>>,
}

/// `seed.Application` (incus-osd/api/seed/applications.go:11).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: Option<GoString>,
}

// ---- incus-osd/api/seed/incus.go ----

/// `seed.Incus` (incus-osd/api/seed/incus.go:8). `preseed` is Incus's `api.InitPreseed`
/// (lxc/incus `shared/api/init.go`), not mirrored: any value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incus {
    pub version: Option<GoString>,
    pub apply_defaults: Option<bool>,
    pub preseed: Option<IgnoredAny>,
}

// ---- incus-osd/api/seed/kernel.go ----

/// `seed.Kernel` (incus-osd/api/seed/kernel.go:8).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    pub console: Option<Vec<KernelConsole>>,
    pub version: Option<GoString>,
}

/// `api.SystemKernelConfigConsole` (incus-osd/api/system_kernel.go:19).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelConsole {
    pub device: Option<GoString>,
    pub baud_rate: Option<GoInt>,
}

// ---- incus-osd/api/seed/migration_manager.go, operations_center.go ----

/// `seed.MigrationManager` (incus-osd/api/seed/migration_manager.go:8).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationManager {
    pub version: Option<GoString>,
    pub trusted_client_certificates: Option<Vec<GoString>>,
    pub apply_defaults: Option<bool>,
    pub preseed: Option<MigrationManagerPreseed>,
}

/// `seed.MigrationManagerPreseed` (incus-osd/api/seed/migration_manager.go:21); its values are
/// FuturFusion/migration-manager's `shared/api` types, not mirrored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationManagerPreseed {
    pub system_certificate: Option<IgnoredAny>,
    pub system_network: Option<IgnoredAny>,
    pub system_security: Option<IgnoredAny>,
}

/// `seed.OperationsCenter` (incus-osd/api/seed/operations_center.go:8).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationsCenter {
    pub version: Option<GoString>,
    pub trusted_client_certificates: Option<Vec<GoString>>,
    pub apply_defaults: Option<bool>,
    pub preseed: Option<OperationsCenterPreseed>,
}

/// `seed.OperationsCenterPreseed` (incus-osd/api/seed/operations_center.go:21); its values are
/// FuturFusion/operations-center's `shared/api/system` types, not mirrored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationsCenterPreseed {
    pub system_certificate: Option<IgnoredAny>,
    pub system_network: Option<IgnoredAny>,
    pub system_security: Option<IgnoredAny>,
    pub system_updates: Option<IgnoredAny>,
    pub system_settings: Option<IgnoredAny>,
}

// ---- incus-osd/api/seed/network.go: api.SystemNetworkConfig inline, then version ----

/// `seed.Network` (incus-osd/api/seed/network.go:8): `api.SystemNetworkConfig`
/// (incus-osd/api/system_network.go:32) inline, and `version`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub confirmation_timeout: Option<GoString>,
    pub dns: Option<NetworkDns>,
    pub time: Option<NetworkTime>,
    pub proxy: Option<NetworkProxy>,
    pub interfaces: Option<Vec<NetworkInterface>>,
    pub bonds: Option<Vec<NetworkBond>>,
    pub vlans: Option<Vec<NetworkVlan>>,
    pub wireguard: Option<Vec<NetworkWireguard>>,
    pub version: Option<GoString>,
}

/// `api.SystemNetworkInterface` (incus-osd/api/system_network.go:48).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkInterface {
    pub addresses: Option<Vec<GoString>>,
    pub ethernet: Option<NetworkEthernet>,
    pub firewall_rules: Option<Vec<NetworkFirewallRule>>,
    pub hwaddr: Option<GoString>,
    pub lldp: Option<bool>,
    pub mtu: Option<GoInt>,
    pub name: Option<GoString>,
    pub required_for_online: Option<GoString>,
    pub roles: Option<Vec<GoString>>,
    pub routes: Option<Vec<NetworkRoute>>,
    pub strict_hwaddr: Option<bool>,
    pub vlan_tags: Option<Vec<GoInt>>,
}

/// `api.SystemNetworkBond` (incus-osd/api/system_network.go:64).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkBond {
    pub addresses: Option<Vec<GoString>>,
    pub ethernet: Option<NetworkEthernet>,
    pub firewall_rules: Option<Vec<NetworkFirewallRule>>,
    pub hwaddr: Option<GoString>,
    pub lldp: Option<bool>,
    pub members: Option<Vec<GoString>>,
    pub mode: Option<GoString>,
    pub mtu: Option<GoInt>,
    pub name: Option<GoString>,
    pub required_for_online: Option<GoString>,
    pub roles: Option<Vec<GoString>>,
    pub routes: Option<Vec<NetworkRoute>>,
    pub vlan_tags: Option<Vec<GoInt>>,
}

/// `api.SystemNetworkVLAN` (incus-osd/api/system_network.go:81).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkVlan {
    pub addresses: Option<Vec<GoString>>,
    pub firewall_rules: Option<Vec<NetworkFirewallRule>>,
    pub id: Option<GoInt>,
    pub mtu: Option<GoInt>,
    pub name: Option<GoString>,
    pub parent: Option<GoString>,
    pub required_for_online: Option<GoString>,
    pub roles: Option<Vec<GoString>>,
    pub routes: Option<Vec<NetworkRoute>>,
}

/// `api.SystemNetworkEthernet` (incus-osd/api/system_network.go:94).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkEthernet {
    pub disable_energy_efficient: Option<bool>,
    pub disable_gro: Option<bool>,
    pub disable_gso: Option<bool>,
    pub disable_ipv4_tso: Option<bool>,
    pub disable_ipv6_tso: Option<bool>,
    pub wakeonlan: Option<bool>,
    pub wakeonlan_modes: Option<Vec<GoString>>,
    pub wakeonlan_password: Option<GoString>,
}

/// `api.SystemNetworkFirewallRule` (incus-osd/api/system_network.go:106).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFirewallRule {
    pub action: Option<GoString>,
    pub source: Option<GoString>,
    pub protocol: Option<GoString>,
    pub port: Option<GoInt>,
}

/// `api.SystemNetworkWireguard` (incus-osd/api/system_network.go:114).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkWireguard {
    pub addresses: Option<Vec<GoString>>,
    pub firewall_rules: Option<Vec<NetworkFirewallRule>>,
    pub mtu: Option<GoInt>,
    pub name: Option<GoString>,
    pub peers: Option<Vec<NetworkWireguardPeer>>,
    pub port: Option<GoInt>,
    pub private_key: Option<GoString>,
    pub required_for_online: Option<GoString>,
    pub roles: Option<Vec<GoString>>,
    pub routes: Option<Vec<NetworkRoute>>,
}

/// `api.SystemNetworkWireguardPeer` (incus-osd/api/system_network.go:128).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkWireguardPeer {
    pub allowed_ips: Option<Vec<GoString>>,
    pub endpoint: Option<GoString>,
    pub persistent_keepalive: Option<GoInt>,
    pub preshared_key: Option<GoString>,
    pub public_key: Option<GoString>,
}

/// `api.SystemNetworkRoute` (incus-osd/api/system_network.go:137).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkRoute {
    pub to: Option<GoString>,
    pub via: Option<GoString>,
}

/// `api.SystemNetworkDNS` (incus-osd/api/system_network.go:143).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkDns {
    pub domain: Option<GoString>,
    pub hostname: Option<GoString>,
    pub nameservers: Option<Vec<GoString>>,
    pub search_domains: Option<Vec<GoString>>,
    pub dns_over_tls: Option<bool>,
}

/// `api.SystemNetworkTime` (incus-osd/api/system_network.go:152).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkTime {
    pub ntp_servers: Option<Vec<GoString>>,
    pub timezone: Option<GoString>,
}

/// `api.SystemNetworkProxy` (incus-osd/api/system_network.go:158).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkProxy {
    pub rules: Option<Vec<NetworkProxyRule>>,
    pub servers: Option<BTreeMap<String, NetworkProxyServer>>,
}

/// `api.SystemNetworkProxyServer` (incus-osd/api/system_network.go:164).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkProxyServer {
    pub auth: Option<GoString>,
    pub host: Option<GoString>,
    pub password: Option<GoString>,
    pub realm: Option<GoString>,
    pub username: Option<GoString>,
    pub use_tls: Option<bool>,
}

/// `api.SystemNetworkProxyRule` (incus-osd/api/system_network.go:174).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkProxyRule {
    pub destination: Option<GoString>,
    pub target: Option<GoString>,
}

// ---- incus-osd/api/seed/provider.go, security.go, update.go ----

/// `seed.Provider` (incus-osd/api/seed/provider.go:8): `api.SystemProviderConfig`
/// (incus-osd/api/system_provider.go:4) inline, and `version`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: Option<GoString>,
    pub config: Option<BTreeMap<String, GoString>>,
    pub version: Option<GoString>,
}

/// `seed.Security` (incus-osd/api/seed/security.go:8): `api.SystemSecurityConfig`
/// (incus-osd/api/system_security.go:28) inline, and `version`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    pub custom_ca_certs: Option<Vec<GoString>>,
    pub encryption_recovery_keys: Option<Vec<GoString>>,
    pub version: Option<GoString>,
}

/// `seed.Update` (incus-osd/api/seed/update.go:8): `api.SystemUpdateConfig`
/// (incus-osd/api/system_update.go:18) inline, and `version`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    pub auto_reboot: Option<bool>,
    pub channel: Option<GoString>,
    pub check_frequency: Option<GoString>,
    pub maintenance_windows: Option<Vec<MaintenanceWindow>>,
    pub version: Option<GoString>,
}

/// `api.SystemUpdateMaintenanceWindow` (incus-osd/api/system_update.go:34); the weekdays are
/// `api.Weekday`, a Go string (incus-osd/api/weekday.go:9).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindow {
    pub start_day_of_week: Option<GoString>,
    pub start_hour: Option<GoInt>,
    pub start_minute: Option<GoInt>,
    pub end_day_of_week: Option<GoString>,
    pub end_hour: Option<GoInt>,
    pub end_minute: Option<GoInt>,
}

// ---- incus-osd/api/seed/services.go ----

/// `seed.Services` (incus-osd/api/seed/services.go:8).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Services {
    pub iscsi: Option<ServiceIscsi>,
    pub lvm: Option<ServiceLvm>,
    pub multipath: Option<ServiceMultipath>,
    pub netbird: Option<ServiceNetbird>,
    pub nvme: Option<ServiceNvme>,
    pub ovn: Option<ServiceOvn>,
    pub tailscale: Option<ServiceTailscale>,
    pub usbip: Option<ServiceUsbip>,
    pub version: Option<GoString>,
}

/// `api.ServiceISCSIConfig` (incus-osd/api/service_iscsi.go:11).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceIscsi {
    pub enabled: Option<bool>,
    pub targets: Option<Vec<ServiceIscsiTarget>>,
}

/// `api.ServiceISCSITarget` (incus-osd/api/service_iscsi.go:4).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceIscsiTarget {
    pub target: Option<GoString>,
    pub address: Option<GoString>,
    pub port: Option<GoInt>,
}

/// `api.ServiceLVMConfig` (incus-osd/api/service_lvm.go:4).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceLvm {
    pub enabled: Option<bool>,
    pub system_id: Option<GoInt>,
}

/// `api.ServiceMultipathConfig` (incus-osd/api/service_multipath.go:36).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceMultipath {
    pub enabled: Option<bool>,
    pub wwns: Option<Vec<GoString>>,
}

/// `api.ServiceNetbirdConfig` (incus-osd/api/service_netbird.go:10).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetbird {
    pub enabled: Option<bool>,
    pub setup_key: Option<GoString>,
    pub management_url: Option<GoString>,
    pub admin_url: Option<GoString>,
    pub anonymize: Option<bool>,
    pub block_inbound: Option<bool>,
    pub block_lan_access: Option<bool>,
    pub disable_client_routes: Option<bool>,
    pub disable_server_routes: Option<bool>,
    pub disable_dns: Option<bool>,
    pub disable_firewall: Option<bool>,
    pub dns_resolver_address: Option<GoString>,
    pub external_ip_map: Option<Vec<GoString>>,
    pub extra_dns_labels: Option<Vec<GoString>>,
}

/// `api.ServiceNVMEConfig` (incus-osd/api/service_nvme.go:29).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNvme {
    pub enabled: Option<bool>,
    pub targets: Option<Vec<ServiceNvmeTarget>>,
}

/// `api.ServiceNVMETarget` (incus-osd/api/service_nvme.go:4).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNvmeTarget {
    pub transport: Option<GoString>,
    pub address: Option<GoString>,
    pub host_address: Option<GoString>,
    pub port: Option<GoInt>,
    pub nqn: Option<GoString>,
}

/// `api.ServiceOVNConfig` (incus-osd/api/service_ovn.go:4).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceOvn {
    pub enabled: Option<bool>,
    pub ic_chassis: Option<bool>,
    pub database: Option<GoString>,
    pub tls_client_certificate: Option<GoString>,
    pub tls_client_key: Option<GoString>,
    pub tls_ca_certificate: Option<GoString>,
    pub tunnel_address: Option<GoString>,
    pub tunnel_protocol: Option<GoString>,
}

/// `api.ServiceTailscaleConfig` (incus-osd/api/service_tailscale.go:14).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceTailscale {
    pub enabled: Option<bool>,
    pub login_server: Option<GoString>,
    pub auth_key: Option<GoString>,
    pub accept_routes: Option<bool>,
    pub accept_dns: Option<bool>,
    pub advertised_routes: Option<Vec<GoString>>,
    pub advertise_exit_node: Option<bool>,
    pub exit_node: Option<GoString>,
    pub exit_node_allow_lan_access: Option<bool>,
    pub serve_enabled: Option<bool>,
    pub serve_port: Option<GoInt>,
    pub serve_service: Option<GoString>,
}

/// `api.ServiceUSBIPConfig` (incus-osd/api/service_usbip.go:10).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceUsbip {
    pub enabled: Option<bool>,
    pub targets: Option<Vec<ServiceUsbipTarget>>,
}

/// `api.ServiceUSBIPTarget` (incus-osd/api/service_usbip.go:4).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceUsbipTarget {
    pub address: Option<GoString>,
    pub bus_id: Option<GoString>,
}

// ---- checking ----

/// Splits a seed file name into the seed it is and its extension, if incus-osd reads it.
pub fn seed_name(file_name: &str) -> Option<(&'static str, &'static str)> {
    let (stem, ext) = file_name.rsplit_once('.')?;
    let name = SEED_NAMES.iter().find(|n| **n == stem)?;
    let ext = SEED_EXTENSIONS.iter().find(|e| **e == ext)?;
    Some((name, ext))
}

/// Checks one seed file as incus-osd would decode it; `file_name` is its name in the tar
/// (`install.yaml`, …). The error is one sentence naming the file, the line and the field.
pub fn check_file(file_name: &str, bytes: &[u8]) -> Result<()> {
    let refused = |why: String| {
        Error::BadInput(format!(
            "the IncusOS seed file {file_name} is refused: {why} (incus-osd would fail on it and the node would not install)"
        ))
    };
    let Some((name, ext)) = seed_name(file_name) else {
        return Err(Error::BadInput(format!(
            "the seed file {file_name} is not one IncusOS reads (those are {}, as .yaml, .yml or .json)",
            SEED_NAMES.join(", ")
        )));
    };
    let text =
        std::str::from_utf8(bytes).map_err(|e| refused(format!("it is not UTF-8 text ({e})")))?;
    let yaml = ext != "json";
    // An empty document: io.EOF from the decoder. Install takes it as "install with the
    // defaults" (internal/seed/install.go:17-19); every other seed fails on it.
    if is_empty_document(text, yaml) {
        return if name == "install" {
            Ok(())
        } else {
            Err(refused(
                "it holds no document, and incus-osd fails on an empty seed (io.EOF) other than install"
                    .into(),
            ))
        };
    }
    // A document that is only `null` decodes into the zero value, no error (go-yaml leaves the
    // target untouched; encoding/json too).
    if is_null_document(text, yaml) {
        return Ok(());
    }
    let result = match name {
        "install" => decode::<Install>(text, yaml).map(|install| {
            // Both degraded modes at once: refused by CheckSystemRequirements
            // (internal/install/install.go:75-77) before anything is installed.
            let security = install.security.unwrap_or_default();
            if security.missing_tpm == Some(true) && security.missing_secure_boot == Some(true) {
                return Err(refused(
                    "security sets both missing_tpm and missing_secure_boot, which the installer refuses (\"install seed cannot enable both Secure Boot and TPM degraded security options\")"
                        .into(),
                ));
            }
            Ok(())
        }),
        "applications" => decode::<Applications>(text, yaml).map(|apps| {
            // internal/install/install.go:293-299: "at least one application must be defined in
            // the provided applications seed".
            if apps.applications.unwrap_or_default().is_empty() {
                return Err(refused(
                    "it names no application, and the installer refuses an applications seed without one".into(),
                ));
            }
            Ok(())
        }),
        "incus" => decode::<Incus>(text, yaml).map(|_| Ok(())),
        "kernel" => decode::<Kernel>(text, yaml).map(|_| Ok(())),
        "migration-manager" => decode::<MigrationManager>(text, yaml).map(|_| Ok(())),
        "network" => decode::<Network>(text, yaml).map(|_| Ok(())),
        "operations-center" => decode::<OperationsCenter>(text, yaml).map(|_| Ok(())),
        "provider" => decode::<Provider>(text, yaml).map(|_| Ok(())),
        "security" => decode::<Security>(text, yaml).map(|security| {
            // internal/seed/security.go:20-22, read at every first boot and install.
            if !security.encryption_recovery_keys.unwrap_or_default().is_empty() {
                return Err(refused(
                    "it sets encryption_recovery_keys, which incus-osd refuses in a seed (\"it is not possible to set encryption recovery key(s) via the security seed\")"
                        .into(),
                ));
            }
            Ok(())
        }),
        "services" => decode::<Services>(text, yaml).map(|_| Ok(())),
        "update" => decode::<Update>(text, yaml).map(|_| Ok(())),
        _ => unreachable!("every name in SEED_NAMES is decoded"),
    };
    result.map_err(|e| refused(e.sentence(text)))?
}

/// What a seed folder lacks that the operator should know: no `install` seed means IncusOS
/// boots the medium without installing (`internal/install/install.go:305-311`).
pub fn warnings(file_names: &[String]) -> Vec<String> {
    let has_install = file_names
        .iter()
        .any(|f| seed_name(f).is_some_and(|(name, _)| name == "install"));
    if has_install {
        Vec::new()
    } else {
        vec![
            "the seed has no install file (install.yaml, install.yml or install.json), so IncusOS will not install itself from this medium (incus-osd installs only when an install seed is present, even an empty one)"
                .into(),
        ]
    }
}

/// Whether the decoder would see no document at all: nothing but whitespace (JSON), or
/// nothing but whitespace and comments (YAML).
fn is_empty_document(text: &str, yaml: bool) -> bool {
    if yaml {
        text.lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#')
        })
    } else {
        text.trim().is_empty()
    }
}

/// Whether the one document is a null (`null`, and in YAML also `~`, `Null`, `NULL`).
fn is_null_document(text: &str, yaml: bool) -> bool {
    let body: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !(yaml && (l.starts_with('#') || *l == "---")))
        .collect();
    match body.as_slice() {
        [one] if yaml => matches!(*one, "~" | "null" | "Null" | "NULL"),
        [one] => *one == "null",
        _ => false,
    }
}

/// A decoding failure: where (1-based line, if known), which field, and what.
#[derive(Debug)]
struct DecodeError {
    line: Option<u64>,
    column: u64,
    message: String,
}

impl DecodeError {
    /// One clause: "line N, field `x`: what".
    fn sentence(&self, text: &str) -> String {
        let field = unknown_field(&self.message)
            .or_else(|| self.line.and_then(|l| key_at(text, l, self.column)));
        let mut out = String::new();
        if let Some(line) = self.line {
            out.push_str(&format!("line {line}"));
        }
        if let Some(field) = field {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&format!("field `{field}`"));
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

/// The field serde names in "unknown field `x`, expected …".
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_owned())
}

/// The mapping key whose value is at `line`:`column` (1-based; column 0 when unknown): the last
/// `key:` before the column on that line (`  key: value`, `- key: value`, `{"key": value}`).
fn key_at(text: &str, line: u64, column: u64) -> Option<String> {
    let l = text
        .lines()
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let before: String = match usize::try_from(column).ok()?.checked_sub(1) {
        Some(c) if c > 0 => l.chars().take(c).collect(),
        _ => l.to_owned(),
    };
    let before = if before.contains(':') {
        before
    } else {
        l.to_owned()
    };
    let (head, _) = before.rsplit_once(':')?;
    let head = head.trim_end();
    let key = if let Some(quoted) = head.strip_suffix('"') {
        quoted.rsplit_once('"')?.1
    } else if let Some(quoted) = head.strip_suffix('\'') {
        quoted.rsplit_once('\'')?.1
    } else {
        head.rsplit(|c: char| c.is_whitespace() || c == '{' || c == ',' || c == '-')
            .next()?
    };
    (!key.is_empty()).then(|| key.to_owned())
}

/// Decodes as incus-osd does: JSON one value with unknown fields refused (trailing bytes are
/// never read by Go's `json.Decoder.Decode`), YAML the first document with known fields only.
fn decode<T: for<'de> Deserialize<'de>>(
    text: &str,
    yaml: bool,
) -> std::result::Result<T, DecodeError> {
    if yaml {
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                YAML.with(|y| y.set(false));
            }
        }
        YAML.with(|y| y.set(true));
        let _reset = Reset;
        serde_saphyr::from_str::<T>(text).map_err(|e| {
            let location = e.location();
            let line = location.map(|l| l.line()).filter(|l| *l > 0);
            let column = location.map(|l| l.column()).unwrap_or(0);
            let message = e.to_string();
            let first = message.lines().next().unwrap_or(&message);
            let first = first.split(" --> ").next().unwrap_or(first);
            let first = first.trim_start_matches("error: ");
            // serde-saphyr may end its message with its own "at line L column C".
            let first = match first.find(" at line ") {
                Some(i) => &first[..i],
                None => first,
            };
            // … or start it with "line L column C: ".
            let first = match first.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
                Some((place, rest)) if place.contains(" column ") => rest,
                _ => first,
            };
            DecodeError {
                line,
                column,
                message: first.trim().to_owned(),
            }
        })
    } else {
        let mut de = serde_json::Deserializer::from_str(text);
        T::deserialize(&mut de).map_err(|e| {
            let message = e.to_string();
            let message = match message.find(" at line ") {
                Some(i) => message[..i].to_owned(),
                None => message,
            };
            DecodeError {
                line: (e.line() > 0).then_some(e.line() as u64),
                column: e.column() as u64,
                message,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upstream's own seed files: tests/fixtures/incus/seeds (README there names each source).
    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../tests/fixtures/incus/seeds"
    );

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn upstream_good_seeds_pass() {
        for (name, file) in [
            ("applications.json", "good/applications.json"),
            ("kernel.yaml", "good/kernel.yaml"),
            ("install.yaml", "good/install.yaml"),
            ("services.yaml", "good/services.yaml"),
        ] {
            check_file(name, &fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
    }

    #[test]
    fn upstream_bad_seeds_are_refused_naming_line_and_field() {
        // incus-osd/internal/seed/seed_test.go:46-53: "line 3: field disable_everything not
        // found in type seed.InstallSecurity".
        let err = check_file("install.yaml", &fixture("bad/install.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("install.yaml")
                && err.contains("line 3")
                && err.contains("`disable_everything`"),
            "{err}"
        );
        // seed_test.go:36-43: `json: unknown field "config"`.
        let err = check_file("network.json", &fixture("bad/network.json"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("network.json") && err.contains("line 2") && err.contains("`config`"),
            "{err}"
        );
    }

    #[test]
    fn a_misspelt_field_is_refused_with_its_line() {
        let text = "force_reboot: true\ntargte:\n  id: nvme\n";
        let err = check_file("install.yaml", text.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("install.yaml")
                && err.contains("line 2")
                && err.contains("field `targte`"),
            "{err}"
        );
        assert!(matches!(
            check_file("install.yaml", text.as_bytes()),
            Err(Error::BadInput(_))
        ));
        let json = "{\n  \"target\": {\"id\": \"nvme\"},\n  \"force_rebot\": true\n}\n";
        let err = check_file("install.json", json.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 3") && err.contains("field `force_rebot`"),
            "{err}"
        );
    }

    #[test]
    fn broken_yaml_and_json_are_refused_with_their_line() {
        let err = check_file(
            "network.yaml",
            b"dns:\n  nameservers: [1.1.1.1\n  domain: x\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("network.yaml") && err.contains("line "),
            "{err}"
        );
        let err = check_file("install.json", b"{\n  \"force_reboot\": true,\n}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("install.json") && err.contains("line 3"),
            "{err}"
        );
    }

    #[test]
    fn wrong_types_are_refused_naming_the_field() {
        // A struct given a string, a list given a scalar, a bool given a word, an int a word.
        for (file, text, line, field) in [
            (
                "install.yaml",
                "force_reboot: true\ntarget: nvme\n",
                2,
                "target",
            ),
            (
                "applications.yaml",
                "applications: incus\n",
                1,
                "applications",
            ),
            ("install.yaml", "force_install: maybe\n", 1, "force_install"),
            (
                "network.yaml",
                "interfaces:\n  - name: eth0\n    mtu: big\n",
                3,
                "mtu",
            ),
            // go-yaml refuses a quoted number for an int (!!str), and so does encoding/json.
            (
                "network.yaml",
                "interfaces:\n  - name: eth0\n    mtu: \"1500\"\n",
                3,
                "mtu",
            ),
            (
                "kernel.json",
                "{\"console\": [{\"baud_rate\": 96.5}]}",
                1,
                "baud_rate",
            ),
            (
                "install.json",
                "{\n  \"force_reboot\": \"yes\"\n}",
                2,
                "force_reboot",
            ),
            ("applications.json", "{\"version\": 1}", 1, "version"),
        ] {
            let err = check_file(file, text.as_bytes()).unwrap_err().to_string();
            assert!(
                err.contains(file)
                    && err.contains(&format!("line {line}"))
                    && err.contains(&format!("field `{field}`")),
                "{file}: {err}"
            );
        }
    }

    #[test]
    fn go_yaml_leniencies_are_kept() {
        // go-yaml gives a string field any scalar's text; null leaves a field zero.
        check_file(
            "applications.yaml",
            b"version: 1\napplications:\n  - name: incus\n",
        )
        .unwrap();
        check_file("install.yaml", b"target: ~\nforce_reboot: null\n").unwrap();
        check_file("network.yaml", b"~\n").unwrap();
        check_file("install.json", b"null").unwrap();
        // go-yaml reads YAML 1.1 booleans into a bool field.
        check_file("install.yaml", b"force_install: yes\nforce_reboot: off\n").unwrap();
        check_file("install.yaml", b"").unwrap();
        check_file("install.yaml", b"# nothing but a comment\n").unwrap();
        check_file("install.json", b"").unwrap();
        let err = check_file("incus.yaml", b"").unwrap_err().to_string();
        assert!(
            err.contains("incus.yaml") && err.contains("no document"),
            "{err}"
        );
        // Whatever Incus's preseed holds is Incus's to read.
        check_file(
            "incus.yaml",
            b"apply_defaults: true\npreseed:\n  anything: [1, 2]\n",
        )
        .unwrap();
    }

    #[test]
    fn what_incus_osd_refuses_after_decoding_is_refused() {
        let err = check_file(
            "install.yaml",
            b"security:\n  missing_tpm: true\n  missing_secure_boot: true\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("install.yaml") && err.contains("missing_secure_boot"),
            "{err}"
        );
        check_file("install.yaml", b"security:\n  missing_tpm: true\n").unwrap();
        let err = check_file("applications.yaml", b"version: \"1\"\napplications: []\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("applications.yaml") && err.contains("no application"),
            "{err}"
        );
        let err = check_file("security.json", br#"{"encryption_recovery_keys": ["k"]}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("security.json") && err.contains("encryption_recovery_keys"),
            "{err}"
        );
        check_file("security.yaml", b"custom_ca_certs: []\n").unwrap();
    }

    #[test]
    fn only_upstream_names_and_extensions() {
        assert_eq!(seed_name("install.yml"), Some(("install", "yml")));
        assert_eq!(
            seed_name("migration-manager.json"),
            Some(("migration-manager", "json"))
        );
        assert_eq!(seed_name("install.YAML"), None);
        assert_eq!(seed_name("instal.yaml"), None);
        assert!(check_file("instal.yaml", b"{}").is_err());
    }

    #[test]
    fn no_install_seed_is_warned() {
        assert!(warnings(&["install.json".into()]).is_empty());
        let w = warnings(&["incus.yaml".into(), "network.yml".into()]);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("will not install"), "{w:?}");
    }
}
