#!/usr/bin/env bash
# Builds labflash's Debian package with Tauri's bundler and prints its path: the desktop app
# (labflash-gui, with its .desktop file and icons), the command line (/usr/bin/labflash), the
# privileged helper (/usr/libexec/labflash/labflash, the only program pkexec runs for labflash)
# and its polkit action. Install it with: sudo apt install ./<the printed path>
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
"$repo/src-tauri/scripts/setup.sh" >&2
export PATH=$HOME/.cargo/bin:$PATH
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}
cargo build --release --locked --workspace --bins >&2
# The bundler copies the command line from here (tauri.conf.json, bundle.linux.deb.files).
install -D -m 0755 "$target/release/labflash" src-tauri/packaging/stage/labflash
ui/node_modules/.bin/tauri build --ci --bundles deb >&2
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
ls "$target"/release/bundle/deb/labflash_"${version}"_*.deb
