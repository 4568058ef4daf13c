fn main() {
    // The app package sits at the repository root (tauri-build reads tauri.conf.json there), but its
    // capabilities live with the rest of the app's sources.
    let attrs =
        tauri_build::Attributes::new().capabilities_path_pattern("./src-tauri/capabilities/**/*");
    tauri_build::try_build(attrs).expect("tauri-build failed");
}
