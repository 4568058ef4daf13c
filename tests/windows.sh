#!/usr/bin/env bash
# labflash on Windows, under Wine: builds what ships (src-tauri/scripts/package-windows.sh: the
# app and the CLI for x86_64-pc-windows-gnu, release, and labflash-setup.exe) and the Linux
# labflash (debug, as the tests use it), then in a fresh Wine prefix: installs labflash-setup.exe
# silently and checks what it installed, and runs the installed labflash.exe: --version; verify of a file against its digest
# (exit 0) and against a wrong one (exit 1); fetch from a server on 127.0.0.1 (right digest, the
# cache, a wrong digest); cidata, whose image must be byte-identical to the Linux build's for the
# same inputs; flash to a file target with read-back; each --json the same object as the Linux
# build's; drives, where Wine's one disk must be a system disk that a flash refuses; then
# uninstalls. Prints "skipped: …" for what cannot run here (and adds it to $LABFLASH_SKIPPED,
# which tests/run lists), which never counts as passed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
target_dir=${CARGO_TARGET_DIR:-$repo/target}
windows_dir=${LABFLASH_WINDOWS_TARGET_DIR:-$target_dir-windows}
triple=x86_64-pc-windows-gnu
skipped() { # what cannot run here, and why
  echo "skipped: $*"
  [[ -z ${LABFLASH_SKIPPED:-} ]] || echo "tests/windows.sh: $*" >>"$LABFLASH_SKIPPED"
}

if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
  skipped "everything: the Rust target $triple is not installed (rustup target add $triple)"
  exit 0
fi
if ! command -v x86_64-w64-mingw32-gcc >/dev/null; then
  skipped "everything: no MinGW linker (apt-get install gcc-mingw-w64-x86-64)"
  exit 0
fi
started=$(date +%s)
setup=$(LABFLASH_WINDOWS_TARGET_DIR=$windows_dir src-tauri/scripts/package-windows.sh)
echo "windows: the app, the CLI and the installer built in $(($(date +%s) - started)) s"
cargo build --locked -p labflash-cli
release=$windows_dir/$triple/release
stage=$release/bundle/stage
linux=$target_dir/debug/labflash
for built in "$release/labflash.exe" "$release/labflash-gui.exe" "$stage"/*.exe "$setup"; do
  echo "windows: ${built#"$windows_dir"/}: $(stat -c %s "$built") bytes"
done

if ! command -v wine >/dev/null; then
  skipped "running it: Wine is not installed (apt-get install wine wine64): built, not run"
  exit 0
fi

work=$(mktemp -d /tmp/labflash-windows.XXXXXX)
# Wine keeps its server's socket folder in TMPDIR: here, so it goes with the rest.
export WINEPREFIX=$work/prefix WINEDEBUG=-all TMPDIR=$work
server=
cleanup() {
  [[ -z $server ]] || kill "$server" 2>/dev/null || true
  wineserver -k 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

failed=0
check() { # name, then a command that must succeed
  local name=$1
  shift
  if "$@"; then
    echo "ok: $name"
  else
    echo "FAILED: $name"
    failed=1
  fi
}
# Runs the .exe under Wine; its exit status is the program's.
win() { wine "$exe" "$@"; }
status_of() { # expected status, then the command
  local want=$1 got=0
  shift
  "$@" >/dev/null 2>&1 || got=$?
  [[ $got == "$want" ]] || { echo "  exit $got, expected $want" >&2; return 1; }
}

started=$(date +%s)
wineboot --init 2>/dev/null
echo "wine: prefix created in $(($(date +%s) - started)) s"
# Rust's standard library (1.78+) takes its randomness from bcryptprimitives.dll's ProcessPrng,
# which every Windows 10 and 11 has and Wine 8.0 does not: without it the .exe does not even
# start (exit 53, "bcryptprimitives.dll not found"). The prefix gets a stand-in built here that
# answers through bcrypt's BCryptGenRandom, which Wine has. It is never shipped.
if [[ ! -e $WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll ]]; then
  cat >bcryptprimitives.c <<'C'
#include <windows.h>
#include <bcrypt.h>
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    return BCryptGenRandom(NULL, data, (ULONG)len, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0;
}
C
  x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
    bcryptprimitives.c -lbcrypt
  echo "wine: this Wine has no bcryptprimitives.dll; the prefix got a ProcessPrng stand-in"
fi
# The installer, silently, for every user (Wine's user is an administrator): the app, the CLI, the
# Start-menu entry, the uninstaller and its entry in Apps; the CLI tests below run the installed
# labflash.exe.
programs="$WINEPREFIX/drive_c/Program Files/labflash"
start_menu="$WINEPREFIX/drive_c/ProgramData/Microsoft/Windows/Start Menu/Programs"
uninstall_key='HKLM\Software\Microsoft\Windows\CurrentVersion\Uninstall\labflash'
check "labflash-setup.exe /S exits 0" status_of 0 wine "$setup" /S
wineserver -w
check "it installs the app" cmp "$stage/labflash-gui.exe" "$programs/labflash-gui.exe"
check "it installs the WebView2 loader beside it" cmp "$stage/WebView2Loader.dll" "$programs/WebView2Loader.dll"
check "it installs the CLI" cmp "$stage/labflash.exe" "$programs/labflash.exe"
check "it adds a Start-menu entry" test -s "$start_menu/labflash.lnk"
check "it adds an uninstaller" test -s "$programs/uninstall.exe"
registered() { wine reg query "$uninstall_key" /v "$1" 2>/dev/null | tr -d '\r' | grep -q "$2"; }
check "Apps lists it with its version" registered DisplayVersion "$("$linux" --version | cut -d' ' -f2)"
check "Apps can remove it silently" registered QuietUninstallString 'uninstall.exe" /S'
# Wine has no WebView2 and no PowerShell: the installer's WebView2 step ends with its warning.
skipped "the installer's WebView2 step (download Microsoft's bootstrapper, check its signature, run it): Wine has neither WebView2 nor PowerShell, and this machine no internet"
skipped "labflash-gui.exe's window: WebView2 does not run under Wine"
exe=$programs/labflash.exe

started=$(date +%s)
version=$(win --version | tr -d '\r')
echo "wine: labflash.exe --version ran in $(($(date +%s) - started)) s"
check "--version says $version" test "$version" = "$("$linux" --version)"

head -c 3000000 /dev/urandom >image.raw
digest=$(sha256sum image.raw | cut -d' ' -f1)
wrong=$(printf '%064d' 0)
check "verify of a file against its digest exits 0" status_of 0 win verify image.raw --sha256 "$digest"
check "verify against a wrong digest exits 1" status_of 1 win verify image.raw --sha256 "$wrong"
win --json verify image.raw --sha256 "$digest" | tr -d '\r' >verify-windows.json
"$linux" --json verify image.raw --sha256 "$digest" >verify-linux.json
check "verify --json is the Linux build's" cmp -s verify-windows.json verify-linux.json

# fetch from a server of our own on 127.0.0.1: a digest that matches (then again, from the
# cache) and one that does not.
python3 -m http.server 0 --bind 127.0.0.1 >server.log 2>&1 &
server=$!
for _ in $(seq 50); do
  port=$(sed -n 's/.* port \([0-9]*\) .*/\1/p' server.log)
  [[ -n $port ]] && break
  sleep 0.1
done
url=http://127.0.0.1:$port/image.raw
check "fetch from 127.0.0.1 with the right digest exits 0" status_of 0 \
  win fetch "$url" --sha256 "$digest" --cache-dir cache-windows
check "fetch again, from the cache, exits 0" status_of 0 \
  win fetch "$url" --sha256 "$digest" --cache-dir cache-windows
check "fetch with a wrong digest exits 1" status_of 1 \
  win fetch "$url" --sha256 "$wrong" --cache-dir cache-wrong
# The JSON names cache paths: the same object once Windows' separators are Linux's.
win --json fetch "$url" --sha256 "$digest" --cache-dir cache-windows \
  | tr -d '\r' | sed 's/\\\\/\//g; s/cache-windows/cache-linux/g' >fetch-windows.json
"$linux" --json fetch "$url" --sha256 "$digest" --cache-dir cache-linux >fetch-linux.json
check "fetch --json is the Linux build's" cmp -s fetch-windows.json fetch-linux.json

# talos build (labctl's ImageBuild) against a stand-in Image Factory on 127.0.0.1: an Enterprise
# factory's asset and its .sha256 sidecar, the only requests a build with a schematic ID makes
# (as tests/config_cli.rs's build serves them). Its JSON names the artifacts by absolute path:
# Wine's Z: drive is /, and the two builds write into folders of their own.
schematic=376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba
asset=image/$schematic/v1.13.0/nocloud-amd64.raw.xz
mkdir -p "$(dirname "$asset")"
xz -T1 -3 -c image.raw >"$asset"
(cd "$(dirname "$asset")" && sha256sum nocloud-amd64.raw.xz >nocloud-amd64.raw.xz.sha256)
for side in windows linux; do
  mkdir -p "build-$side/configs"
  printf 'version: v1alpha1\nmachine:\n  type: controlplane\n' >"build-$side/configs/cp-1.yaml"
  printf 'name: cp-1\nsource:\n  factoryURL: http://127.0.0.1:%s\n  version: v1.13.0\n  schematicID: %s\n  platform: nocloud\n  arch: amd64\n  artifact: raw.xz\nconfig:\n  delivery: nocloud-cidata\n  userData:\n    path: configs/cp-1.yaml\n  metaData:\n    localHostname: cp-1\n    instanceID: cp-1\noutput:\n  dir: out\n  format: img\n' \
    "$port" "$schematic" >"build-$side/image.yaml"
done
(cd build-windows && win --json talos build image.yaml --cache-dir ../cache-windows \
  | tr -d '\r' | sed 's/\\\\/\//g; s/"Z:\//"\//g; s/build-windows/build-linux/g' >../build-windows.json)
(cd build-linux && "$linux" --json talos build image.yaml --cache-dir ../cache-linux >../build-linux.json)
check "talos build's boot image is the factory's image" cmp image.raw build-windows/out/talos-boot.img
check "talos build's config image is byte-identical to the Linux build's" \
  cmp build-windows/out/talos-cidata.img build-linux/out/talos-cidata.img
check "talos build --json is the Linux build's" cmp -s build-windows.json build-linux.json

# Ctrl-C during a download (a server that stalls after 1 MiB): the .exe stops, exits 3 and
# leaves in its cache what the Linux build leaves (no partial file).
cat >stall.py <<'PY'
import http.server, sys, time
class Stall(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(10 << 20))
        self.end_headers()
        self.wfile.write(b"x" * (1 << 20))
        self.wfile.flush()
        time.sleep(60)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stall)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
python3 stall.py >stall.port &
staller=$!
for _ in $(seq 50); do [[ -s stall.port ]] && break; sleep 0.1; done
interrupted() { # side, then the command; prints the exit status and the cache's files
  local side=$1 pid code=0
  shift
  "$@" fetch "http://127.0.0.1:$(cat stall.port)/disk.raw" --sha256 "$wrong" \
    --cache-dir "stalled-$side" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    find "stalled-$side" -name '*.part' 2>/dev/null | grep -q . && break
    sleep 0.1
  done
  sleep 0.5
  # Wine turns SIGINT into the console's Ctrl-C for the program it runs.
  pkill -INT -f "labflash(.exe)? fetch .*stalled-$side" || true
  wait "$pid" || code=$?
  echo "exit $code: $(cd "stalled-$side" && find . -type f | sed 's/[^/]*\.lock$/LOCK/' | sort | tr '\n' ' ')"
}
interrupted windows win >ctrl-c-windows.txt
interrupted linux "$linux" >ctrl-c-linux.txt
kill "$staller" 2>/dev/null || true
check "Ctrl-C stops a download with exit 3 ($(cat ctrl-c-windows.txt))" grep -q '^exit 3: ' ctrl-c-windows.txt
check "Ctrl-C leaves what the Linux build leaves" cmp -s ctrl-c-windows.txt ctrl-c-linux.txt

printf 'version: v1alpha1\nmachine:\n  type: controlplane\n' >user-data.yaml
printf 'version: 2\nethernets:\n  eth0:\n    dhcp4: true\n' >network.yaml
cidata() { # program, output
  "$1" --json cidata --user-data user-data.yaml --hostname cp-1 --network-config network.yaml \
    -o "$2"
}
cidata win cidata-windows.img | tr -d '\r' >cidata-windows.json
cidata "$linux" cidata-linux.img >cidata-linux.json
check "cidata's image is byte-identical to the Linux build's" cmp cidata-windows.img cidata-linux.img
# The JSON names the output file: the same object once that name is the same.
sed 's/cidata-windows.img/cidata-linux.img/' cidata-windows.json >cidata-windows-renamed.json
check "cidata --json is the Linux build's" cmp -s cidata-windows-renamed.json cidata-linux.json

win --json flash image.raw --to flashed-windows.img -y --cache-dir cache-windows 2>/dev/null \
  | tr -d '\r' >flash-windows.json
"$linux" --json flash image.raw --to flashed-linux.img -y --cache-dir cache-linux 2>/dev/null \
  >flash-linux.json
check "flash to a file target writes the image and reads it back" cmp image.raw flashed-windows.img
sed 's/flashed-windows.img/flashed-linux.img/' flash-windows.json >flash-windows-renamed.json
check "flash --json is the Linux build's" cmp -s flash-windows-renamed.json flash-linux.json

# Wine shows one disk, \\.\PhysicalDrive0, and answers no disk under C:, so labflash cannot tell
# which disk is Windows': every fixed disk must then be a system disk, never written.
win --json drives --all | tr -d '\r' >drives.json
if [[ $(tr -d ' \n' <drives.json) == "[]" ]]; then
  echo "skipped: this Wine shows no disk, so the system-disk refusal is not run"
else
  all_system() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(not all(x["system"] for x in d if not x["removable"]))' "$1"
  }
  check "drives --json lists Wine's disk as a system disk" all_system drives.json
  check "a system disk is refused even with --allow-fixed (exit 2)" status_of 2 \
    win flash image.raw --to '\\.\PhysicalDrive0' -y --allow-fixed --cache-dir cache-windows
fi

# The elevated helper (io/windows/api/privilege.rs): the engine's tests of it, built for Windows
# and run from the installed folder (labflash elevates only the labflash.exe under Program
# Files). It is started through ShellExecuteEx's "runas" (Wine starts it without a UAC prompt),
# takes the two pipes the test made, reads the request from one and answers on the other: a
# refusal of Wine's system disk, exit 2.
unit=$(CARGO_TARGET_DIR=$windows_dir cargo test --manifest-path "$repo/Cargo.toml" --locked --no-run \
  --target "$triple" -p labflash-core --lib --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("profile", {}).get("test") and m.get("executable"): print(m["executable"])')
helper_tests() {
  cp "$unit" "$programs/engine-tests.exe"
  wine "$programs/engine-tests.exe" io::windows::api::privilege --test-threads=1 --nocapture \
    2>&1 | tr -d '\r' >helper-tests.log || true
  rm -f "$programs/engine-tests.exe"
  local passed said
  passed=$(grep -c ' \.\.\. ok$' helper-tests.log)
  [[ $passed == 2 ]] || { cat helper-tests.log >&2; return 1; }
  # A test that could not run here says so, and counts as skipped.
  while read -r said; do skipped "${said#skipped: }"; done < <(grep '^skipped: ' helper-tests.log)
}
check "the helper, started elevated, answers through its pipes" helper_tests
skipped "the UAC prompt itself (accepted, declined): Wine starts an elevated program without one"

skipped "writing, locking the volumes of and ejecting a real removable disk: Wine has none (that logic is unit-tested against recorded IOCTL answers in io/windows/)"

# The uninstaller removes what the installer put there (it runs from a copy of itself: wait).
check "the uninstaller exits 0" status_of 0 wine "$programs/uninstall.exe" /S
wineserver -w
check "it removes the program folder" test ! -e "$programs"
check "it removes the Start-menu entry" test ! -e "$start_menu/labflash.lnk"
check "it removes its entry in Apps" bash -c "! wine reg query '$uninstall_key' >/dev/null 2>&1"
exit $failed
