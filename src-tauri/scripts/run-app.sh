#!/usr/bin/env bash
# Sets up this machine (see setup.sh), builds labflash in release mode and starts the desktop app.
# The `labflash` command line is built beside it, in the same target folder.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
"$repo/src-tauri/scripts/setup.sh"
export PATH=$HOME/.cargo/bin:$PATH
cd "$repo"
cargo build --release --locked --workspace --bins
target=${CARGO_TARGET_DIR:-$repo/target}
echo "labflash: the command line is $target/release/labflash" >&2
exec "$target/release/labflash-gui" "$@"
