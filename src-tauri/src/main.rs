// labflash desktop app. The GUI proper arrives with the app issue; this window proves the WebKitGTK
// build and the bundled, remote-free front end from day one.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    tauri::Builder::default()
        .run(tauri::generate_context!())
        .expect("labflash-gui failed to start");
}
