#!/usr/bin/env bash
# Load harness: MirrorProxy against CNCF distribution in proxy mode (Debian's docker-registry) and nginx
# serving the same blob files with sendfile (the ceiling), measured in one run on this machine, loopback only.
#
#   benchmarks/load/run.sh                 # JIT build
#   AOT=1 benchmarks/load/run.sh           # also the Native AOT build
#   BASELINE=<git revision> ...            # also that revision's JIT build, for before/after in one run
#   DURATION=10 CONNECTIONS_SMALL=32 ...   # knobs, see below
#
# Prints one table of absolute figures and ratios. Every load loop is bounded: wrk runs DURATION seconds,
# every curl has --max-time, every wait has a deadline.
set -euo pipefail

DURATION=${DURATION:-10}
THREADS=${THREADS:-2}
CONNECTIONS_SMALL=${CONNECTIONS_SMALL:-32}
CONNECTIONS_LARGE=${CONNECTIONS_LARGE:-8}
AOT=${AOT:-0}
ISLAND_TIMEOUT=${ISLAND_TIMEOUT:-5}
PULL_IMAGES=${PULL_IMAGES:-4} # images pulled whole through containerd: one to warm up, the rest timed
MIRROR_ENV=${MIRROR_ENV:-}   # extra environment for MirrorProxy, e.g. "DOTNET_gcServer=1"
PEERS=${PEERS:-1}            # 0: MirrorProxy only (quick experiments); the table then has no ratios
BASELINE=${BASELINE:-}       # a git revision measured in the same run as "before"
BASE_PORT=${BASE_PORT:-15000}
UPSTREAM_PORT=$BASE_PORT
DIST_PORT=$((BASE_PORT + 1))
NGINX_PORT=$((BASE_PORT + 2))
MIRROR_PORT=$((BASE_PORT + 3))

case "$PULL_IMAGES" in
  ''|*[!0-9]*) echo "PULL_IMAGES must be a whole number of images: one warms up, the rest are timed (got '$PULL_IMAGES')" >&2; exit 2 ;;
esac
if [ "$PULL_IMAGES" -lt 2 ]; then
  echo "PULL_IMAGES=$PULL_IMAGES times no pull: the first image only warms containerd up; use 2 or more" >&2
  exit 2
fi

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/mirrorproxy-bench.XXXXXX)
chmod 755 "$work" # nginx workers run as an unprivileged user and must read the blob files
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -CONT "$pid" 2>/dev/null || true; kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -z "$BASELINE" ] || git -C "$root" worktree remove --force "$work/baseline-src" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

install_prerequisites() {
  local missing=()
  for package in docker-registry nginx-light wrk containerd curl; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

wait_http() { # url deadline-seconds
  local deadline=$((SECONDS + $2))
  until curl -s -o /dev/null --max-time 2 "$1"; do
    [ $SECONDS -lt $deadline ] || { log "timed out waiting for $1"; return 1; }
    sleep 0.05
  done
}

start_registry() { # name port extra-yaml
  mkdir -p "$work/$1"
  cat > "$work/$1/config.yml" <<YAML
version: 0.1
log: { level: error, accesslog: { disabled: false } }
storage: { filesystem: { rootdirectory: "$work/$1/data" }, delete: { enabled: true } }
http: { addr: "127.0.0.1:$2", secret: "bench-$1" }
$3
YAML
  docker-registry serve "$work/$1/config.yml" > "$work/$1/log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$2/v2/" 20
}

# A gzip tar layer of `size` random bytes, named after its digest.
make_layer() { # name size
  mkdir -p "$work/layers/$1"
  head -c "$2" /dev/urandom > "$work/layers/$1/data"
  tar -C "$work/layers/$1" -cf - data | gzip -1 > "$work/layers/$1.tar.gz"
}

push_blob() { # repo file -> digest
  local digest location
  digest="sha256:$(sha256sum "$2" | cut -d' ' -f1)"
  location=$(curl -s -i --max-time 30 -X POST "http://127.0.0.1:$UPSTREAM_PORT/v2/$1/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:" {print $2}')
  case "$location" in http*) ;; *) location="http://127.0.0.1:$UPSTREAM_PORT$location" ;; esac
  curl -s --max-time 120 -X PUT -H "Content-Type: application/octet-stream" --data-binary "@$2" "$location&digest=$digest" > /dev/null
  echo "$digest"
}

descriptor() { # mediatype file digest
  printf '{"mediaType":"%s","digest":"%s","size":%s}' "$1" "$3" "$(stat -c %s "$2")"
}

rss_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
rss_now_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# wrk: prints "requests/s bytes/s"
bench() { # url connections [header]
  local args=(-t "$THREADS" -c "$2" -d "${DURATION}s" --latency)
  [ -n "${3:-}" ] && args+=(-H "$3")
  wrk "${args[@]}" "$1" > "$work/wrk.out" 2>&1 || true
  awk '
    /Requests\/sec:/ { rps=$2 }
    /Transfer\/sec:/ { v=$2; unit=v; gsub(/[0-9.]/, "", unit); gsub(/[A-Za-z]/, "", v);
                       m = unit=="KB" ? 1024 : unit=="MB" ? 1048576 : unit=="GB" ? 1073741824 : 1; bytes=v*m }
    /Non-2xx/ { bad=$NF }
    END { printf "%.0f %.0f %s\n", rps, bytes, (bad=="" ? 0 : bad) }' "$work/wrk.out"
}

timed_get() { # url max-seconds -> "seconds s status" (status 000: no answer within max-seconds)
  local out
  out=$(curl -s -o /dev/null --max-time "$2" -w '%{time_total} %{http_code}' -H "Accept: application/vnd.oci.image.manifest.v1+json" "$1" || true)
  awk -v out="$out" 'BEGIN { split(out, f, " "); printf "%.3f s %s", f[1], (f[2] == "000" ? "no answer" : f[2]) }'
}

start_mirror() { # program tag-ttl -> sets mirror_pid, startup_ms
  local started
  started=$(date +%s%N)
  # shellcheck disable=SC2086
  env MIRRORPROXY__LOGGING__LOGLEVEL__DEFAULT=Warning $MIRROR_ENV "$1" serve --listen "127.0.0.1:$MIRROR_PORT" --cache "$work/mirror-cache" \
    --upstream "bench.local=http://127.0.0.1:$UPSTREAM_PORT" --tag-ttl "$2" > "$work/mirror.log" 2>&1 &
  mirror_pid=$!
  pids+=("$mirror_pid")
  wait_http "http://127.0.0.1:$MIRROR_PORT/healthz" 60
  startup_ms=$(( ($(date +%s%N) - started) / 1000000 ))
}

stop_mirror() { kill "$mirror_pid" 2>/dev/null || true; wait "$mirror_pid" 2>/dev/null || true; }

install_prerequisites
log "building MirrorProxy (Release, JIT)"
dotnet publish "$root/src/MirrorProxy" -c Release -o "$work/mirror-jit" -nologo -v quiet > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
programs=("jit:$work/mirror-jit/mirrorproxy")
if [ -n "$BASELINE" ]; then
  log "building MirrorProxy at $BASELINE (Release, JIT) as the baseline"
  git -C "$root" worktree add --detach "$work/baseline-src" "$BASELINE" > /dev/null 2>&1
  dotnet publish "$work/baseline-src/src/MirrorProxy" -c Release -o "$work/mirror-before" -nologo -v quiet > "$work/build-before.log" 2>&1 || { cat "$work/build-before.log"; exit 1; }
  programs=("before:$work/mirror-before/mirrorproxy" "${programs[@]}")
fi
if [ "$AOT" = 1 ]; then
  log "building MirrorProxy (Release, Native AOT)"
  dotnet publish "$root/src/MirrorProxy" -c Release -r linux-x64 -p:PublishAot=true -o "$work/mirror-aot" -nologo -v quiet > "$work/build-aot.log" 2>&1 || { cat "$work/build-aot.log"; exit 1; }
  programs+=("aot:$work/mirror-aot/mirrorproxy")
fi

log "starting the upstream and pushing an image (1.6 KB, 2 MB and 48 MB layers)"
start_registry upstream "$UPSTREAM_PORT" ""
make_layer small 1000
make_layer medium $((2 * 1024 * 1024))
make_layer large $((48 * 1024 * 1024))
small=$(push_blob bench/app "$work/layers/small.tar.gz")
medium=$(push_blob bench/app "$work/layers/medium.tar.gz")
large=$(push_blob bench/app "$work/layers/large.tar.gz")
diffs=""
for layer in small medium large; do diffs="$diffs\"sha256:$(sha256sum < <(gunzip -c "$work/layers/$layer.tar.gz") | cut -d' ' -f1)\","; done
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]},"config":{}}' "${diffs%,}" > "$work/config.json"
config=$(push_blob bench/app "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s,%s,%s]}' \
  "$(descriptor application/vnd.oci.image.config.v1+json "$work/config.json" "$config")" \
  "$(descriptor application/vnd.oci.image.layer.v1.tar+gzip "$work/layers/small.tar.gz" "$small")" \
  "$(descriptor application/vnd.oci.image.layer.v1.tar+gzip "$work/layers/medium.tar.gz" "$medium")" \
  "$(descriptor application/vnd.oci.image.layer.v1.tar+gzip "$work/layers/large.tar.gz" "$large")" > "$work/manifest.json"
curl -s --max-time 30 -X PUT -H "Content-Type: application/vnd.oci.image.manifest.v1+json" --data-binary "@$work/manifest.json" \
  "http://127.0.0.1:$UPSTREAM_PORT/v2/bench/app/manifests/1.0" > /dev/null
small_size=$(stat -c %s "$work/layers/small.tar.gz")

# Images pulled whole by containerd through each proxy while not yet cached: 1, 8 and 24 MB layers each.
# The first warms the proxy process (its code paths, connections), the others are timed.
for image in $(seq 0 $((PULL_IMAGES - 1))); do
  make_layer "pull$image-1" $((1024 * 1024)); make_layer "pull$image-2" $((8 * 1024 * 1024)); make_layer "pull$image-3" $((24 * 1024 * 1024))
  pull_layers=""; pull_diffs=""
  for layer in "pull$image-1" "pull$image-2" "pull$image-3"; do
    digest=$(push_blob "bench/pull$image" "$work/layers/$layer.tar.gz")
    pull_layers="$pull_layers$(descriptor application/vnd.oci.image.layer.v1.tar+gzip "$work/layers/$layer.tar.gz" "$digest"),"
    pull_diffs="$pull_diffs\"sha256:$(gunzip -c "$work/layers/$layer.tar.gz" | sha256sum | cut -d' ' -f1)\","
  done
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]},"config":{}}' "${pull_diffs%,}" > "$work/pull-config.json"
  pull_config=$(push_blob "bench/pull$image" "$work/pull-config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}' \
    "$(descriptor application/vnd.oci.image.config.v1+json "$work/pull-config.json" "$pull_config")" "${pull_layers%,}" > "$work/pull-manifest.json"
  curl -s --max-time 30 -X PUT -H "Content-Type: application/vnd.oci.image.manifest.v1+json" --data-binary "@$work/pull-manifest.json" \
    "http://127.0.0.1:$UPSTREAM_PORT/v2/bench/pull$image/manifests/1.0" > /dev/null
  rm -rf "$work/layers/pull$image-"*
done

# ctr pull (with unpack) of bench.local/$2 from a fresh containerd, through the proxy on port $1.
containerd_pull() { # port image -> milliseconds, or "failed"
  local dir="$work/ctd-$1-$RANDOM" pid started result=failed
  mkdir -p "$dir/hosts/bench.local"
  cat > "$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "$dir/c.sock"
TOML
  printf 'server = "http://127.0.0.1:1"\n[host."http://127.0.0.1:%s"]\n  capabilities = ["pull", "resolve"]\n' "$1" > "$dir/hosts/bench.local/hosts.toml"
  containerd --config "$dir/config.toml" > "$dir/log" 2>&1 &
  pid=$!
  local deadline=$((SECONDS + 20))
  until ctr --address "$dir/c.sock" version > /dev/null 2>&1; do [ $SECONDS -lt $deadline ] || break; sleep 0.1; done
  started=$(date +%s%N)
  if timeout 120 ctr --address "$dir/c.sock" -n bench images pull --hosts-dir "$dir/hosts" --snapshotter native "bench.local/$2" > "$dir/pull.log" 2>&1; then
    result=$(( ($(date +%s%N) - started) / 1000000 ))
  fi
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  echo "$result"
}

# Every image through the proxy on port $1: the first unrecorded, then the median and each figure.
containerd_pulls() { # port -> "median (ms, ms, ...)", or "failed"
  local image times=() median
  containerd_pull "$1" bench/pull0:1.0 > /dev/null
  for image in $(seq 1 $((PULL_IMAGES - 1))); do times+=("$(containerd_pull "$1" "bench/pull$image:1.0")"); done
  case " ${times[*]} " in *" failed "*) echo failed; return ;; esac
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
  local all
  all=$(printf '%s, ' "${times[@]}")
  echo "$median (${all%, })"
}

log "starting distribution (proxy mode) and nginx (sendfile)"
start_registry dist "$DIST_PORT" "proxy: { remoteurl: \"http://127.0.0.1:$UPSTREAM_PORT\" }"
dist_pid=${pids[-1]}
mkdir -m 755 "$work/nginx" "$work/nginx/root" "$work/nginx/root/v2" "$work/nginx/root/v2/bench" "$work/nginx/root/v2/bench/app" "$work/nginx/root/v2/bench/app/blobs" "$work/nginx/tmp"
install -m 644 "$work/layers/small.tar.gz" "$work/nginx/root/v2/bench/app/blobs/$small"
install -m 644 "$work/layers/medium.tar.gz" "$work/nginx/root/v2/bench/app/blobs/$medium"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx/tmp; proxy_temp_path $work/nginx/tmp; fastcgi_temp_path $work/nginx/tmp; uwsgi_temp_path $work/nginx/tmp; scgi_temp_path $work/nginx/tmp;
  server { listen 127.0.0.1:$NGINX_PORT; root $work/nginx/root; default_type application/octet-stream; }
}
NGINX
nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)
wait_http "http://127.0.0.1:$NGINX_PORT/v2/bench/app/blobs/$small" 10
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NGINX_PORT/v2/bench/app/blobs/$medium")" = 200 ] || { log "nginx does not serve the blob files"; cat "$work/nginx/error.log"; exit 1; }

upstream_gets() { # digest
  grep -c "GET /v2/bench/app/blobs/$1" "$work/upstream/log" || true
}

cold_pull() { # port label -> seconds for 16 concurrent cold GETs of the 48 MB layer, and upstream GETs
  local before after started
  before=$(upstream_gets "$large")
  started=$(date +%s%N)
  for _ in $(seq 16); do curl -s -o /dev/null --max-time 120 "http://127.0.0.1:$1/v2/bench/app/blobs/$large" & done
  wait_jobs
  after=$(upstream_gets "$large")
  echo "$(( ($(date +%s%N) - started) / 1000000 )) $((after - before))"
}
wait_jobs() { for job in $(jobs -p); do case " ${pids[*]} " in *" $job "*) ;; *) wait "$job" || true ;; esac; done; }

declare -A result
record() { result[$1]=$2; }

if [ "$PEERS" = 1 ]; then
log "distribution: cold, then warm"
record dist.ctr "$(containerd_pulls "$DIST_PORT")"
read -r ms gets < <(cold_pull "$DIST_PORT")
record dist.cold.ms "$ms"; record dist.cold.gets "$gets"
for digest in "$small" "$medium" "$config"; do curl -s -o /dev/null --max-time 60 "http://127.0.0.1:$DIST_PORT/v2/bench/app/blobs/$digest"; done
curl -s -o /dev/null --max-time 60 -H "Accept: application/vnd.oci.image.manifest.v1+json" "http://127.0.0.1:$DIST_PORT/v2/bench/app/manifests/1.0"

log "load: nginx"
read -r rps bps bad < <(bench "http://127.0.0.1:$NGINX_PORT/v2/bench/app/blobs/$small" "$CONNECTIONS_SMALL"); record nginx.small "$rps"; record nginx.small.bad "$bad"
read -r rps bps bad < <(bench "http://127.0.0.1:$NGINX_PORT/v2/bench/app/blobs/$medium" "$CONNECTIONS_LARGE"); record nginx.medium "$bps"; record nginx.medium.bad "$bad"
log "load: distribution"
read -r rps bps bad < <(bench "http://127.0.0.1:$DIST_PORT/v2/bench/app/blobs/$small" "$CONNECTIONS_SMALL"); record dist.small "$rps"; record dist.small.bad "$bad"
read -r rps bps bad < <(bench "http://127.0.0.1:$DIST_PORT/v2/bench/app/blobs/$medium" "$CONNECTIONS_LARGE"); record dist.medium "$bps"; record dist.medium.bad "$bad"
read -r rps bps bad < <(bench "http://127.0.0.1:$DIST_PORT/v2/bench/app/manifests/1.0" "$CONNECTIONS_SMALL" "Accept: application/vnd.oci.image.manifest.v1+json"); record dist.manifest "$rps"; record dist.manifest.bad "$bad"
record dist.rss "$(rss_kb "$dist_pid")"
fi

for entry in "${programs[@]}"; do
  name=${entry%%:*}; program=${entry#*:}
  rm -rf "$work/mirror-cache"
  start_mirror "$program" 300
  record "$name.startup" "$startup_ms"
  sleep 1
  record "$name.idle" "$(rss_now_kb "$mirror_pid")"
  log "MirrorProxy ($name): cold, then warm"
  record "$name.ctr" "$(containerd_pulls "$MIRROR_PORT")"
  read -r ms gets < <(cold_pull "$MIRROR_PORT")
  record "$name.cold.ms" "$ms"; record "$name.cold.gets" "$gets"; record "$name.rss.cold" "$(rss_kb "$mirror_pid")"
  for digest in "$small" "$medium" "$config"; do curl -s -o /dev/null --max-time 60 "http://127.0.0.1:$MIRROR_PORT/v2/bench/app/blobs/$digest"; done
  curl -s -o /dev/null --max-time 60 -H "Accept: application/vnd.oci.image.manifest.v1+json" "http://127.0.0.1:$MIRROR_PORT/v2/bench/app/manifests/1.0"
  log "load: MirrorProxy ($name)"
  read -r rps bps bad < <(bench "http://127.0.0.1:$MIRROR_PORT/v2/bench/app/blobs/$small" "$CONNECTIONS_SMALL"); record "$name.small" "$rps"; record "$name.small.bad" "$bad"; record "$name.rss.small" "$(rss_kb "$mirror_pid")"
  read -r rps bps bad < <(bench "http://127.0.0.1:$MIRROR_PORT/v2/bench/app/blobs/$medium" "$CONNECTIONS_LARGE"); record "$name.medium" "$bps"; record "$name.medium.bad" "$bad"; record "$name.rss.medium" "$(rss_kb "$mirror_pid")"
  read -r rps bps bad < <(bench "http://127.0.0.1:$MIRROR_PORT/v2/bench/app/manifests/1.0" "$CONNECTIONS_SMALL" "Accept: application/vnd.oci.image.manifest.v1+json"); record "$name.manifest" "$rps"; record "$name.manifest.bad" "$bad"
  record "$name.rss" "$(rss_kb "$mirror_pid")"
  stop_mirror
done

log "island: a cached tag with the upstream hung and refused (MirrorProxy with --tag-ttl 0, distribution)"
start_mirror "$work/mirror-jit/mirrorproxy" 0
island() { # label signal
  local port
  for port in "$MIRROR_PORT" "$DIST_PORT"; do
    local who=mirror; [ "$port" = "$DIST_PORT" ] && who=dist
    local first tenth uncached
    first=$(timed_get "http://127.0.0.1:$port/v2/bench/app/manifests/1.0" "$ISLAND_TIMEOUT")
    for _ in $(seq 8); do timed_get "http://127.0.0.1:$port/v2/bench/app/manifests/1.0" "$ISLAND_TIMEOUT" > /dev/null; done
    tenth=$(timed_get "http://127.0.0.1:$port/v2/bench/app/manifests/1.0" "$ISLAND_TIMEOUT")
    uncached=$(timed_get "http://127.0.0.1:$port/v2/bench/app/manifests/never-pushed" "$ISLAND_TIMEOUT")
    record "island.$1.$who" "$first / $tenth / $uncached"
  done
}
upstream_pid=${pids[0]}
kill -STOP "$upstream_pid"; island hung; kill -CONT "$upstream_pid"
kill "$upstream_pid"; wait "$upstream_pid" 2>/dev/null || true; island refused
stop_mirror

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a + 0 > 0) printf "%.2f", a / b; else print "n/a" }'; }
gbps() { [ "$1" = n/a ] && echo n/a || awk -v b="$1" 'BEGIN { printf "%.2f GB/s", b / 1e9 }'; }
mb() { [ "$1" = n/a ] && echo n/a || awk -v k="$1" 'BEGIN { printf "%.0f MB", k / 1024 }'; }

printf '\nMirrorProxy load harness: %s, %s cores, wrk %s threads, %s s per run, loopback%s\n\n' "$(uname -m)" "$(nproc)" "$THREADS" "$DURATION" "${MIRROR_ENV:+, MirrorProxy with $MIRROR_ENV}"
printf '| scenario | nginx (ceiling) | distribution proxy |'
for entry in "${programs[@]}"; do printf ' MirrorProxy %s | vs distribution | vs nginx |' "${entry%%:*}"; done
printf '\n|---|---|---|'; for _ in "${programs[@]}"; do printf -- '---|---|---|'; done; printf '\n'
row() { # label nginx dist key formatter
  printf '| %s | %s | %s |' "$1" "$2" "$3"
  for entry in "${programs[@]}"; do
    local name=${entry%%:*}
    printf ' %s | %s× | %s |' "$($5 "${result[$name.$4]:-n/a}")" "$(ratio "${result[$name.$4]:-n/a}" "${result[dist.$4]:-0}")" \
      "$( [ "$2" = "n/a" ] && echo "n/a" || echo "$(ratio "${result[$name.$4]:-n/a}" "${result[nginx.$4]:-0}")×")"
  done
  printf '\n'
}
plain() { printf '%s' "$1"; }
row "hot small blob ($small_size B), $CONNECTIONS_SMALL conns, req/s" "${result[nginx.small]:-n/a}" "${result[dist.small]:-n/a}" small plain
row "hot 2 MB blob, $CONNECTIONS_LARGE conns" "$(gbps "${result[nginx.medium]:-n/a}")" "$(gbps "${result[dist.medium]:-n/a}")" medium gbps
row "hot manifest by tag, $CONNECTIONS_SMALL conns, req/s" "n/a" "${result[dist.manifest]:-n/a}" manifest plain
printf '| containerd pull of an image not yet cached (1, 8, 24 MB layers, unpacked), median of %s, ms | n/a | %s |' "$((PULL_IMAGES - 1))" "${result[dist.ctr]:-n/a}"
for entry in "${programs[@]}"; do n=${entry%%:*}; printf ' %s | %s× faster | |' "${result[$n.ctr]:-n/a}" "$(ratio "${result[dist.ctr]%% *}" "${result[$n.ctr]%% *}")"; done
printf '\n| 16 concurrent cold GETs of a 48 MB blob: upstream GETs (ms) | n/a | %s (%s ms) |' "${result[dist.cold.gets]:-n/a}" "${result[dist.cold.ms]:-n/a}"
for entry in "${programs[@]}"; do n=${entry%%:*}; printf ' %s (%s ms) | | |' "${result[$n.cold.gets]:-n/a}" "${result[$n.cold.ms]:-n/a}"; done
printf '\n| peak RSS | n/a | %s |' "$(mb "${result[dist.rss]:-n/a}")"
for entry in "${programs[@]}"; do n=${entry%%:*}; printf ' %s | | |' "$(mb "${result[$n.rss]:-n/a}")"; done
printf '\n| peak RSS after the cold phase / small blobs / 2 MB blobs | n/a | |'
for entry in "${programs[@]}"; do n=${entry%%:*}; printf ' %s / %s / %s | | |' "$(mb "${result[$n.rss.cold]:-n/a}")" "$(mb "${result[$n.rss.small]:-n/a}")" "$(mb "${result[$n.rss.medium]:-n/a}")"; done
printf '\n| idle RSS / start-up | n/a | |'
for entry in "${programs[@]}"; do n=${entry%%:*}; printf ' %s / %s ms | | |' "$(mb "${result[$n.idle]:-n/a}")" "${result[$n.startup]:-n/a}"; done
printf '\n\nIsland: a cached tag, first and tenth request, then an uncached tag (MirrorProxy --tag-ttl 0; clients give up after %s s):\n\n' "$ISLAND_TIMEOUT"
printf '| upstream | MirrorProxy | distribution proxy |\n|---|---|---|\n'
for mode in hung refused; do printf '| %s | %s | %s |\n' "$mode" "${result[island.$mode.mirror]:-n/a}" "${result[island.$mode.dist]:-n/a}"; done
for key in "${!result[@]}"; do
  case "$key" in *.bad) [ "${result[$key]:-n/a}" = 0 ] || printf '\nWARNING: %s: %s non-2xx responses; that figure is not valid\n' "${key%.bad}" "${result[$key]:-n/a}" ;; esac
done
