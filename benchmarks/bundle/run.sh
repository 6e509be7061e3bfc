#!/usr/bin/env bash
# Bundle import against the floor of reading and hashing the same files (sha256sum), in the same run, with the CPU
# time the mirror and the CLI spend per MiB (CPU time holds still on a busy machine when wall time does not).
#
#   benchmarks/bundle/run.sh                   # a 512 MiB layer, 5 rounds, directory and .tar bundles
#   SIZE_MIB=128 ROUNDS=3 benchmarks/bundle/run.sh
#
# One mirror (offline island), warmed up with two imports of each form; each round imports the directory and the
# .tar form, then removes the imported layer from the cache so that the next round writes it again. The import's
# wall time includes the CLI's start-up (some 0.4 s of CPU time here; the CLI figure leaves it out), which a
# large layer amortises. Loopback only.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-512}
ROUNDS=${ROUNDS:-5}
PORT=${PORT:-15600}

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/mirrorproxy-bundle.XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ]; then
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }

log "building"
dotnet build "$root/src/MirrorProxy/MirrorProxy.csproj" -c Release -v quiet -nologo >/dev/null
program=("dotnet" "$root/src/MirrorProxy/bin/Release/net10.0/mirrorproxy.dll")
openssl ecparam -name prime256v1 -genkey -noout -out "$work/key.pem"
openssl ec -in "$work/key.pem" -pubout -out "$work/key.pub" 2>/dev/null

# A signed bundle directory holding one image with one random layer of $2 bytes; $3 is the bundle's source id.
make_bundle() {
  local dir=$1 size=$2 source=$3 layer config manifest index
  mkdir -p "$dir/blobs/sha256"
  head -c "$size" /dev/urandom >"$dir/layer"
  layer=$(sha256sum "$dir/layer" | cut -d' ' -f1)
  mv "$dir/layer" "$dir/blobs/sha256/$layer"
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$layer" >"$dir/config"
  config=$(sha256sum "$dir/config" | cut -d' ' -f1)
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
    "$config" "$(stat -c %s "$dir/config")" "$layer" "$size" >"$dir/manifest"
  manifest=$(sha256sum "$dir/manifest" | cut -d' ' -f1)
  local msize; msize=$(stat -c %s "$dir/manifest")
  mv "$dir/config" "$dir/blobs/sha256/$config"
  mv "$dir/manifest" "$dir/blobs/sha256/$manifest"
  local ref="docker.io/bench/big:$source"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest" "$msize" "$ref" "$ref" >"$dir/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  local files="" path
  for path in oci-layout index.json $(cd "$dir" && printf '%s ' blobs/sha256/*); do
    files+="${files:+,}{\"path\":\"$path\",\"size\":$(stat -c %s "$dir/$path"),\"sha256\":\"$(sha256sum "$dir/$path" | cut -d' ' -f1)\"}"
  done
  printf '{"formatVersion":1,"kind":"full","mirrorId":"%s","created":"2026-01-01T00:00:00+00:00","sequence":1,"images":[{"reference":"%s","digest":"sha256:%s","mediaType":"application/vnd.oci.image.manifest.v1+json","size":%d,"platforms":[]}],"files":[%s]}' \
    "$(printf '%032d' "$source")" "$ref" "$manifest" "$msize" "$files" >"$dir/mirrorproxy-bundle.json"
  openssl dgst -sha256 -sign "$work/key.pem" "$dir/mirrorproxy-bundle.json" | base64 -w0 >"$dir/mirrorproxy-bundle.json.sig"
}

log "making the bundles ($SIZE_MIB MiB layer)"
make_bundle "$work/small" 100000 1
make_bundle "$work/dir" $((SIZE_MIB * 1024 * 1024)) 2
make_bundle "$work/tar-src" $((SIZE_MIB * 1024 * 1024)) 3
(cd "$work/tar-src" && tar -cf "$work/bundle.tar" mirrorproxy-bundle.json mirrorproxy-bundle.json.sig oci-layout index.json blobs/sha256)
rm -rf "$work/tar-src"

"${program[@]}" serve --listen "127.0.0.1:$PORT" --cache "$work/cache" --offline --upstream docker.io=http://127.0.0.1:1 >"$work/mirror.log" 2>&1 &
pid=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
import() { "${program[@]}" bundle import --server "http://127.0.0.1:$PORT" --trust "$work/key.pub" "$1" >/dev/null; }
# The layer leaves the cache (behind the mirror's back; it asks the disk) so that the next import writes it again.
forget_layers() { find "$work/cache/blobs" -type f -size +1M -delete; }

# CPU time of a CLI process that does next to nothing: start-up, taken off the CLI's figure.
TIMEFORMAT='%R %U %S'
startup_ms=$( { time import "$work/small"; } 2>&1 | awk '{ printf "%d", ($2 + $3) * 1000 }')
for form in "$work/dir" "$work/bundle.tar"; do import "$form"; forget_layers; import "$form"; forget_layers; done

printf '%-5s %6s %10s %12s %6s %14s %14s %5s\n' form round 'import/s' 'sha256sum/s' ratio 'mirror ms/MiB' 'CLI ms/MiB' load
for round in $(seq "$ROUNDS"); do
  for form in "$work/dir" "$work/bundle.tar"; do
    if [ -d "$form" ]; then files=$(find "$form" -type f); name=dir; else files=$form; name=tar; fi
    bytes=$(cat $files | wc -c)
    hash_s=$( { time sha256sum $files >/dev/null; } 2>&1 | cut -d' ' -f1)
    before=$(cpu_ms "$pid")
    read -r import_s user sys < <( { time import "$form"; } 2>&1)
    mirror_ms=$(( $(cpu_ms "$pid") - before ))
    hash2_s=$( { time sha256sum $files >/dev/null; } 2>&1 | cut -d' ' -f1)
    forget_layers
    awk -v b="$bytes" -v i="$import_s" -v h1="$hash_s" -v h2="$hash2_s" -v m="$mirror_ms" -v u="$user" -v s="$sys" -v st="$startup_ms" \
      -v n="$name" -v r="$round" -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
        mib = b / 1048576; h = h1 < h2 ? h1 : h2
        printf "%-5s %6d %6.0f MiB %8.0f MiB %6.2f %14.2f %14.2f %5s\n", n, r, mib / i, mib / h, h / i, m / mib, ((u + s) * 1000 - st) / mib, l }'
  done
done
