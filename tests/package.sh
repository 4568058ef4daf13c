#!/usr/bin/env bash
# The Debian package, built and installed for real: every installed file's owner and mode, the
# helper where pkexec may run it and nowhere a user can write, the polkit action, the desktop
# entry, and the installed command line running. Removes the package again. Needs root (CI runs
# as root; elsewhere it says it was skipped, and under CI=true a skip is a failure).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if ((EUID != 0)); then
  [[ ${CI:-} == true ]] && { echo "package: needs root, and CI must run it" >&2; exit 1; }
  echo "package: SKIPPED (installing a package needs root)"
  [[ -n ${LABFLASH_SKIPPED:-} ]] && echo "tests/package.sh: installing a package needs root" >>"$LABFLASH_SKIPPED"
  exit 0
fi
if dpkg-query -W -f='${Status}' labflash 2>/dev/null | grep -q 'ok installed'; then
  echo "package: labflash is already installed on this machine; not touching it" >&2
  exit 1
fi

deb=$("$repo/src-tauri/scripts/package.sh" | tail -1)
passed=0 failed=0
check() { # description, then a command that must succeed
  local what=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "package: FAILED: $what" >&2
  fi
}
owned() { # path, expected "owner mode"
  [[ $(stat -c '%U %a' "$1") == "$2" ]] || { stat -c '%n: %U %a' "$1" >&2; return 1; }
}

trap 'dpkg -r labflash >/dev/null 2>&1 || true' EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$deb" >/dev/null
check "the app is installed" owned /usr/bin/labflash-gui "root 755"
check "the command line is installed" owned /usr/bin/labflash "root 755"
check "the helper is root's" owned /usr/libexec/labflash/labflash "root 755"
check "the helper's folder is root's alone" owned /usr/libexec/labflash "root 755"
check "the polkit action is installed" owned /usr/share/polkit-1/actions/dev.labflash.flash.policy "root 644"
check "the polkit action names the installed helper" \
  grep -q '<annotate key="org.freedesktop.policykit.exec.path">/usr/libexec/labflash/labflash</annotate>' \
  /usr/share/polkit-1/actions/dev.labflash.flash.policy
check "the desktop entry starts the app" grep -q '^Exec=labflash-gui' /usr/share/applications/labflash.desktop
check "the desktop entry's icon is labflash's own" bash -c "icon=\$(sed -n 's/^Icon=//p' /usr/share/applications/labflash.desktop) && cmp -s /usr/share/icons/hicolor/128x128/apps/\$icon.png '$repo/icons/128x128.png'"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)
check "the installed labflash runs" bash -c "/usr/bin/labflash --version | grep -qx 'labflash $version'"
check "the installed helper runs" bash -c "/usr/libexec/labflash/labflash --version | grep -qx 'labflash $version'"
check "the package declares its dependencies" bash -c "dpkg-deb -f '$deb' Depends | grep -q pkexec"
dpkg -r labflash >/dev/null
check "removing it removes the helper" test ! -e /usr/libexec/labflash/labflash
echo "package: $passed passed, $failed failed"
((failed == 0))
