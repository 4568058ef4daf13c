#!/usr/bin/env bash
# Stick speeds (a measurement, not a test; root). One command:
#   sudo tests/bench/sticks.sh [--write MB/s] [--read MB/s] [--size MiB] [--sticks N] [--runs N]
#                              [--rows floor,app,skipping,peers,first,lab]   (default: every row)
# Loop devices backed by /dev/shm are throttled like USB sticks (default 30 MB/s write, 90 MB/s
# read) through the blkio cgroup (v1 blkio.throttle.*_bps_device, or v2 io.max, whichever the
# machine has); every contender runs inside that cgroup. The throttle holds for O_DIRECT I/O
# (the dd pipeline's row runs at the floor); a peer writing through the page cache is throttled where
# the kernel charges its writeback to the cgroup (bmaptool --nobmap: 29.6 MB/s here, so it was).
# Rows, each against its target, medians of alternating runs (A B A B ...):
#   floor      one stick vs its floor (image/write rate + image/read rate); 8 sticks vs one;
#              peak RSS with 8 sticks
#   app        the app's flash (its commands, through the core plan, from its window under Xvfb:
#              tests/bench/app_flash.py) vs the CLI's (only this row builds the app)
#   skipping   re-flash onto a stick holding the image, one holding the previous version, one
#              of random data, 8 sticks half holding it: each vs a full flash (--write-all)
#   peers      caligula, bmaptool (with and without its block map), xz | dd then dd | sha256sum
#   first      seconds from the command to the first byte of the image on the drive, for a URL
#              served on 127.0.0.1 with its sidecar (the digest settled first), unthrottled
#   lab        a lab (issue 27): 8 sticks each with its own config (`flash --to A --config a.img
#              --to B --config b.img ...`: the image decoded once, every stick its boot image and
#              its own cidata partition) vs one stick with one config; peak RSS of both
# --rows runs only the rows named (skipping and floor share the one-stick run they compare with).
# The images: $LABFLASH_BENCH_DIR/sticks-<size> (built once; --fresh rebuilds): a GPT image of
# which a quarter holds data (random and text) and the rest is empty space, its multi-block xz
# archive and bmap, and its previous version (same layout, other data in its partitions), raw:
# it is only ever what a stick holds before the flash.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
write_mbs=30 read_mbs=90 size_mib=256 sticks=8 runs=3 fresh= rows=floor,app,skipping,peers,first,lab
while (($#)); do
  case $1 in
    --write) write_mbs=$2; shift 2 ;;
    --read) read_mbs=$2; shift 2 ;;
    --size) size_mib=$2; shift 2 ;;
    --sticks) sticks=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --fresh) fresh=1; shift ;;
    --rows) rows=$2; shift 2 ;;
    *) echo "sticks.sh: unknown argument $1 (see the top of this file)" >&2; exit 2 ;;
  esac
done
((EUID == 0)) || { echo "sticks.sh: run as root (loop devices, cgroups)" >&2; exit 2; }
want() { [[ ,$rows, == *,$1,* ]]; }
for r in ${rows//,/ }; do
  [[ $r == @(floor|app|skipping|peers|first|lab) ]] || { echo "sticks.sh: unknown row $r (floor, app, skipping, peers, first, lab)" >&2; exit 2; }
done
"$repo/src-tauri/scripts/setup.sh" --tests >&2
export PATH=$HOME/.cargo/bin:$PATH
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
(cd "$repo" && cargo build --release --locked -q -p labflash-cli --bin labflash)
if want app; then
  (cd "$repo/ui" && npm run build >/dev/null)
  (cd "$repo" && cargo build --release --locked -q --bin labflash-gui)
fi
bin=$CARGO_TARGET_DIR/release/labflash
gui=$CARGO_TARGET_DIR/release/labflash-gui

# The peers, installed when missing (bmaptool also makes the image's block map).
command -v bmaptool >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q bmap-tools >&2
if want peers; then
  command -v caligula >/dev/null || cargo install caligula --locked --version 0.5.0 >&2
fi

data=${LABFLASH_BENCH_DIR:-/var/tmp/labflash-bench}/sticks-$size_mib
[[ -n $fresh ]] && rm -rf "$data"
mkdir -p "$data/www"
shm=$(mktemp -d /dev/shm/labflash-sticks.XXXXXX)
cg=
pids=() devs=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for d in "${devs[@]}"; do losetup -d "$d" 2>/dev/null || true; done
  [[ -n $cg ]] && rmdir "$cg" 2>/dev/null
  rm -rf "$shm"
}
trap cleanup EXIT
mib=$((1 << 20))
size=$((size_mib * mib))

# --- Images (built once) ----------------------------------------------------------------------
# A quarter data: random (boot assets), then text (configs); the rest zeros. The previous version
# has the same layout and partitions, other random bytes and other text in them.
text() { seq -f "$1-%g.lab.example: {role: worker, cpu: 4, memory: 16Gi, install: /dev/sda}" 1 100000000 || true; }
build() { # file, text prefix
  rm -f "$1"
  truncate -s "$size" "$1"
  head -c $((size / 8)) /dev/urandom | dd of="$1" bs=1M seek=1 conv=notrunc status=none
  text "$2" | head -c $((size / 8)) | dd of="$1" bs=1M seek=$((1 + size_mib / 8)) conv=notrunc status=none
  # Not -q: sgdisk 1.0.9 (Debian 12) then leaves the file without a table, and says nothing.
  sgdisk -o -n 1:2048:+$((size_mib / 2))M -t 1:ef00 -c 1:EFI -n 2:0:0 -t 2:8300 -c 2:ROOT "$1" >/dev/null
  has_gpt "$1" || { echo "sticks: sgdisk left $1 without its partitions" >&2; exit 3; }
}
has_gpt() { [[ $(sgdisk -p "$1" 2>/dev/null) == *ROOT* ]]; }
# Images built before the table was really written (sgdisk -q) are built again.
if [[ ! -s $data/www/image.raw.xz.sha256 ]] || ! has_gpt "$data/image.raw"; then
  echo "sticks: building the test images (once)" >&2
  build "$data/image.raw" node
  build "$data/previous.raw" host
  xz -T0 -6 -k -c "$data/image.raw" >"$data/www/image.raw.xz"
  (cd "$data/www" && sha256sum image.raw.xz >image.raw.xz.sha256)
  bmaptool -q create -o "$data/image.bmap" "$data/image.raw"
  cp "$data/image.bmap" "$data/www/image.raw.bmap"
  head -c $((size + 64 * mib)) /dev/urandom >"$data/random.bin"
fi
archive=$data/www/image.raw.xz
archive_sha=$(cut -d' ' -f1 "$archive.sha256")
digest=$(openssl sha256 -r "$data/image.raw" | cut -d' ' -f1)
stick_size=$((size + 64 * mib))

# --- Sticks: loop devices throttled through a cgroup ------------------------------------------
for i in $(seq 0 "$sticks"); do
  truncate -s "$stick_size" "$shm/stick$i"
  devs+=("$(losetup -f --show "$shm/stick$i")")
done
throttled=("${devs[@]:0:sticks}") fast=${devs[$sticks]}
if [[ -w /sys/fs/cgroup/blkio/cgroup.procs ]]; then
  cg=/sys/fs/cgroup/blkio/labflash-sticks-$$
  mkdir "$cg"
  for d in "${throttled[@]}"; do
    n=$(lsblk -dno MAJ:MIN "$d" | tr -d ' ')
    echo "$n $((write_mbs * 1000000))" >"$cg/blkio.throttle.write_bps_device"
    echo "$n $((read_mbs * 1000000))" >"$cg/blkio.throttle.read_bps_device"
  done
  how="cgroup v1 blkio.throttle"
elif grep -qw io /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  grep -qw io /sys/fs/cgroup/cgroup.subtree_control || echo +io >/sys/fs/cgroup/cgroup.subtree_control
  cg=/sys/fs/cgroup/labflash-sticks-$$
  mkdir "$cg"
  for d in "${throttled[@]}"; do
    n=$(lsblk -dno MAJ:MIN "$d" | tr -d ' ')
    echo "$n rbps=$((read_mbs * 1000000)) wbps=$((write_mbs * 1000000))" >"$cg/io.max"
  done
  how="cgroup v2 io.max"
else
  echo "sticks.sh: neither the v1 blkio nor the v2 io cgroup controller is available" >&2
  exit 3
fi
# Runs a command inside the throttling cgroup.
in_cg() { sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "$@"; }

# Stick states, set outside the cgroup (at tmpfs speed) before each run.
holds_random() { dd if="$data/random.bin" of="$1" bs=4M oflag=direct status=none; }
holds() { holds_random "$1" && dd if="$2" of="$1" bs=4M oflag=direct conv=notrunc status=none; }
check() { # the run must have left the image on the stick: read it back independently
  local got
  got=$(dd if="$1" iflag=direct bs=1M count="$size_mib" status=none | openssl sha256 -r | cut -d' ' -f1)
  [[ $got == "$digest" ]] || { echo "sticks: $1 does not hold the image after $2" >&2; exit 1; }
}

# --- Measuring -------------------------------------------------------------------------------
warm() { sync; cat "$archive" "$data/image.raw" >/dev/null; }
seconds() { # runs its arguments (eval'd) in the cgroup; prints the wall time, or what a
  local s e # command starting with "said:" prints as its own seconds
  warm
  if [[ $1 == said:* ]]; then
    in_cg bash -c "${1#said:}"
    return
  fi
  s=$(date +%s.%N)
  in_cg bash -c "$1" >/dev/null
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }'
}
median() { printf '%s\n' "$@" | sort -n | sed -n "$((($# + 1) / 2))p"; }
# Two contenders, each "prepare" "command" "check", runs taken in turn; sets their medians
# ($a $b) and every time ($times_a $times_b).
pair() {
  local i ta=() tb=()
  for ((i = 0; i < runs; i++)); do
    eval "$1"; ta+=("$(seconds "$2")"); eval "$3"
    eval "$4"; tb+=("$(seconds "$5")"); eval "$6"
  done
  times_a="${ta[*]}" times_b="${tb[*]}"
  a=$(median "${ta[@]}") b=$(median "${tb[@]}")
}
# One contender alone ("prepare" "command" "check"); prints its median.
alone() {
  local a=() i
  for ((i = 0; i < runs; i++)); do
    eval "$1"; a+=("$(seconds "$2")"); eval "$3"
  done
  median "${a[@]}"
}
export bin archive archive_sha data size mib size_mib

results=()
row() { # what, seconds, against (seconds), target ratio, [note]
  local ratio ok
  ratio=$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", a / b }')
  ok=$(awk -v r="$ratio" -v t="$4" 'BEGIN { print (r <= t) ? "yes" : "NO" }')
  local target="<=$4"
  [[ $4 == - ]] && ok=n/a target=none
  results+=("$(printf '| %-62s | %7s | %7s | %5s | %6s | %-3s |' "$1" "$2" "$3" "$ratio" "$target" "$ok")")
  echo "${results[-1]}  ${5:-}" >&2
}

t1=${throttled[0]}
lf() { echo "$bin flash $archive --sha256 $archive_sha --yes -q --cache-dir $shm/cache-\$\$ $*"; }
all_sticks() { local d; for d in "$@"; do printf -- '--to %s ' "$d"; done; }
floor=$(awk -v s="$size" -v w="$write_mbs" -v r="$read_mbs" 'BEGIN { printf "%.2f", s / (w * 1e6) + s / (r * 1e6) }')

extras=() every=()
extra() { # what, value, target, met
  extras+=("$(printf '| %-62s | %7s | %7s | %5s | %6s | %-3s |' "$1" "$2" "" "" "$3" "$4")")
  echo "${extras[-1]}" >&2
}

if want floor || want skipping; then
  echo "sticks: one stick (random data on it) vs its floor, and vs the writer that skips nothing" >&2
  pair "holds_random $t1" "$(lf --to "$t1")" "check $t1 one" \
    "holds_random $t1" "$(lf --to "$t1" --write-all)" "check $t1 write-all"
  one=$a full=$b
  every+=("one stick $times_a" "full $times_b")
  row "one stick, local .xz, full write + read-back, vs the floor" "$full" "$floor" 1.03
  row "a stick of random data: skipping on vs off (--write-all)" "$one" "$full" 1.03
fi

if want floor; then
  echo "sticks: $sticks sticks at once vs one" >&2
  many=() many_rss=()
  for ((i = 0; i < runs; i++)); do
    for d in "${throttled[@]}"; do holds_random "$d"; done
    warm
    s=$(date +%s.%N)
    many_rss+=("$(in_cg python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)' \
      "$bin" flash "$archive" --sha256 "$archive_sha" --yes -q --cache-dir "$shm/cache-many" \
      $(all_sticks "${throttled[@]}") --write-all)")
    e=$(date +%s.%N)
    many+=("$(awk -v s="$s" -v e="$e" 'BEGIN { printf "%.2f", e - s }')")
    for d in "${throttled[@]}"; do check "$d" "$sticks sticks"; done
  done
  row "$sticks sticks at once vs one (full write + read-back)" "$(median "${many[@]}")" "$full" 1.10
  every+=("$sticks sticks ${many[*]}")
  rss=$(printf '%s\n' "${many_rss[@]}" | sort -n | tail -1)
  extra "peak RSS with $sticks sticks (MiB)" "$rss" "<=160" "$( ((rss <= 160)) && echo yes || echo NO)"
fi

if want app; then
  echo "sticks: the app's flash vs the CLI's" >&2
  pair "holds_random $t1" "said:python3 $repo/tests/bench/app_flash.py $gui $(command -v tauri-driver) $archive $archive_sha $t1" "check $t1 app" \
    "holds_random $t1" "$(lf --to "$t1")" "check $t1 cli"
  row "the app's flash (plan_flash + run_flash) vs the CLI's" "$a" "$b" 1.05
  every+=("app $times_a")
fi

if want skipping; then
  echo "sticks: skipping what the stick already holds" >&2
  same=$(alone "holds $t1 $data/image.raw" "$(lf --to "$t1")" "check $t1 same")
  row "re-flash onto a stick holding the image vs a full flash" "$same" "$full" 0.45 \
    "(every byte is still read back after the writes: floor 2 reads = $(awk -v w="$write_mbs" -v r="$read_mbs" 'BEGIN { printf "%.2f", 2 / r / (1 / w + 1 / r) }')x)"
  previous=$(alone "holds $t1 $data/previous.raw" "$(lf --to "$t1")" "check $t1 previous")
  row "onto a stick holding the previous version vs a full flash" "$previous" "$full" 0.75
  half=$((sticks / 2))
  prepare_half() {
    local i
    for ((i = 0; i < sticks; i++)); do
      if ((i < half)); then holds "${throttled[$i]}" "$data/image.raw"; else holds_random "${throttled[$i]}"; fi
    done
  }
  check_all() { local d; for d in "${throttled[@]}"; do check "$d" "$1"; done; }
  pair "prepare_half" "$(lf $(all_sticks "${throttled[@]}"))" "check_all half" \
    "prepare_half" "$(lf $(all_sticks "${throttled[@]}") --write-all)" "check_all write-all"
  row "$sticks sticks, $half holding the image, vs $sticks full flashes" "$a" "$b" 1.00
fi

if want peers; then
  echo "sticks: peers (each on the same throttled stick, in turn with labflash)" >&2
  peer() { # name, command, target, note, what proves the peer left the image ("check" or ":")
    pair "holds_random $t1" "$(lf --to "$t1")" "check $t1 labflash" \
      "holds_random $t1" "$2" "$5 $t1 peer"
    row "labflash vs $1" "$a" "$b" "$3" "$4"
  }
  peer "caligula 0.5.0 (archive hash, write, read-back)" \
    "caligula burn $archive -o $t1 -z xz -s sha256-$archive_sha --hash-of compressed --interactive never -f --root never 2>/dev/null" \
    1.03 "(labflash also wipes the first MiB first and writes it last)" check
  verify_share=$(awk -v w="$write_mbs" -v r="$read_mbs" 'BEGIN { printf "%.2f", 1.03 * (1 / w + 1 / r) * w }')
  peer "bmaptool 3.6 copy --nobmap (no read-back)" \
    "bmaptool -q copy --nobmap $archive $t1" "$verify_share" "(target: only the read-back's share more)" check
  peer "bmaptool 3.6 copy --bmap (the mapped quarter, no read-back)" \
    "bmaptool -q copy --bmap $data/image.bmap $archive $t1" - "(no target: leaves unmapped blocks as they were, reads nothing back)" :
  peer "xz -T0 -dc to dd oflag=direct, then dd iflag=direct to sha256sum" \
    "xz -T0 -dc $archive | dd of=$t1 oflag=direct bs=4M iflag=fullblock conv=fsync status=none && dd if=$t1 iflag=direct bs=1M count=$size_mib status=none | sha256sum" \
    1.03 "(labflash also wipes the first MiB first and writes it last)" check
fi

if want first; then
  echo "sticks: from the command to the image's first byte on the drive (URL, unthrottled)" >&2
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 "$repo/tests/bench/serve.py" "$data/www" "$port" 2>/dev/null & pids+=($!)
  until curl -sf -o /dev/null "http://127.0.0.1:$port/image.raw.xz.sha256"; do sleep 0.1; done
  firsts=()
  for ((i = 0; i < runs; i++)); do
    holds_random "$fast"
    firsts+=("$(python3 "$repo/tests/bench/first_byte.py" "$shm/stick$sticks" $mib \
      "$bin" flash "http://127.0.0.1:$port/image.raw.xz" --yes -q --cache-dir "$shm/cache-first-$i" --to "$fast")")
    check "$fast" "the first-byte run"
  done
  first=$(median "${firsts[@]}")
  extra "URL on 127.0.0.1: command to the image's first byte on the drive" "$first" "<=1" \
    "$(awk -v f="$first" 'BEGIN { print (f <= 1) ? "yes" : "NO" }')"
  every+=("first byte ${firsts[*]}")
fi

if want lab; then
  echo "sticks: a lab, $sticks sticks each with its own config, vs one stick with one config" >&2
  # Each node's config image: a real Talos worker config under the node's own hostname.
  configs=()
  for ((i = 1; i <= sticks; i++)); do
    "$bin" cidata -q --user-data "$repo/tests/fixtures/talos/configloader-worker.yaml" \
      --hostname "node-$i" -o "$shm/node-$i.img" >/dev/null
    configs+=("$shm/node-$i.img")
  done
  lab_pairs() { local i; for ((i = 0; i < $1; i++)); do printf -- '--to %s --config %s ' "${throttled[$i]}" "${configs[$i]}"; done; }
  # Runs labflash in the cgroup, its --json into a file; prints its seconds and peak RSS (MiB).
  timed() { # json file, command
    warm
    in_cg python3 -c 'import resource, subprocess, sys, time
start = time.monotonic()
with open(sys.argv[1], "w") as out:
    subprocess.run(sys.argv[2:], check=True, stdout=out)
print("%.2f %d" % (time.monotonic() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024))' "$@"
  }
  # Each stick read back independently: the boot image's body (all but its first and last MiB,
  # where the stick's new GPT goes and the image's backup GPT is blanked), its own config where
  # the run said its partition starts, the whole written stream's digest the run said, and a GPT
  # sgdisk finds sound.
  body=$(dd if="$data/image.raw" bs=1M skip=1 count=$((size_mib - 2)) status=none | openssl sha256 -r | cut -d' ' -f1)
  sha_of() { # device, offset, length: its bytes' SHA-256, read with O_DIRECT
    { dd if="$1" iflag=direct,skip_bytes skip="$2" bs=1M count=$((($3 + mib - 1) / mib)) status=none || true; } |
      head -c "$3" | openssl sha256 -r | cut -d' ' -f1
  }
  check_lab() { # json file, what
    local i dev off stick_sha cfg len sticks_said
    sticks_said=$(python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
for i, f in enumerate([n["flashed"] for n in j["nodes"]] if "nodes" in j else [j]):
    t = f["targets"][0]
    assert t["ok"], t
    print(i, t["path"], f["cidataOffset"], f["stickSHA256"])' "$1")
    while read -r i dev off stick_sha; do
      cfg=${configs[$i]} len=$(stat -c %s "${configs[$i]}")
      [[ $dev == "${throttled[$i]}" && $(sha_of "$dev" 0 $((off + len))) == "$stick_sha" &&
        $(sha_of "$dev" $mib $((size - 2 * mib))) == "$body" &&
        $(sha_of "$dev" "$off" "$len") == $(openssl sha256 -r "$cfg" | cut -d' ' -f1) &&
        $(sgdisk -v "$dev") == *"No problems found"* ]] ||
        { echo "sticks: $dev does not hold the image and ${cfg##*/} after $2" >&2; exit 1; }
    done <<<"$sticks_said"
  }
  lab_t=() lab_rss=() lone_t=() lone_rss=()
  for ((r = 0; r < runs; r++)); do
    for d in "${throttled[@]}"; do holds_random "$d"; done
    took=$(timed "$shm/lab.json" "$bin" flash "$archive" --sha256 "$archive_sha" --yes -q --json \
      --cache-dir "$shm/cache-lab" $(lab_pairs "$sticks"))
    read -r t m <<<"$took"
    lab_t+=("$t") lab_rss+=("$m")
    check_lab "$shm/lab.json" "the lab"
    rm -rf "$shm/cache-lab"
    holds_random "$t1"
    took=$(timed "$shm/lone.json" "$bin" flash "$archive" --sha256 "$archive_sha" --yes -q --json \
      --cache-dir "$shm/cache-lab" $(lab_pairs 1))
    read -r t m <<<"$took"
    lone_t+=("$t") lone_rss+=("$m")
    check_lab "$shm/lone.json" "one stick with its config"
    rm -rf "$shm/cache-lab"
  done
  row "lab: $sticks sticks, $sticks configs vs one stick, one config" "$(median "${lab_t[@]}")" "$(median "${lone_t[@]}")" 1.10
  lab_max=$(printf '%s\n' "${lab_rss[@]}" | sort -n | tail -1)
  extra "peak RSS of the lab, $sticks sticks (MiB)" "$lab_max" "<=160" "$( ((lab_max <= 160)) && echo yes || echo NO)"
  every+=("lab ${lab_t[*]}; one stick with a config ${lone_t[*]}; lab RSS MiB ${lab_rss[*]}; one stick's ${lone_rss[*]}")
fi

model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo
echo "machine: $(nproc) cores ($model), kernel $(uname -r); sticks: loop devices on tmpfs, $how, $write_mbs MB/s write, $read_mbs MB/s read"
echo "image: $size_mib MiB (a quarter data, the rest zeros), archive $(stat -c %s "$archive") bytes (xz -T0 -6); medians of $runs runs"
echo
printf '| %-62s | %7s | %7s | %5s | %6s | %-3s |\n' "what" "seconds" "against" "ratio" "target" "met"
printf '| --- | ---: | ---: | ---: | ---: | :---: |\n'
printf '%s\n' "${results[@]}" "${extras[@]}"
echo
printf -v line '%s; ' "${every[@]}"
echo "every run (s): ${line%; }"
