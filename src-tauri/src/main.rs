//! labflash desktop app: a Tauri window over labflash-core. The command layer (commands.rs) only
//! translates; the UI (ui/) only presents.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod jobs;
mod settings;

#[cfg(test)]
#[path = "bindings_tests.rs"]
mod bindings_tests;

fn main() {
    // A WebKitGTK window must not run as root (it breaks on Wayland, and a web view with root's
    // rights is the wrong place for them). Drives are opened through UDisks2 or the helper.
    if labflash_core::io::privilege::is_root()
        && std::env::var_os("LABFLASH_GUI_ALLOW_ROOT").is_none()
    {
        eprintln!("labflash-gui: refusing to run as root; start it as yourself (drives are opened through UDisks2 or pkexec)");
        std::process::exit(2);
    }
    tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .setup(|app| {
            use tauri::Manager;
            // The platform's folder for this app's settings (XDG on Linux).
            let file = app.path().app_config_dir()?.join("settings.json");
            match commands::App::new(settings::Settings::load(file)) {
                Ok(state) => {
                    app.manage(state);
                    Ok(())
                }
                Err(e) => {
                    eprintln!("labflash-gui: {e}");
                    std::process::exit(3);
                }
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::set_ca_cert,
            commands::set_incus_root,
            commands::cancel,
            commands::cancel_target,
            commands::list_drives,
            commands::watch_drives,
            commands::prepare,
            commands::plan_flash,
            commands::run_flash,
            commands::set_records_dir,
            commands::load_lab,
            commands::plan_lab,
            commands::run_lab,
            commands::drop_plan,
            commands::probe_source,
            commands::eject,
            commands::verify,
            commands::cache_info,
            commands::clear_cache,
            commands::build_cidata,
            commands::talos_versions,
            commands::talos_extensions,
            commands::talos_overlays,
        ])
        .build(tauri::generate_context!())
        .expect("labflash-gui failed to start")
        .run(|app, event| {
            if let tauri::RunEvent::Exit = event {
                use tauri::Manager;
                if let Some(state) = app.try_state::<commands::App>() {
                    state.forget_labs();
                }
            }
        });
}
