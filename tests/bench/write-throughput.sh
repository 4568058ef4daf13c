#!/usr/bin/env bash
# Measures labflash's writing and read-back against dd on a loop device (a measurement, not a
# test; root): one 1 GiB image (random, text-like and zero thirds).
#   write      labflash flash --no-verify        vs  dd oflag=direct bs=4M conv=fsync
#   read-back  labflash verify --sha256 --size   vs  dd iflag=direct bs=4M | sha256sum (and openssl)
#   both       labflash flash (write, then read back)
# Needs a release build: cargo build --release -p labflash-cli
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$repo/target}/release/labflash
work=$(mktemp -d /var/tmp/labflash-wbench.XXXXXX)
dev=
trap '[[ -n $dev ]] && losetup -d "$dev"; rm -rf "$work"' EXIT
cd "$work"

mib=1024
{
  head -c $((mib / 3 * 1048576)) /dev/urandom
  { yes 'machine: {type: controlplane, network: {hostname: cp-1}, install: {disk: /dev/sda}}' || true; } | head -c $((mib / 3 * 1048576))
  head -c $(((mib - 2 * (mib / 3)) * 1048576)) /dev/zero
} > image.raw
size=$(stat -c %s image.raw)
digest=$(openssl sha256 -r image.raw | cut -d' ' -f1)
truncate -s $((mib + 64))M disk.img
dev=$(losetup -f --show disk.img)

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
rate() { echo "scale=0; $size / $1 / 1000000" | bc; }
row() { printf '%-62s %8.2f %9s\n' "$1" "$2" "$(rate "$2")"; }

sync; echo 3 > /proc/sys/vm/drop_caches
dd_w=$(t dd if=image.raw of="$dev" oflag=direct bs=4M conv=fsync status=none)
dd_r=$(t bash -c "dd if=$dev iflag=direct bs=4M count=$((mib / 4)) status=none | sha256sum")
dd_ro=$(t bash -c "dd if=$dev iflag=direct bs=4M count=$((mib / 4)) status=none | openssl sha256")
lf_w=$(t "$bin" flash image.raw --to "$dev" --yes --no-verify --write-all -q --cache-dir "$work/c")
lf_r=$(t "$bin" verify "$dev" --sha256 "$digest" --size "$size" -q)
lf_wr=$(t "$bin" flash image.raw --to "$dev" --yes --write-all -q --cache-dir "$work/c")

printf '%-62s %8s %9s\n' "what (1 GiB image to a loop device, $(nproc) cores)" seconds MB/s
row "dd oflag=direct bs=4M conv=fsync" "$dd_w"
row "labflash flash --no-verify (hash source, write, fsync)" "$lf_w"
row "dd iflag=direct bs=4M | sha256sum" "$dd_r"
row "dd iflag=direct bs=4M | openssl sha256" "$dd_ro"
row "labflash verify --sha256 --size (O_DIRECT read, SHA-256)" "$lf_r"
row "labflash flash (hash source, write, read back, verify)" "$lf_wr"
