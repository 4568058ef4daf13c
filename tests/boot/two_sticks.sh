#!/usr/bin/env bash
# Boot test of the two-stick layout in real firmware: QEMU (TCG, no KVM needed) with OVMF and two
# USB sticks on an xHCI controller.
#
#   stick 1 (boot, bootindex 0): a GPT disk whose EFI system partition holds \EFI\BOOT\BOOTX64.EFI, a
#     Unified Kernel Image made here from Debian's kernel (linux-image-amd64), a tiny initramfs
#     (busybox-static, the kernel's own USB/SCSI/FAT modules, an /init script) and the command line
#     `console=ttyS0 panic=-1`, glued onto systemd's EFI stub (systemd-boot-efi) with objcopy as
#     systemd's documentation for v252 (Debian 12, no ukify) describes.
#   stick 2 (config): exactly what `labflash cidata` makes.
#   Both are written onto stick FILES by one `labflash flash BOOT --to FILE --config CIDATA
#   --config-to FILE --yes` (two sticks in one run), as an operator would
#   write real sticks.
#
# The kernel's /init loads the modules, waits for the USB disks, looks for a filesystem labelled
# CIDATA (busybox findfs), mounts it read-only and prints `CIDATA user-data sha256: <hex>` with the
# device and the USB serial number of the stick it was found on, then powers off. The test computes
# the user-data's SHA-256 itself and asserts that the serial console shows it, found on the stick
# whose USB serial is the config stick's. Negative control in the same run: with stick 1 alone, the
# console must say that no CIDATA was found (so the assertion can fail).
#
# Usage: tests/boot/two_sticks.sh [LABFLASH_BINARY]
#   LABFLASH_BINARY defaults to $LABFLASH, else $CARGO_TARGET_DIR/debug/labflash, else
#   /var/cache/labflash/target/debug/labflash, else target/debug/labflash.
#   BOOT_TEST_KEEP=1 keeps the work folder (it is printed); BOOT_TEST_QEMU_TIMEOUT (seconds, per boot,
#   default 120) bounds each boot.
# Exit status: 0 passed, 1 failed, 77 skipped (a needed tool or file is missing; named on stderr).
# Debian packages: qemu-system-x86 ovmf linux-image-amd64 busybox-static systemd-boot-efi binutils
#   gdisk dosfstools mtools cpio (src-tauri/scripts/setup.sh --tests installs them). Root is not needed.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
started=$SECONDS

fail() {
  echo "boot: two sticks: FAILED: $*" >&2
  exit 1
}
skip() {
  echo "boot: two sticks: SKIPPED: $*" >&2
  exit 77
}

# --- what the test needs ------------------------------------------------------------------------
labflash=${1:-${LABFLASH:-}}
if [[ -z $labflash ]]; then
  for c in ${CARGO_TARGET_DIR:+"$CARGO_TARGET_DIR/debug/labflash"} /var/cache/labflash/target/debug/labflash \
    "$repo/target/debug/labflash"; do
    [[ -x $c ]] && { labflash=$c; break; }
  done
fi
[[ -n $labflash && -x $labflash ]] || fail "no labflash binary (build it: cargo build -p labflash-cli, or pass its path)"

for t in qemu-system-x86_64 objcopy objdump sgdisk mkfs.vfat mmd mcopy cpio gzip sha256sum timeout; do
  command -v "$t" >/dev/null || skip "$t is not installed (setup.sh --tests)"
done
ovmf_code=/usr/share/OVMF/OVMF_CODE.fd
ovmf_vars=/usr/share/OVMF/OVMF_VARS.fd
[[ -r $ovmf_code && -r $ovmf_vars ]] || skip "no OVMF firmware at $ovmf_code (Debian package ovmf)"
stub=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
[[ -r $stub ]] || skip "no systemd EFI stub at $stub (Debian package systemd-boot-efi)"
busybox=/bin/busybox
[[ -x $busybox ]] || skip "no busybox (Debian package busybox-static)"
# A dynamically linked busybox (package busybox) cannot run in an initramfs without its libraries.
if LC_ALL=C objdump -p "$busybox" | grep -q 'NEEDED'; then
  skip "$busybox is dynamically linked: install busybox-static"
fi
# Debian's kernel: the newest /boot/vmlinuz-VERSION that is readable and has /lib/modules/VERSION.
kver=
for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V -r); do
  v=${k#/boot/vmlinuz-}
  if [[ -r $k && -r /lib/modules/$v/modules.dep ]]; then kver=$v; break; fi
done
[[ -n $kver ]] || skip "no readable /boot/vmlinuz-VERSION with /lib/modules/VERSION (Debian package linux-image-amd64)"
kernel=/boot/vmlinuz-$kver
moddir=/lib/modules/$kver

work=$(mktemp -d "${TMPDIR:-/tmp}/labflash-boot.XXXXXX")
qemu_pid=
cleanup() {
  if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then kill "$qemu_pid" 2>/dev/null || true; fi
  if [[ ${BOOT_TEST_KEEP:-} == 1 ]]; then
    echo "boot: kept $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
cd "$work"
echo "boot: kernel $kernel, labflash $labflash, work folder $work" >&2

# --- the initramfs ------------------------------------------------------------------------------
mkdir -p initramfs/{bin,dev,proc,sys,mnt,lib/modules}
cp "$busybox" initramfs/bin/busybox
for a in sh mount umount insmod sleep cat echo ls findfs readlink sha256sum poweroff sed grep \
  basename dirname head tr wc uname mkdir; do
  ln -s busybox "initramfs/bin/$a"
done

# Modules in load order (dependencies first), from the kernel's own modules.dep; a module built into
# the kernel (modules.builtin) needs no file. `name[ params]` per line.
declare -A loaded=()
order=()
modpath() { # NAME -> path in modules.dep (names may spell - or _), or empty
  local re=${1//[-_]/[-_]}
  grep -E "(^|/)${re}\.ko(\.xz|\.zst|\.gz)?:" "$moddir/modules.dep" | head -1 | cut -d: -f1 || true
}
addmod() { # NAME [optional]
  local p dep
  p=$(modpath "$1")
  if [[ -z $p ]]; then
    if grep -qE "(^|/)${1//[-_]/[-_]}\.ko$" "$moddir/modules.builtin" 2>/dev/null; then return 0; fi
    [[ ${2:-} == optional ]] && return 0
    fail "kernel $kver has no module $1"
  fi
  [[ -n ${loaded[$p]:-} ]] && return 0
  loaded[$p]=1
  for dep in $(grep -E "^${p//./\\.}:" "$moddir/modules.dep" | cut -d: -f2-); do
    addmod "$(basename "${dep%%.ko*}")"
  done
  order+=("$p")
}
for m in xhci-pci usb-storage sd_mod fat vfat nls_cp437 nls_ascii nls_utf8 nls_iso8859-1; do
  addmod "$m" $([[ $m == nls_* ]] && echo optional)
done
: >initramfs/modules.order
for p in "${order[@]}"; do
  f=$(basename "$p")
  case $f in
    *.ko) cp "$moddir/$p" "initramfs/lib/modules/$f" ;;
    *.ko.xz) xz -dc "$moddir/$p" >"initramfs/lib/modules/${f%.xz}"; f=${f%.xz} ;;
    *.ko.zst) zstd -qdc "$moddir/$p" >"initramfs/lib/modules/${f%.zst}"; f=${f%.zst} ;;
    *.ko.gz) gzip -dc "$moddir/$p" >"initramfs/lib/modules/${f%.gz}"; f=${f%.gz} ;;
  esac
  # usb-storage waits 1 s before scanning a new device by default: no need in a VM.
  [[ $f == usb-storage.ko ]] && f="$f delay_use=0"
  echo "$f" >>initramfs/modules.order
done

cat >initramfs/init <<'EOF'
#!/bin/sh
# labflash boot test: find the CIDATA volume, print its user-data digest and where it was, power off.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo "labflash-boot: $*"; }
say "init on kernel $(uname -r), cmdline: $(cat /proc/cmdline)"
while read -r mod params; do
  insmod "/lib/modules/$mod" $params || say "insmod $mod failed"
done </modules.order

# USB serial number of a block device (disk or partition): walk up its sysfs device path to the
# USB device, which has idVendor and serial.
usb_serial() {
  d=$1
  [ -e "/sys/class/block/$d/partition" ] && d=$(basename "$(dirname "$(readlink -f "/sys/class/block/$d")")")
  p=$(readlink -f "/sys/class/block/$d/device")
  while [ -n "$p" ] && [ "$p" != / ] && [ "$p" != /sys ]; do
    if [ -r "$p/idVendor" ] && [ -r "$p/serial" ]; then cat "$p/serial"; return; fi
    p=$(dirname "$p")
  done
  echo "(none)"
}
disks() { ls /sys/block | grep '^sd' | tr '\n' ' '; }

# Wait for the USB disks: stop when CIDATA shows up, or when there are as many SCSI disks as USB
# mass-storage interfaces (class 08), at least one, and /proc/partitions has not changed for 2 s;
# give up after 40 s in all.
found=
last=
same=0
i=0
while [ $i -lt 400 ]; do
  found=$(findfs LABEL=CIDATA 2>/dev/null || findfs LABEL=cidata 2>/dev/null)
  [ -n "$found" ] && break
  now=$(cat /proc/partitions)
  if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; last=$now; fi
  if [ $same -ge 20 ]; then
    nd=$(ls /sys/block | grep -c '^sd')
    ms=$(cat /sys/bus/usb/devices/*/bInterfaceClass 2>/dev/null | grep -c '^08$')
    [ "$nd" -gt 0 ] && [ "$nd" -ge "$ms" ] && break
  fi
  sleep 0.1
  i=$((i + 1))
done
for d in $(disks); do
  say "disk $d: usb serial $(usb_serial "$d"), $(cat /sys/block/$d/size) sectors, partitions: $(ls /sys/block/$d | grep "^$d" | tr '\n' ' ')"
done
if [ -z "$found" ]; then
  say "no CIDATA volume found on any disk ($(disks))"
else
  dev=$(basename "$found")
  say "CIDATA volume found on $found (usb serial $(usb_serial "$dev"))"
  if mount -t vfat -o ro "$found" /mnt; then
    say "files on CIDATA: $(ls /mnt | tr '\n' ' ')"
    sum=$(sha256sum /mnt/user-data | sed 's/ .*//')
    echo "CIDATA user-data sha256: $sum (on $found, usb serial $(usb_serial "$dev"))"
    sed 's/^/labflash-boot: meta-data: /' /mnt/meta-data
    umount /mnt
  else
    say "mounting $found read-only failed"
  fi
fi
say "done, powering off"
poweroff -f
EOF
chmod 755 initramfs/init
(cd initramfs && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 >initramfs.cpio.gz

# --- the Unified Kernel Image (systemd v252's documented objcopy recipe) ---------------------------
printf 'console=ttyS0 panic=-1' >cmdline.txt
printf 'ID=labflash-boot-test\nPRETTY_NAME="labflash boot test"\n' >os-release
# Place the added sections after the stub's last one, each aligned to 1 MiB, so none overlaps.
next=0
while read -r size vma; do
  ((0x$vma + 0x$size > next)) && next=$((0x$vma + 0x$size))
done < <(LC_ALL=C objdump -h "$stub" | awk 'NF == 7 && $1 ~ /^[0-9]+$/ { print $3, $4 }')
((next > 0)) || fail "cannot read the sections of $stub"
align() { echo $(((($1) + 0xfffff) / 0x100000 * 0x100000)); }
args=()
for s in osrel:os-release cmdline:cmdline.txt linux:"$kernel" initrd:initramfs.cpio.gz; do
  name=${s%%:*} file=${s#*:}
  vma=$(align "$next")
  args+=(--add-section ".$name=$file" --change-section-vma ".$name=$(printf 0x%x "$vma")")
  next=$((vma + $(stat -c %s "$file")))
done
objcopy "${args[@]}" "$stub" BOOTX64.EFI
uki_size=$(stat -c %s BOOTX64.EFI)

# --- stick 1: a GPT disk with an EFI system partition holding the UKI -----------------------------
esp_mib=$((uki_size / 1048576 + 8))
truncate -s $(((esp_mib + 2) * 1048576)) boot.img
sgdisk -o -n "1:2048:+${esp_mib}M" -t 1:ef00 -c 1:"EFI system" boot.img >/dev/null 2>&1 ||
  fail "sgdisk could not partition boot.img"
sgdisk -p boot.img 2>/dev/null | grep -q "^ *1 *2048 " || fail "boot.img has no EFI system partition"
truncate -s $((esp_mib * 1048576)) esp.fat
mkfs.vfat -q -F 16 -n ESP esp.fat >/dev/null 2>&1 || mkfs.vfat -n ESP esp.fat >/dev/null
mmd -i esp.fat ::/EFI ::/EFI/BOOT
mcopy -i esp.fat BOOTX64.EFI ::/EFI/BOOT/BOOTX64.EFI
dd if=esp.fat of=boot.img bs=1M seek=1 conv=notrunc status=none
rm esp.fat

# --- stick 2: labflash's config image -----------------------------------------------------------
user_data=$repo/tests/fixtures/talos/configloader-controlplane.yaml
[[ -r $user_data ]] || fail "no fixture $user_data"
"$labflash" cidata -q --hostname node1 --user-data "$user_data" -o cidata.img >/dev/null ||
  fail "labflash cidata failed"
want=$(sha256sum "$user_data" | cut -d' ' -f1)

# --- both written onto stick files by one labflash flash (two sticks), as onto real sticks -------
truncate -s 64M boot-stick.img config-stick.img
"$labflash" flash -q boot.img --to boot-stick.img --config cidata.img --config-to config-stick.img \
  --yes --cache-dir "$work/cache" >/dev/null 2>flash.err ||
  fail "labflash flash boot.img --to boot-stick.img --config cidata.img --config-to config-stick.img failed: $(cat flash.err)"
prepared=$((SECONDS - started))
echo "boot: images and sticks ready in ${prepared}s (UKI $((uki_size / 1024)) KiB)" >&2

# --- the boots ----------------------------------------------------------------------------------
boot() { # LOG STICK...: one boot with the sticks attached; the serial console goes to LOG
  local log=$1
  shift
  cp "$ovmf_vars" vars.fd
  local sticks=() n=0 t0=$SECONDS rc=0
  for s in "$@"; do
    n=$((n + 1))
    local first=
    [[ $n == 1 ]] && first=,bootindex=0
    sticks+=(-drive "if=none,id=s$n,file=${s%%:*},format=raw"
      -device "usb-storage,bus=xhci.0,drive=s$n,serial=${s#*:}$first")
  done
  timeout "${BOOT_TEST_QEMU_TIMEOUT:-120}" qemu-system-x86_64 -machine q35 -accel tcg -m 512 \
    -drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf_code" \
    -drive "if=pflash,format=raw,unit=1,file=vars.fd" \
    -device qemu-xhci,id=xhci "${sticks[@]}" \
    -nic none -display none -monitor none -no-reboot -serial "file:$log" </dev/null &
  qemu_pid=$!
  wait "$qemu_pid" || rc=$?
  qemu_pid=
  echo "boot: $log: QEMU exited with $rc after $((SECONDS - t0))s" >&2
  [[ $rc == 124 ]] && { tail -n 30 "$log" >&2; fail "$log: the VM did not power off within ${BOOT_TEST_QEMU_TIMEOUT:-120}s"; }
  [[ $rc == 0 ]] || { tail -n 30 "$log" >&2; fail "$log: QEMU failed ($rc)"; }
  grep -a '^labflash-boot:\|^CIDATA' "$log" | sed "s/^/  [$log] /" >&2 || true
}

boot two-sticks.log boot-stick.img:LABFLASH-BOOT config-stick.img:LABFLASH-CONFIG
grep -aq 'labflash-boot: init on kernel' two-sticks.log || fail "two sticks: the UKI on stick 1 did not boot (two-sticks.log)"
grep -aq "^CIDATA user-data sha256: $want (on /dev/[a-z0-9]*, usb serial LABFLASH-CONFIG)" two-sticks.log ||
  fail "two sticks: the console does not show user-data sha256 $want read from the config stick (usb serial LABFLASH-CONFIG)"
grep -aq 'labflash-boot: meta-data: local-hostname: node1' two-sticks.log ||
  fail "two sticks: meta-data on the config stick does not name host node1"

boot one-stick.log boot-stick.img:LABFLASH-BOOT
grep -aq 'labflash-boot: init on kernel' one-stick.log || fail "negative control: the UKI on stick 1 did not boot (one-stick.log)"
grep -aq 'labflash-boot: no CIDATA volume found' one-stick.log ||
  fail "negative control: with stick 1 alone the console does not say that no CIDATA was found"
grep -aq '^CIDATA user-data sha256' one-stick.log && fail "negative control: CIDATA found with stick 1 alone"

echo "boot: two sticks: PASSED (user-data sha256 $want found on the config stick; none with the boot stick alone; $((SECONDS - started))s in all)"
