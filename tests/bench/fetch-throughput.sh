#!/usr/bin/env bash
# Measures labflash fetch against the shell tools on one 1 GiB image (a measurement, not a test):
#   download+hash   labflash fetch of the raw image   vs  curl URL | sha256sum
#   decompression   labflash fetch with the archive cached (decode+hash+write)  vs  xz -T0 -dc
# Serves the files with python3's http.server on 127.0.0.1. Needs a release build:
#   cargo build --release -p labflash-cli
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$repo/target}/release/labflash
work=$(mktemp -d /var/tmp/labflash-bench.XXXXXX)
trap '[[ -n ${server:-} ]] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"

mib=1024
echo "building a ${mib} MiB image (random, text-like and zero thirds) ..." >&2
{
  head -c $((mib / 3 * 1048576)) /dev/urandom
  { yes 'machine: {type: controlplane, network: {hostname: cp-1}, install: {disk: /dev/sda}}' || true; } | head -c $((mib / 3 * 1048576))
  head -c $(((mib - 2 * (mib / 3)) * 1048576)) /dev/zero
} > image.raw
xz -T0 -1 -k image.raw # threaded xz writes multiple blocks, as Image Factory does
(sha256sum image.raw | sed 's|  .*|  image.raw|' > image.raw.sha256)
(sha256sum image.raw.xz | sed 's|  .*|  image.raw.xz|' > image.raw.xz.sha256)
port=$((20000 + RANDOM % 20000))
python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1 &
server=$!
sleep 1
url=http://127.0.0.1:$port

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
rate() { echo "scale=0; $mib * 1048576 / $1 / 1000000" | bc; }

curl_t=$(t bash -c "curl -s $url/image.raw | sha256sum")
curl_ossl_t=$(t bash -c "curl -s $url/image.raw | openssl sha256")
curl_file_t=$(t bash -c "curl -s $url/image.raw > dl.raw && sync dl.raw")
lf_dl_t=$(t "$bin" fetch "$url/image.raw" --cache-dir "$work/c1" -q)
xz_t=$(t bash -c "xz -T0 -dc image.raw.xz > /dev/null")
xz_hash_t=$(t bash -c "xz -T0 -dc image.raw.xz | openssl sha256")
xz_file_t=$(t bash -c "xz -T0 -dc image.raw.xz > out.img && sync out.img")
"$bin" fetch "$url/image.raw.xz" --cache-dir "$work/c2" -q >/dev/null
rm -rf "$work/c2/images"
lf_dec_t=$(t "$bin" fetch "$url/image.raw.xz" --cache-dir "$work/c2" -q)

printf '%-58s %8s %9s\n' "what (1 GiB image, $(nproc) cores)" "seconds" "MB/s"
printf '%-58s %8.2f %9s\n' "curl URL | sha256sum" "$curl_t" "$(rate "$curl_t")"
printf '%-58s %8.2f %9s\n' "curl URL | openssl sha256" "$curl_ossl_t" "$(rate "$curl_ossl_t")"
printf '%-58s %8.2f %9s\n' "curl URL > file; sync" "$curl_file_t" "$(rate "$curl_file_t")"
printf '%-58s %8.2f %9s\n' "labflash fetch raw URL (download, hash, write, fsync)" "$lf_dl_t" "$(rate "$lf_dl_t")"
printf '%-58s %8.2f %9s\n' "xz -T0 -dc > /dev/null" "$xz_t" "$(rate "$xz_t")"
printf '%-58s %8.2f %9s\n' "xz -T0 -dc | openssl sha256" "$xz_hash_t" "$(rate "$xz_hash_t")"
printf '%-58s %8.2f %9s\n' "xz -T0 -dc > file; sync" "$xz_file_t" "$(rate "$xz_file_t")"
printf '%-58s %8.2f %9s\n' "labflash fetch, archive cached (rehash, decode, hash, write)" "$lf_dec_t" "$(rate "$lf_dec_t")"
