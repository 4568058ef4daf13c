#!/usr/bin/env bash
# Rewrites ui/src/bindings.ts from the Rust types the window exchanges (ts-rs), then checks it as
# the suite does. The suite itself only compares (src-tauri/src/bindings_tests.rs): run this after
# changing one of those types, and commit the file.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
LABFLASH_BLESS=1 cargo test --locked --bin labflash-gui -- --ignored --exact bindings_tests::bless
cargo test --locked --bin labflash-gui -- --exact bindings_tests::the_window_s_bindings_are_the_rust_types
git -C "$repo" diff --stat -- ui/src/bindings.ts 2>/dev/null || true
