#!/usr/bin/env bash
# Installs everything labflash needs on a Debian or Ubuntu machine, then builds the web UI:
# system packages (apt), Rust (rustup, if cargo is missing), Node.js (if missing), the UI's npm
# packages. Safe to run again: it installs only what is missing. `--tests` adds what the test
# suite needs (Xvfb, WebKitWebDriver, FAT and GPT tools, the tools that make the image kinds
# labflash refuses or warns about: qemu-img, mksquashfs, xorriso, zip, systemd's UKI stub; QEMU,
# OVMF, Debian's kernel and busybox-static for the firmware boot test, tests/boot/two_sticks.sh;
# tauri-driver, cargo-nextest; for the Windows build and its tests, tests/windows.sh: MinGW,
# Rust's x86_64-pc-windows-gnu target, Wine and NSIS).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

packages=(
  build-essential pkg-config curl file ca-certificates
  libwebkit2gtk-4.1-dev libssl-dev libxdo-dev libayatana-appindicator3-dev librsvg2-dev
  xz-utils zstd liblzma-dev
)
if [[ ${1:-} == --tests ]]; then
  packages+=(xvfb xauth webkit2gtk-driver dosfstools mtools gdisk util-linux e2fsprogs
    udisks2 dbus polkitd pkexec udev python3 openssl
    qemu-utils squashfs-tools xorriso zip systemd-boot-efi
    qemu-system-x86 ovmf busybox-static cpio binutils
    gcc-mingw-w64-x86-64 wine wine64 nsis)
  # The boot test's kernel: Debian's, or Ubuntu's under its own name.
  if grep -qs '^ID=ubuntu' /etc/os-release; then packages+=(linux-image-generic); else packages+=(linux-image-amd64); fi
fi
command -v npm >/dev/null || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  echo "setup: installing ${missing[*]}" >&2
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Rust 1.89 or newer (distribution packages are often older): rustup's toolchain otherwise.
export PATH=$HOME/.cargo/bin:$PATH
rust_minor=$(cargo --version 2>/dev/null | sed -n 's/^cargo 1\.\([0-9]*\).*/\1/p')
if [[ -z $rust_minor || $rust_minor -lt 89 ]]; then
  if command -v rustup >/dev/null; then
    rustup update stable
  else
    curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  fi
fi
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
  if [[ ${1:-} == --tests ]]; then
    rustup target list --installed | grep -qx x86_64-pc-windows-gnu || rustup target add x86_64-pc-windows-gnu
  fi
fi

# The app's end-to-end tests drive the real window through tauri-driver (WebDriver).
if [[ ${1:-} == --tests ]] && ! command -v tauri-driver >/dev/null && [[ ! -x $HOME/.cargo/bin/tauri-driver ]]; then
  cargo install tauri-driver --locked --version '^2'
fi
# The tests run under cargo-nextest: each in its own process, with a time limit (.config/nextest.toml).
if [[ ${1:-} == --tests ]] && ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

cd "$repo/ui"
if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
