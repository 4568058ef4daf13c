fn main() {
    // Every app command gets a permission (allow-<command>), so the capability can grant exactly
    // these to the main window and nothing else.
    let commands = &[
        "app_info",
        "set_ca_cert",
        "set_incus_root",
        "cancel",
        "cancel_target",
        "list_drives",
        "watch_drives",
        "prepare",
        "plan_flash",
        "run_flash",
        "drop_plan",
        "set_records_dir",
        "load_lab",
        "plan_lab",
        "run_lab",
        "probe_source",
        "eject",
        "verify",
        "cache_info",
        "clear_cache",
        "build_cidata",
        "talos_versions",
        "talos_extensions",
        "talos_overlays",
    ];
    // The app package sits at the repository root (tauri-build reads tauri.conf.json there), but its
    // capabilities live with the rest of the app's sources.
    let attrs = tauri_build::Attributes::new()
        .capabilities_path_pattern("./src-tauri/capabilities/**/*")
        .app_manifest(tauri_build::AppManifest::new().commands(commands));
    // tauri-build watches its default capabilities folder only.
    println!("cargo:rerun-if-changed=src-tauri/capabilities");
    tauri_build::try_build(attrs).expect("tauri-build failed");
}
