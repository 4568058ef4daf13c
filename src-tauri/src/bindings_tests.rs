//! ui/src/bindings.ts: the TypeScript declarations of every type the window sends or receives,
//! generated from the Rust types (ts-rs), so the window's types cannot drift from the app's.
//! The test fails when they differ. Rewriting the file is a separate command,
//! `src-tauri/scripts/bless-bindings.sh`, which runs the ignored `bless` below: no run of the
//! suite passes without comparing.

use labflash_core::fetch::digest::Sha256Digest;
use labflash_core::fetch::image_size::ImageSize;
use labflash_core::fetch::DigestSource;
use labflash_core::flash::lab::NodeFlashed;
use labflash_core::flash::rules::{Chosen, Unsuitable};
use labflash_core::flash::writer::TargetReport;
use labflash_core::flash::{Flashed, Summary};
use labflash_core::image_kind::ImageKind;
use labflash_core::io::device::Access;
use labflash_core::io::drives::{Bus, Drive, DriveEvent, Partition};
use labflash_core::io::eject::Ejected;
use labflash_core::io::identity::DriveIdentity;
use labflash_core::progress::{Progress, Stage};
use labflash_core::sources::cidata::Cidata;
use labflash_core::sources::talos_factory::{Extension, Overlay, Version};
use labflash_core::sources::PreparedView;
use labflash_core::verify::Verification;
use labflash_core::ErrorKind;
use ts_rs::{Config, TS};

use crate::commands::*;

fn declarations() -> String {
    // Sizes and offsets are JSON numbers (below 2^53), not bigint.
    let cfg = Config::new().with_large_int("number");
    let mut out = String::from(
        "// Generated from the app's Rust types by src-tauri/src/bindings_tests.rs: do not edit.\n\
         // `src-tauri/scripts/bless-bindings.sh` rewrites it.\n",
    );
    macro_rules! declare {
        ($($t:ty),* $(,)?) => {
            $(out.push_str(&format!("\nexport {}\n", <$t>::decl(&cfg)));)*
        };
    }
    declare!(
        Sha256Digest,
        Stage,
        Progress,
        ErrorKind,
        CommandError,
        DigestSource,
        AppInfo,
        Bus,
        Partition,
        DriveIdentity,
        Drive,
        Unsuitable,
        DriveRow,
        DriveEvent,
        Ejected,
        SourceSpec,
        Cidata,
        PreparedView<'static>,
        Chosen,
        ImageSpec,
        ConfigSpec,
        FlashSpec,
        ImageKind,
        Summary,
        PlanView,
        ImageSize,
        ProbeView,
        Access,
        TargetReport,
        Flashed,
        NodeFlashed,
        LabView,
        LabNodeView,
        LabSpec,
        LabRun,
        FlashRun,
        ExpectedSpec,
        Verification,
        CacheInfo,
        CidataSpec,
        Version,
        Extension,
        Overlay,
    );
    out
}

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ui/src/bindings.ts");

#[test]
fn the_window_s_bindings_are_the_rust_types() {
    let have = std::fs::read_to_string(PATH).unwrap_or_default();
    assert!(
        have == declarations(),
        "ui/src/bindings.ts differs from the Rust types; run src-tauri/scripts/bless-bindings.sh and commit it"
    );
}

/// Rewrites ui/src/bindings.ts. Not part of the suite: src-tauri/scripts/bless-bindings.sh runs
/// it (with `LABFLASH_BLESS=1`, so a run of every ignored test fails here instead of rewriting
/// the file and passing).
#[test]
#[ignore = "rewrites ui/src/bindings.ts: run src-tauri/scripts/bless-bindings.sh"]
fn bless() {
    assert_eq!(
        std::env::var("LABFLASH_BLESS").as_deref(),
        Ok("1"),
        "this rewrites ui/src/bindings.ts; src-tauri/scripts/bless-bindings.sh runs it"
    );
    std::fs::write(PATH, declarations()).unwrap();
}
