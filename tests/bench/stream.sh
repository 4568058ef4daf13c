#!/usr/bin/env bash
# The streaming flash's benchmark (a measurement, not a test; root, loop devices). One command:
#   sudo tests/bench/stream.sh            (reuses the test images in $LABFLASH_BENCH_DIR; --fresh rebuilds)
# It builds a 1 GiB GPT test image (random, text-like and zero regions) and a 4 GiB sparse one,
# compresses them as multi-block (xz -T0) and single-block (xz -T1) xz with .sha256 sidecars,
# serves them on 127.0.0.1 at full speed and throttled to 25 MB/s, and prints side by side:
#   end to end   labflash flash URL (sidecar, cache, decode, write, read back) vs
#                curl | xz -T0 -dc | dd oflag=direct bs=4M conv=fsync, then dd iflag=direct | sha256sum;
#                and the same from a local .xz file (labflash hashes it first, then streams it)
#   stages       each engine stage alone (examples/stage.rs) vs its standalone tool
#   memory       labflash's peak RSS at 1 GiB and 4 GiB
#   targets      one target vs three
# End-to-end and target runs write loop devices backed by files in /dev/shm: like separate sticks,
# they share no disk, so three targets measure labflash, not one disk written three times. The
# write and read-back stages run on a loop device backed by a file on disk (a device whose writes
# cost I/O, as a stick's do) and on a tmpfs-backed one (CPU-bound). The write stage is the
# write phase of a real flash (read-back on), timed by examples/stage.rs up to its read-back.
# Every figure is the median of three runs, labflash's and its tool's taken in turn.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
((EUID == 0)) || { echo "stream.sh: run as root (loop devices)" >&2; exit 2; }
"$repo/src-tauri/scripts/setup.sh" --tests >&2
export PATH=$HOME/.cargo/bin:$PATH
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
(cd "$repo" && cargo build --release --locked -q -p labflash-cli --bin labflash &&
  cargo build --release --locked -q -p labflash-core --example stage)
bin=$CARGO_TARGET_DIR/release/labflash
stage=$CARGO_TARGET_DIR/release/examples/stage

data=${LABFLASH_BENCH_DIR:-/var/tmp/labflash-bench}
[[ ${1:-} == --fresh ]] && rm -rf "$data"
mkdir -p "$data/www"
shm=$(mktemp -d /dev/shm/labflash-bench.XXXXXX)
pids=() devs=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for d in "${devs[@]}"; do losetup -d "$d" 2>/dev/null || true; done
  rm -rf "$shm"
}
trap cleanup EXIT
mib=$((1 << 20))

# --- Test images (built once) -------------------------------------------------------------
# seq is cut off by head (SIGPIPE): that is the plan, not a failure.
text() { seq -f "node-%g.lab.example: {role: worker, cpu: 4, memory: 16Gi, install: /dev/sda}" 1 100000000 || true; }
gpt() { sgdisk -q -o -n 1:2048:+256M -t 1:ef00 -c 1:EFI -n 2:0:0 -t 2:8300 -c 2:ROOT "$1" >/dev/null; }
if [[ ! -s $data/www/multi.raw.xz ]]; then
  echo "bench: building the 1 GiB test image and its archives (a few minutes, once)" >&2
  {
    head -c $((128 * mib)) /dev/urandom
    text | head -c $((512 * mib))
    head -c $((384 * mib)) /dev/zero
  } >"$data/image.raw"
  gpt "$data/image.raw"
  xz -T0 -6 -c "$data/image.raw" >"$data/www/multi.raw.xz"
  xz -T1 -6 -c "$data/image.raw" >"$data/www/single.raw.xz"
  # 4 GiB, sparse: a random first 64 MiB, text, then holes.
  truncate -s 4G "$data/big.raw"
  head -c $((64 * mib)) /dev/urandom | dd of="$data/big.raw" conv=notrunc status=none
  text | head -c $((64 * mib)) | dd of="$data/big.raw" bs=1M seek=64 conv=notrunc status=none
  gpt "$data/big.raw"
  xz -T0 -6 -c "$data/big.raw" >"$data/www/big.raw.xz"
  for f in multi single big; do
    (cd "$data/www" && sha256sum "$f.raw.xz" >"$f.raw.xz.sha256")
  done
fi
size=$(stat -c %s "$data/image.raw")
digest=$(openssl sha256 -r "$data/image.raw" | cut -d' ' -f1)
big_size=$(stat -c %s "$data/big.raw")

# --- Servers and targets --------------------------------------------------------------------
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
fast=$(port) slow=$(port)
python3 "$repo/tests/bench/serve.py" "$data/www" "$fast" & pids+=($!)
python3 "$repo/tests/bench/serve.py" "$data/www" "$slow" 25000000 & pids+=($!)
for p in $fast $slow; do
  until curl -sf -o /dev/null "http://127.0.0.1:$p/multi.raw.xz.sha256"; do sleep 0.1; done
done
loop() { truncate -s "$1" "$shm/$2" && devs+=("$(losetup -f --show "$shm/$2")"); }
loop $((size + 64 * mib)) t1
loop $((size + 64 * mib)) t2
loop $((size + 64 * mib)) t3
loop $((big_size + 64 * mib)) t4
truncate -s $((size + 64 * mib)) "$data/disk.img"
devs+=("$(losetup -f --show "$data/disk.img")")
t1=${devs[0]} t2=${devs[1]} t3=${devs[2]} t4=${devs[3]} disk=${devs[4]}

# --- Measuring ------------------------------------------------------------------------------
# Seconds a command takes; its output is dropped. The archives are kept in the page cache so
# the server serves every contender alike.
warm() { sync; cat "$data/www/"*.raw.xz "$data/image.raw" >/dev/null; }
once() {
  local s e
  warm
  s=$(date +%s.%N)
  "$@" >/dev/null
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }'
}
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
# labflash and its tool, each a command line in a string, three runs each taken in turn (A B A B
# A B) so both meet the same moments of a VM whose speed drifts; prints both medians. A command
# starting with "said:" prints its own seconds first (a phase of a longer run). Its output is
# left unquoted where used: two words, the row's labflash and tool columns.
pair() {
  local a=() b=() i
  for i in 1 2 3; do a+=("$(run "$1")"); b+=("$(run "$2")"); done
  echo "$(median "${a[@]}") $(median "${b[@]}")"
}
run() {
  if [[ $1 == said:* ]]; then
    warm
    eval "${1#said:}" | cut -d' ' -f1
  else
    once eval "$1"
  fi
}
# Peak RSS (MiB) of a command.
rss() {
  warm
  python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)' "$@"
}
fresh_cache() { rm -rf "$shm/cache"; echo "$shm/cache"; }
# --write-all: each target holds the image from the run before, and writing it is what is
# measured here (sticks.sh measures leaving alone what a drive holds).
lf() { "$bin" flash "$1" --yes -q --write-all --cache-dir "$(fresh_cache)" "${@:2}"; }
shell_pipeline() {
  # iflag=fullblock: without it, dd passes on the pipe's short reads and O_DIRECT refuses them.
  curl -sf "$1" | xz -T0 -dc | dd of="$2" oflag=direct bs=4M iflag=fullblock conv=fsync status=none
  dd if="$2" iflag=direct bs=4M count=$((size / 4 / mib)) status=none | sha256sum
}
shell_file_pipeline() { # the same from a local archive
  xz -T0 -dc "$1" | dd of="$2" oflag=direct bs=4M iflag=fullblock conv=fsync status=none
  dd if="$2" iflag=direct bs=4M count=$((size / 4 / mib)) status=none | sha256sum
}
export -f shell_pipeline shell_file_pipeline
export size mib

results=()
row() { # what, labflash seconds, tool seconds, target ratio (labflash / tool must be <= it)
  local ratio ok
  ratio=$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", a / b }')
  ok=$(awk -v r="$ratio" -v t="$4" 'BEGIN { print (r <= t) ? "yes" : "NO" }')
  results+=("$(printf '%-58s %8s %8s %6s %7s %4s' "$1" "$2" "$3" "$ratio" "<=$4" "$ok")")
  echo "${results[-1]}" >&2
}
check() { # the labflash run must have produced the image: read it back independently
  local got
  got=$(dd if="$1" iflag=direct bs=4M count=$((size / 4 / mib)) status=none | openssl sha256 -r | cut -d' ' -f1)
  [[ $got == "$digest" ]] || { echo "bench: $1 does not hold the image after $2" >&2; exit 1; }
}

echo "bench: end to end" >&2
for link in fast slow; do
  p=${!link}
  for a in multi single; do
    url=http://127.0.0.1:$p/$a.raw.xz
    times=$(pair "lf $url --to $t1" "shell_pipeline $url $t2")
    check "$t1" "labflash $a $link"
    name="URL -> verified loop, $a-block xz, $([[ $link == fast ]] && echo "full speed" || echo "25 MB/s")"
    row "$name" $times 1.0
  done
done

file=$data/www/multi.raw.xz
times=$(pair "lf $file --to $t1" "shell_file_pipeline $file $t2")
check "$t1" "labflash from a local file"
row "local multi-block xz file -> verified loop" $times 1.0

echo "bench: stages" >&2
row "hash: SHA-256 of the 1 GiB image (vs openssl)" \
  $(pair "$stage hash $data/image.raw" "openssl sha256 $data/image.raw") 1.11
for a in multi single; do
  row "decode: $a-block xz (vs xz -T0 -dc)" \
    $(pair "$stage decode $data/www/$a.raw.xz" "xz -T0 -dc $data/www/$a.raw.xz") 1.11
done
for where in disk tmpfs; do
  if [[ $where == disk ]]; then dev=$disk; else dev=$t1; fi
  # The write phase of a real flash (wipe, writes, fsync), up to the start of its read-back.
  row "write: O_DIRECT 4 MiB + fsync, $where loop (vs dd)" \
    $(pair "said:$stage write $data/image.raw $dev $digest" \
      "dd if=$data/image.raw of=$dev oflag=direct bs=4M conv=fsync status=none") 1.11
  "$stage" write "$data/image.raw" "$dev" "$digest" >/dev/null
  check "$dev" "the write stage"
  row "read-back: O_DIRECT + SHA-256, $where loop (vs dd | sha256sum)" \
    $(pair "$stage readback $dev $size" \
      "dd if=$dev iflag=direct bs=4M count=$((size / 4 / mib)) status=none | sha256sum") 1.11
done

echo "bench: targets" >&2
# CPU-bound on 2 cores (each target adds a write and a read-back SHA-256) and the noisiest row:
# five runs each, one and three alternating, medians compared.
fast_url=http://127.0.0.1:$fast/multi.raw.xz
ones=() threes=()
for i in 1 2 3 4 5; do
  ones+=("$(once lf "$fast_url" --to "$t1")")
  threes+=("$(once lf "$fast_url" --to "$t1" --to "$t2" --to "$t3")")
done
for t in "$t1" "$t2" "$t3"; do check "$t" "three targets"; done
echo "bench: one target ${ones[*]}; three ${threes[*]}" >&2
row "three targets vs one (full speed, multi-block)" "$(median "${threes[@]}")" "$(median "${ones[@]}")" 1.3

echo "bench: memory" >&2
rss1=$(rss "$bin" flash "$fast_url" --yes -q --cache-dir "$(fresh_cache)" --to "$t1")
rss4=$(rss "$bin" flash "http://127.0.0.1:$fast/big.raw.xz" --yes -q --cache-dir "$(fresh_cache)" \
  --max-image-size $((8 << 30)) --to "$t4")
big_digest=$(openssl sha256 -r "$data/big.raw" | cut -d' ' -f1)
got=$(dd if="$t4" iflag=direct bs=4M count=$((big_size / 4 / mib)) status=none | openssl sha256 -r | cut -d' ' -f1)
[[ $got == "$big_digest" ]] || { echo "bench: the 4 GiB target does not hold its image" >&2; exit 1; }

model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem=$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
os=$(. /etc/os-release && echo "$PRETTY_NAME")
echo
echo "machine: $(nproc) cores ($model), $mem, $os, kernel $(uname -r)"
echo "archives: multi-block $(stat -c %s "$data/www/multi.raw.xz") bytes, single-block $(stat -c %s "$data/www/single.raw.xz") bytes, of a $size-byte image"
echo
printf '%-58s %8s %8s %6s %7s %4s\n' "what (seconds)" labflash tool ratio target met
printf '%s\n' "${results[@]}"
printf '%-58s %8s %8s %6s %7s %4s\n' "peak RSS, 1 GiB image (MiB)" "$rss1" "" "" "<=160" "$([[ $rss1 -le 160 ]] && echo yes || echo NO)"
printf '%-58s %8s %8s %6s %7s %4s\n' "peak RSS, 4 GiB sparse image (MiB)" "$rss4" "" "" "<=160" "$([[ $rss4 -le 160 ]] && echo yes || echo NO)"
echo "one target vs three, every run (s): one ${ones[*]}; three ${threes[*]}"
