//! Which Talos platform an image is built for, and whether that platform reads the cidata config
//! labflash lays beside it. Decided here, once, for every front end.
//!
//! Only `nocloud` reads cidata. siderolabs/talos @ ad8823176e75,
//! `internal/app/machined/pkg/runtime/v1alpha1/platform/`:
//! - `nocloud/metadata.go:42` and `:184-234`: the volume labelled (filesystem or GPT partition)
//!   `cidata`/`CIDATA`, its `user-data`, `meta-data` and `network-config`;
//! - `metal/metal.go:49-77`: the metal platform reads a config only when `talos.config=` is on
//!   the kernel command line: a URL, or `metal-iso` for a volume labelled `metal-iso`
//!   (`:123-140`, the file `config.yaml`). It never looks for cidata;
//! - the other platforms read their clouds' metadata services; the two that read a volume read
//!   other labels: `openstack/metadata.go:25` (`config-2`), `opennebula/metadata.go:23`
//!   (`context`).
//!
//! The platform is read from the image's name, as the Image Factory and Talos's releases name
//! them: `<platform>-<arch>[-secureboot].<format>` (`metal-amd64.raw.xz`,
//! `nocloud-arm64-secureboot.raw.zst`), or `metal-<board>-arm64…` for older board images. An
//! image whose name says nothing (a labctl `talos-boot.img`, a renamed file) is flashed with a
//! statement that only a nocloud image reads the config: reading the platform out of the image's
//! own boot loader entries would mean parsing every boot layout Talos ever shipped (GRUB on an
//! XFS BOOT partition, systemd-boot and UKIs), and a name is what operators check.

use crate::error::{Error, Result};

/// The platform names Talos knows (`platform.go` `newPlatform` at the revision above), longest
/// first so that `digital-ocean-amd64` is not read as a platform `digital`.
const PLATFORMS: [&str; 21] = [
    "digital-ocean",
    "alibabacloud",
    "equinixMetal",
    "cloudstack",
    "opennebula",
    "container",
    "openstack",
    "exoscale",
    "scaleway",
    "nocloud",
    "upcloud",
    "akamai",
    "hcloud",
    "oracle",
    "packet",
    "vmware",
    "azure",
    "metal",
    "vultr",
    "aws",
    "gcp",
];

/// The platforms whose code reads a cidata volume.
pub const CIDATA_PLATFORMS: [&str; 1] = ["nocloud"];

/// The platform an image's URL or path names in its file name, if it names one.
pub fn platform_named_in(source: &str) -> Option<&'static str> {
    let name = file_name(source);
    let platform = PLATFORMS.iter().find(|p| {
        name.strip_prefix(**p)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some()
    })?;
    // An architecture must follow, as in every asset name; `metal-notes.raw` names nothing.
    let rest = &name[platform.len() + 1..];
    let has_arch = rest
        .split(['-', '.', '_'])
        .any(|part| matches!(part, "amd64" | "arm64"));
    has_arch.then_some(*platform)
}

/// Checks that the image named by `source` reads a cidata config laid beside it. A platform that
/// does not is refused (one sentence, naming nocloud as labctl does); a name that says no
/// platform gives the statement the plan shows.
pub fn check_cidata_reader(source: &str) -> Result<Option<String>> {
    match platform_named_in(source) {
        Some(p) if CIDATA_PLATFORMS.contains(&p) => Ok(None),
        Some(p) => Err(Error::BadInput(format!(
            "{} is a Talos {p} image, and the {p} platform never reads a cidata config (only nocloud does): the node would boot without it; use the nocloud image of the same version and schematic (labflash talos fetch --platform nocloud, the default)",
            file_name(source)
        ))),
        None => Ok(Some(format!(
            "{}: its name does not say its Talos platform; only a nocloud image reads the cidata config (a metal image boots without it)",
            file_name(source)
        ))),
    }
}

pub(crate) fn file_name(source: &str) -> &str {
    source
        .split(['?', '#'])
        .next()
        .unwrap_or(source)
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_are_read_from_asset_names() {
        let s = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
        for (source, platform) in [
            (
                format!("https://factory.talos.dev/image/{s}/v1.12.4/metal-amd64.raw.xz"),
                Some("metal"),
            ),
            (
                format!("https://factory.talos.dev/image/{s}/v1.12.4/nocloud-arm64.raw.zst?x=1"),
                Some("nocloud"),
            ),
            ("/tmp/metal-amd64-secureboot.iso".into(), Some("metal")),
            ("metal-amd64.raw".into(), Some("metal")),
            ("metal-rpi_generic-arm64.raw.xz".into(), Some("metal")),
            ("digital-ocean-amd64.raw.gz".into(), Some("digital-ocean")),
            ("openstack-amd64.raw.xz".into(), Some("openstack")),
            ("equinixMetal-amd64.raw.xz".into(), Some("equinixMetal")),
            (
                "/c/images/factory.talos.dev/image/x/v1.13.0/nocloud-amd64.raw".into(),
                Some("nocloud"),
            ),
            ("talos-boot.img".into(), None),
            ("metal.raw".into(), None),
            ("metal-notes.raw".into(), None),
            ("metalamd64.raw".into(), None),
            ("/srv/metal-amd64/boot.img".into(), None),
            ("nocloud.img".into(), None),
        ] {
            assert_eq!(platform_named_in(&source), platform, "{source}");
        }
    }

    #[test]
    fn only_nocloud_takes_a_cidata_config() {
        assert_eq!(check_cidata_reader("nocloud-amd64.raw.xz").unwrap(), None);
        for image in [
            "metal-amd64.raw",
            "https://f.example/image/x/v1.13.0/metal-amd64.raw.xz",
            "openstack-amd64.raw.xz",
            "aws-arm64.raw.xz",
        ] {
            let err = check_cidata_reader(image).unwrap_err();
            assert!(matches!(err, Error::BadInput(_)), "{image}");
            let err = err.to_string();
            assert!(
                err.contains("never reads a cidata config") && err.contains("nocloud"),
                "{err}"
            );
        }
        let said = check_cidata_reader("/w/.state/images/talos-boot.img")
            .unwrap()
            .unwrap();
        assert!(
            said.starts_with("talos-boot.img: its name does not say its Talos platform"),
            "{said}"
        );
    }
}
