#!/usr/bin/env bash
# Builds labflash's Windows installer, labflash-setup.exe, on Debian or Ubuntu and prints its path:
# the desktop app (labflash-gui.exe) and the command line (labflash.exe) for x86_64-pc-windows-gnu
# with MinGW, then the installer with makensis from src-tauri/packaging/windows/installer.nsi
# (Tauri's own NSIS step downloads its plugins from GitHub; this needs nothing from the network
# but the crates). Run it on a Windows machine: labflash-setup.exe, or labflash-setup.exe /S.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
"$repo/src-tauri/scripts/setup.sh" --tests >&2
export PATH=$HOME/.cargo/bin:$PATH
cd "$repo"
triple=x86_64-pc-windows-gnu
# A folder of its own: the Windows build shares nothing with the Linux one.
target=${LABFLASH_WINDOWS_TARGET_DIR:-${CARGO_TARGET_DIR:-$repo/target}-windows}
CARGO_TARGET_DIR=$target cargo build --release --locked --target "$triple" \
  -p labflash-gui -p labflash-cli >&2
release=$target/$triple/release
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# What ships: the programs without their symbol tables (a third of their size), and the WebView2
# loader the MinGW build of the app links against.
stage=$release/bundle/stage
rm -rf "$stage"
mkdir -p "$stage"
for exe in labflash-gui.exe labflash.exe; do
  x86_64-w64-mingw32-strip -o "$stage/$exe" "$release/$exe"
done
cp "$release/WebView2Loader.dll" "$stage/"
out=$release/bundle/labflash-setup.exe
makensis -V2 -DVERSION="$version" -DSTAGE="$stage" -DICON="$repo/icons/icon.ico" -DOUTFILE="$out" \
  src-tauri/packaging/windows/installer.nsi >&2
echo "$out"
