//! Whether a Talos release reads a cidata partition on the very stick it boots from (the one-stick
//! layout: the image's partitions, then labflash's `cidata`). siderolabs/talos issue 12098 (open)
//! reports that since v1.10 it does not. Read in siderolabs/talos's code at each tag (nothing was
//! booted here; paths under internal/app/machined/pkg/runtime/v1alpha1/):
//!
//! - v1.10.0-alpha.2 (commit b1d410cb6) to v1.12.0-alpha.1 pin go-blockdevice v0.4.8 (go.mod).
//!   First boot runs `cleanupBootloader` before the config is loaded (v1alpha1_sequencer.go:100-110
//!   then :141-143 @v1.10.0) when the META tag says the image is dual-boot, which only amd64
//!   non-SecureBoot images of 1.10+ are (pkg/imager/out.go:325-333): it deletes the unused
//!   bootloader partitions (bootloader.go:119-133), leaving empty GPT slots.
//! - nocloud then finds cidata with go-blockdevice v0.4.8's `probe.GetDevWithFileSystemLabel`
//!   (platform/nocloud/metadata.go:187-189 @v1.10.0), which skips empty slots and numbers the
//!   partitions left 1..n (partition/gpt/gpt.go:137-151 @v0.4.8), so it opens the wrong
//!   /dev/sdXN: the config is never read. A second disk has no empty slots, which is why it works.
//! - v1.12.0-alpha.2 (commit ec3bd878f) looks volumes up by filesystem or GPT partition label
//!   with the real slot numbers (platform/internal/blockutils/blockutils.go:31-93), and reads it.
//! - arm64 and SecureBoot images are never dual-boot: no partition is deleted, cidata is read.
//!
//! So the one-stick flash is refused for amd64 non-SecureBoot images of those releases, and two
//! sticks (boot image on one, cidata on the other, `--config-to`) are offered instead.

use std::cmp::Ordering::Less;

use crate::sources::talos_build::release_named_in;
use crate::sources::talos_factory::{check_exact_version, compare_versions};

/// The releases (from, up to but not including) whose amd64 dual-boot images cannot read a cidata
/// partition on their own boot stick.
const BOOT_STICK_UNREAD: (&str, &str) = ("v1.10.0-alpha.2", "v1.12.0-alpha.2");

/// What the one-stick layout means for the image `source` names: `Err` with the refusal when its
/// name says a release and architecture that cannot read it, `Ok(Some(statement))` when its name
/// does not say enough to know, `Ok(None)` when it reads it.
pub fn check_one_stick(source: &str) -> Result<Option<String>, String> {
    // The asset name's own tokens (`nocloud-amd64-secureboot.raw.xz`), never a query's.
    let name = crate::sources::talos_platform::file_name(source);
    let tokens: Vec<&str> = name.split(['-', '.', '_']).collect();
    let arm = tokens.contains(&"arm64");
    let secureboot = tokens.contains(&"secureboot");
    let release = release_named_in(source)
        .map(|v| v.split('+').next().unwrap_or(v))
        .filter(|v| check_exact_version(v).is_ok());
    let Some(release) = release else {
        if arm || secureboot {
            return Ok(None);
        }
        return Ok(Some(
            "the image's name does not say its Talos release: Talos v1.10.0 to v1.11.x amd64 images do not read a cidata partition on the stick they boot from (siderolabs/talos issue 12098); if it is one of those, put the config on its own stick with --config-to".into(),
        ));
    };
    let affected = compare_versions(release, BOOT_STICK_UNREAD.0) != Less
        && compare_versions(release, BOOT_STICK_UNREAD.1) == Less;
    if !affected || arm || secureboot {
        return Ok(None);
    }
    Err(format!(
        "Talos {release} amd64 images do not read a cidata partition on the stick they boot from (siderolabs/talos issue 12098: the first boot deletes the unused boot partitions, and that release then opens the wrong partition): put the config on a stick of its own (two sticks; --config-to on the command line), or use Talos v1.12.0 or later"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(version: &str, asset: &str) -> String {
        format!("https://factory.talos.dev/image/3765/{version}/{asset}")
    }

    #[test]
    fn amd64_releases_from_1_10_alpha_2_to_1_12_alpha_1_are_refused() {
        for v in [
            "v1.10.0-alpha.2",
            "v1.10.0",
            "v1.10.6",
            "v1.11.0",
            "v1.11.6",
            "v1.12.0-alpha.1",
        ] {
            let refusal = check_one_stick(&url(v, "nocloud-amd64.raw.xz")).unwrap_err();
            assert!(
                refusal.contains("12098") && refusal.contains("--config-to"),
                "{v}"
            );
        }
        for v in [
            "v1.9.6",
            "v1.10.0-alpha.1",
            "v1.12.0-alpha.2",
            "v1.12.0",
            "v1.13.0",
        ] {
            assert_eq!(
                check_one_stick(&url(v, "nocloud-amd64.raw.xz")),
                Ok(None),
                "{v}"
            );
        }
    }

    #[test]
    fn arm64_and_secureboot_images_are_never_dual_boot() {
        for asset in ["nocloud-arm64.raw.xz", "nocloud-amd64-secureboot.raw.xz"] {
            assert_eq!(check_one_stick(&url("v1.11.2", asset)), Ok(None), "{asset}");
        }
    }

    #[test]
    fn a_query_or_fragment_says_nothing_of_the_image() {
        for suffix in ["?arch=arm64", "#-secureboot"] {
            let source = url("v1.11.0", "nocloud-amd64.raw.xz") + suffix;
            assert!(check_one_stick(&source).is_err(), "{source}");
        }
    }

    #[test]
    fn a_name_without_a_release_is_said_not_refused() {
        let said = check_one_stick("out/talos-boot.img").unwrap().unwrap();
        assert!(said.contains("12098"), "{said}");
        assert_eq!(check_one_stick("nocloud-arm64.raw.xz"), Ok(None));
    }
}
