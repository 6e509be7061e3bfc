#!/usr/bin/env bash
# Replicas harness: what scaling out costs and brings, measured in one run on this machine, loopback only.
#
#   sudo benchmarks/replicas/run.sh                 # 3 rounds of each configuration
#   ROUNDS=1 REPLICAS=3 CLIENTS=12 ...              # knobs, see below
#
# Brings up a single-host Ceph cluster (ceph-mon, one bluestore OSD on a sparse file, radosgw) and Garnet, and times
# both. Pushes an image of LAYERS random blobs of LAYER_MB MiB to an upstream (Debian's docker-registry). Then, for
# each configuration, ROUNDS times, with fresh cache directories and a fresh bucket prefix and key prefix:
#   file      one mirror, its cache directory only (no S3, no coordination)
#   s3        one mirror on the bucket, with coordination
#   replicas  REPLICAS mirrors sharing the bucket and Garnet
# it measures CLIENTS concurrent clients pulling every layer (each checks the SHA-256 of what it got), spread over
# the replicas: cold (nothing cached anywhere; upstream GETs per blob read from the upstream's access log), warm
# (the same again, from each replica's read cache), and, on the bucket, from the bucket: the first replica restarted
# with an empty read cache serves every pull, reading what the others fetched from S3. Peak RSS is VmHWM. Each round
# first runs the same clients straight against the upstream, as the reference for what the machine allows then.
# Every curl has --max-time, every wait has a deadline; the processes started are stopped by PID.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
REPLICAS=${REPLICAS:-3}
CLIENTS=${CLIENTS:-12}
LAYERS=${LAYERS:-8}
LAYER_MB=${LAYER_MB:-16}
CONFIGS=${CONFIGS:-"file s3 replicas"}
MIRROR=${MIRROR:-}             # a published mirrorproxy to run instead of building one (quick experiments)
MIRROR_ENV=${MIRROR_ENV:-}     # extra environment for the mirrors, e.g. "DOTNET_gcServer=0"
GARNET=${GARNET:-}             # garnet-server; default .tools/garnet/garnet-server at the repository root
OSD_SIZE_GB=${OSD_SIZE_GB:-10} # the OSD's sparse block file
PULL_TIMEOUT=${PULL_TIMEOUT:-120}
BASE_PORT=${BASE_PORT:-15700}
UPSTREAM_PORT=$BASE_PORT
MON_PORT=$((BASE_PORT + 1))
RGW_PORT=$((BASE_PORT + 2))
GARNET_PORT=$((BASE_PORT + 3))
MIRROR_PORT=$((BASE_PORT + 4)) # MIRROR_PORT .. MIRROR_PORT + REPLICAS - 1
BUCKET=mirrorproxy-bench

root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../lib/ceph.sh
. "$root/benchmarks/lib/ceph.sh"
work=$(mktemp -d /tmp/mirrorproxy-replicas.XXXXXX)
pids=()
cleanup() {
  # Mirrors and Garnet first, then radosgw, the OSD and the monitor (each finishes with the next one still there).
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; done
  local deadline=$((SECONDS + 15))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do
      [ $SECONDS -lt $deadline ] || { kill -9 "$pid" 2>/dev/null || true; break; }
      sleep 0.1
    done
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
peak_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
mb() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
# Ceph's tools read these; a plain-HTTP S3 endpoint and AWS_CA_BUNDLE do not mix.
unset AWS_CA_BUNDLE CEPH_CONF CEPH_ARGS
export LC_ALL=C

install_prerequisites() {
  local missing=()
  for package in docker-registry ceph-mon ceph-osd radosgw ceph-common curl jq; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  GARNET=${GARNET:-$root/.tools/garnet/garnet-server}
  if [ ! -x "$GARNET" ]; then
    log "installing garnet-server 2.2.8 into $root/.tools/garnet"
    dotnet tool install --tool-path "$root/.tools/garnet" garnet-server --version 2.2.8 > /dev/null
    GARNET=$root/.tools/garnet/garnet-server
  fi
}

wait_http() { # url deadline-seconds
  local deadline=$((SECONDS + $2))
  until curl -s -o /dev/null --max-time 2 "$1"; do
    [ $SECONDS -lt $deadline ] || { log "timed out waiting for $1"; return 1; }
    sleep 0.05
  done
}

# ---------------------------------------------------------------------------------------------------------------
# Ceph: one monitor (msgr2 only), one bluestore OSD on a sparse file, pools of size 1, cephx, radosgw (beast).
# Everything lives in $work/ceph; nothing under /etc/ceph or /var/lib/ceph is read or written.
ceph_dir=$work/ceph
ceph_conf=$ceph_dir/ceph.conf
declare -A step_ms
ceph_tool() { timeout 60 "$@" >> "$ceph_dir/tools.log" 2>&1 || { log "failed: $*"; tail -20 "$ceph_dir/tools.log" >&2; return 1; }; }
ceph_step() { # name command...
  local name=$1 started; shift
  started=$(now_ms)
  "$@"
  step_ms[$name]=$(( $(now_ms) - started ))
}

ceph_monitor() {
  ceph_tool ceph-authtool --create-keyring "$ceph_dir/keyring/mon-mkfs.keyring" --gen-key -n mon. --cap mon 'allow *'
  ceph_tool ceph-authtool --create-keyring "$ceph_dir/keyring/client.admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *'
  ceph_tool ceph-authtool "$ceph_dir/keyring/mon-mkfs.keyring" --import-keyring "$ceph_dir/keyring/client.admin.keyring"
  ceph_tool monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$ceph_dir/monmap"
  ceph_tool ceph-mon -c "$ceph_conf" -i a --mkfs --monmap "$ceph_dir/monmap" --keyring "$ceph_dir/keyring/mon-mkfs.keyring"
  ceph-mon -c "$ceph_conf" -i a -f > "$ceph_dir/log/mon.out" 2>&1 &
  mon_pid=$!; pids+=("$mon_pid")
}

ceph_osd() {
  local key uuid
  key=$(timeout 10 ceph-authtool --gen-print-key)
  uuid=$(cat /proc/sys/kernel/random/uuid)
  printf '{"cephx_secret":"%s"}' "$key" > "$ceph_dir/osd-secrets.json"
  # The first command that needs the monitor: the CLI waits (bounded) until the monitor takes connections.
  osd_id=$(timeout 60 ceph -c "$ceph_conf" --connect-timeout 30 osd new "$uuid" -i "$ceph_dir/osd-secrets.json" 2>> "$ceph_dir/tools.log")
  ceph_tool ceph-authtool --create-keyring "$ceph_dir/keyring/osd.$osd_id.keyring" --name "osd.$osd_id" --add-key "$key"
  mkdir -p "$ceph_dir/osd/$osd_id"
  ceph_tool ceph-osd -c "$ceph_conf" -i "$osd_id" --mkfs --osd-uuid "$uuid" --no-mon-config
  ceph-osd -c "$ceph_conf" -i "$osd_id" -f > "$ceph_dir/log/osd.out" 2>&1 &
  osd_pid=$!; pids+=("$osd_pid")
}

ceph_rgw() {
  ceph_tool ceph -c "$ceph_conf" --connect-timeout 30 auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' \
    -o "$ceph_dir/keyring/client.rgw.a.keyring"
  # At its first start radosgw creates its pools (realm, zone, log, control, meta), which needs the OSD up.
  radosgw -c "$ceph_conf" -n client.rgw.a -f > "$ceph_dir/log/rgw.out" 2>&1 &
  rgw_pid=$!; pids+=("$rgw_pid")
  wait_http "http://127.0.0.1:$RGW_PORT/" 120 || { tail -20 "$ceph_dir/log/"*.log >&2; return 1; }
}

ceph_user() {
  timeout 60 radosgw-admin -c "$ceph_conf" user create --uid=mirrorproxy-bench --display-name="MirrorProxy benchmark" > "$ceph_dir/user.json" 2>> "$ceph_dir/tools.log"
  s3_access=$(jq -r '.keys[0].access_key' "$ceph_dir/user.json")
  s3_secret=$(jq -r '.keys[0].secret_key' "$ceph_dir/user.json")
  [ -n "$s3_access" ] && [ "$s3_access" != null ] || { log "radosgw-admin printed no keys"; cat "$ceph_dir/user.json" >&2; return 1; }
}

start_ceph() {
  mkdir -p "$ceph_dir"/{run,log,mon,osd,rgw,crash,keyring}
  fsid=$(cat /proc/sys/kernel/random/uuid)
  write_ceph_conf "$ceph_conf" "$ceph_dir" "$fsid" "$MON_PORT" "$RGW_PORT" $((OSD_SIZE_GB * 1024 * 1024 * 1024))
  local started; started=$(now_ms)
  ceph_step monitor ceph_monitor
  ceph_step osd ceph_osd
  ceph_step radosgw ceph_rgw
  ceph_step user ceph_user
  ceph_ms=$(( $(now_ms) - started ))
}

garnet_ping() { # port -> true on +PONG
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf 'PING\r\n' >&3 && head -c 5 <&3" 2>/dev/null | grep -q PONG
}

start_garnet() {
  local started deadline
  mkdir -p "$work/garnet"
  started=$(now_ms)
  # RandomAccess: its native device library needs glibc 2.38 (Debian 12 has 2.36). --lua: compare-and-delete scripts.
  "$GARNET" --bind 127.0.0.1 --port "$GARNET_PORT" --device-type RandomAccess --lua --memory 256m --index 16m \
    --checkpointdir "$work/garnet/checkpoints" -q > "$work/garnet/log" 2>&1 &
  garnet_pid=$!; pids+=("$garnet_pid")
  deadline=$((SECONDS + 30))
  until garnet_ping "$GARNET_PORT"; do
    [ $SECONDS -lt $deadline ] || { log "garnet did not answer PING"; tail -20 "$work/garnet/log" >&2; return 1; }
    kill -0 "$garnet_pid" 2>/dev/null || { log "garnet exited"; tail -20 "$work/garnet/log" >&2; return 1; }
    sleep 0.05
  done
  garnet_ms=$(( $(now_ms) - started ))
}

# ---------------------------------------------------------------------------------------------------------------
# The upstream and its image.
start_upstream() {
  mkdir -p "$work/upstream"
  cat > "$work/upstream/config.yml" <<YAML
version: 0.1
log: { level: error, accesslog: { disabled: false } }
storage: { filesystem: { rootdirectory: "$work/upstream/data" } }
http: { addr: "127.0.0.1:$UPSTREAM_PORT", secret: "bench-upstream" }
YAML
  docker-registry serve "$work/upstream/config.yml" > "$work/upstream/log" 2>&1 &
  upstream_pid=$!; pids+=("$upstream_pid")
  wait_http "http://127.0.0.1:$UPSTREAM_PORT/v2/" 20
}

push_blob() { # repo file -> digest
  local digest location
  digest="sha256:$(sha256sum "$2" | cut -d' ' -f1)"
  location=$(curl -s -i --max-time 30 -X POST "http://127.0.0.1:$UPSTREAM_PORT/v2/$1/blobs/uploads/" | tr -d '\r' | awk 'tolower($1)=="location:" {print $2}')
  case "$location" in http*) ;; *) location="http://127.0.0.1:$UPSTREAM_PORT$location" ;; esac
  curl -s --max-time 120 -X PUT -H "Content-Type: application/octet-stream" --data-binary "@$2" "$location&digest=$digest" > /dev/null
  echo "$digest"
}

push_image() {
  local i descriptors="" diffs=""
  mkdir -p "$work/layers"
  for i in $(seq 0 $((LAYERS - 1))); do
    head -c $((LAYER_MB * 1024 * 1024)) /dev/urandom > "$work/layers/$i"
    digests[$i]=$(push_blob bench/app "$work/layers/$i")
    descriptors="$descriptors{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"${digests[$i]}\",\"size\":$((LAYER_MB * 1024 * 1024))},"
    diffs="$diffs\"${digests[$i]}\","
    rm "$work/layers/$i"
  done
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]},"config":{}}' "${diffs%,}" > "$work/config.json"
  local config; config=$(push_blob bench/app "$work/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[%s]}' \
    "$config" "$(stat -c %s "$work/config.json")" "${descriptors%,}" > "$work/manifest.json"
  curl -s --max-time 30 -X PUT -H "Content-Type: application/vnd.oci.image.manifest.v1+json" --data-binary "@$work/manifest.json" \
    "http://127.0.0.1:$UPSTREAM_PORT/v2/bench/app/manifests/1.0" > /dev/null
  # Every blob pushed is served back whole before anything is measured.
  for i in $(seq 0 $((LAYERS - 1))); do
    [ "sha256:$(curl -s --max-time 60 "http://127.0.0.1:$UPSTREAM_PORT/v2/bench/app/blobs/${digests[$i]}" | sha256sum | cut -d' ' -f1)" = "${digests[$i]}" ] \
      || { log "the upstream does not serve layer $i"; exit 1; }
  done
}

upstream_gets() { # -> "total max-per-blob" since the log line given
  local since=$1 total=0 max=0 i n
  for i in $(seq 0 $((LAYERS - 1))); do
    n=$(tail -n +"$since" "$work/upstream/log" | grep -c "\"GET /v2/bench/app/blobs/${digests[$i]}" || true)
    total=$((total + n)); [ "$n" -gt "$max" ] && max=$n
  done
  echo "$total $max"
}
log_lines() { wc -l < "$work/upstream/log"; }

# ---------------------------------------------------------------------------------------------------------------
# Mirrors.
declare -a mirror_pids
start_mirror() { # index config round cache-dir
  local port=$((MIRROR_PORT + $1)) deadline body
  local env_args=(MIRRORPROXY__LOGGING__LOGLEVEL__DEFAULT=Warning)
  if [ "$2" != file ]; then
    env_args+=(
      "MIRRORPROXY__STORAGE__S3__ENDPOINT=http://127.0.0.1:$RGW_PORT"
      "MIRRORPROXY__STORAGE__S3__BUCKET=$BUCKET"
      "MIRRORPROXY__STORAGE__S3__ACCESSKEY=$s3_access"
      "MIRRORPROXY__STORAGE__S3__SECRETKEY=$s3_secret"
      "MIRRORPROXY__STORAGE__S3__PREFIX=$2-r$3/"
      "MIRRORPROXY__COORDINATION__REDIS=127.0.0.1:$GARNET_PORT"
      "MIRRORPROXY__COORDINATION__KEYPREFIX=mirrorproxy:$2-r$3:")
  fi
  # shellcheck disable=SC2086
  env "${env_args[@]}" $MIRROR_ENV "$program" serve --listen "127.0.0.1:$port" --cache "$4" \
    --upstream "bench.local=http://127.0.0.1:$UPSTREAM_PORT" > "$work/mirror-$2-r$3-$1.log" 2>&1 &
  mirror_pids[$1]=$!; pids+=("$!")
  deadline=$((SECONDS + 60))
  while :; do
    body=$(curl -s --max-time 2 "http://127.0.0.1:$port/readyz" || true)
    if [ "$2" = file ]; then
      case "$body" in *'"ready":true'*) break ;; esac
    else
      case "$body" in *'"sharedStore":"ok"'*'"coordination":"ok"'*) break ;; esac
    fi
    [ $SECONDS -lt $deadline ] || { log "mirror $1 ($2) not ready: $body"; tail -20 "$work/mirror-$2-r$3-$1.log" >&2; exit 1; }
    kill -0 "${mirror_pids[$1]}" 2>/dev/null || { log "mirror $1 ($2) exited"; tail -20 "$work/mirror-$2-r$3-$1.log" >&2; exit 1; }
    sleep 0.05
  done
}

stop_mirror() { # index
  local pid=${mirror_pids[$1]} deadline=$((SECONDS + 15))
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { kill -9 "$pid" 2>/dev/null || true; break; }
    sleep 0.05
  done
  wait "$pid" 2>/dev/null || true
}

# CLIENTS clients at once; client c pulls every layer, starting at layer c, from replica c mod replicas, and checks
# each digest. Prints "MB/s failures".
pull_all() { # first-port replicas [only-replica-index]
  local c started elapsed bad
  : > "$work/bad"
  started=$(now_ms)
  for c in $(seq 0 $((CLIENTS - 1))); do
    (
      port=$(($1 + ${3:-$((c % $2))}))
      for k in $(seq 0 $((LAYERS - 1))); do
        digest=${digests[$(((c + k) % LAYERS))]}
        got=$(curl -s --fail --max-time "$PULL_TIMEOUT" "http://127.0.0.1:$port/v2/bench/app/blobs/$digest" | sha256sum | cut -d' ' -f1)
        [ "sha256:$got" = "$digest" ] || echo "client $c replica $port $digest" >> "$work/bad"
      done
    ) &
  done
  wait_jobs
  elapsed=$(( $(now_ms) - started ))
  bad=$(wc -l < "$work/bad")
  awk -v bytes=$((CLIENTS * LAYERS * LAYER_MB * 1024 * 1024)) -v ms="$elapsed" -v bad="$bad" 'BEGIN { printf "%.0f %d\n", bytes / 1048576 / (ms / 1000), bad }'
}
wait_jobs() { for job in $(jobs -p); do case " ${pids[*]} " in *" $job "*) ;; *) wait "$job" || true ;; esac; done; }

declare -A result
add() { result[$1]="${result[$1]:-}${result[$1]:+ }$2"; }

run_config() { # config round
  local config=$1 round=$2 replicas=1 i started mbps bad since gets_total gets_max
  [ "$config" = replicas ] && replicas=$REPLICAS
  rm -rf "$work/cache-$config"
  started=$(now_ms)
  for i in $(seq 0 $((replicas - 1))); do start_mirror "$i" "$config" "$round" "$work/cache-$config/$i"; done
  add "$config.start" $(( $(now_ms) - started ))

  since=$(( $(log_lines) + 1 ))
  read -r mbps bad < <(pull_all "$MIRROR_PORT" "$replicas")
  read -r gets_total gets_max < <(upstream_gets "$since")
  add "$config.cold" "$mbps"; add "$config.bad" "$bad"; add "$config.gets" "$gets_total"; add "$config.gets.max" "$gets_max"
  log "$config round $round: cold $mbps MB/s, $gets_total upstream GETs for $LAYERS blobs (at most $gets_max per blob), $bad failed"

  since=$(( $(log_lines) + 1 ))
  read -r mbps bad < <(pull_all "$MIRROR_PORT" "$replicas")
  read -r gets_total gets_max < <(upstream_gets "$since")
  add "$config.warm" "$mbps"; add "$config.bad" "$bad"; add "$config.warm.gets" "$gets_total"
  log "$config round $round: warm $mbps MB/s, $gets_total upstream GETs, $bad failed"

  local peak=0 all=""
  for i in $(seq 0 $((replicas - 1))); do
    local kb; kb=$(peak_kb "${mirror_pids[$i]}"); all="$all${all:+/}$(mb "$kb")"
    [ "$kb" -gt "$peak" ] && peak=$kb
  done
  add "$config.rss" "$(mb "$peak")"; add "$config.rss.all" "$all"

  if [ "$config" != file ]; then
    # The first replica again, with an empty read cache: every byte comes from the bucket.
    stop_mirror 0
    rm -rf "$work/cache-$config/0"
    start_mirror 0 "$config" "$round" "$work/cache-$config/0"
    since=$(( $(log_lines) + 1 ))
    read -r mbps bad < <(pull_all "$MIRROR_PORT" "$replicas" 0)
    read -r gets_total gets_max < <(upstream_gets "$since")
    add "$config.bucket" "$mbps"; add "$config.bad" "$bad"; add "$config.bucket.gets" "$gets_total"
    add "$config.rss.bucket" "$(mb "$(peak_kb "${mirror_pids[0]}")")"
    log "$config round $round: from the bucket $mbps MB/s, $gets_total upstream GETs, $bad failed"
  fi
  for i in $(seq 0 $((replicas - 1))); do stop_mirror "$i"; done
  rm -rf "$work/cache-$config"
}

# ---------------------------------------------------------------------------------------------------------------
install_prerequisites
if [ -n "$MIRROR" ]; then
  program=$MIRROR
else
  log "building MirrorProxy (Release, JIT)"
  dotnet publish "$root/src/MirrorProxy" -c Release -o "$work/mirror" -nologo -v quiet > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
  program=$work/mirror/mirrorproxy
fi

log "starting the upstream and pushing $LAYERS layers of $LAYER_MB MiB"
start_upstream
declare -a digests
push_image

log "bringing up Ceph (monitor, OSD, radosgw, S3 user)"
start_ceph
log "Ceph up in $ceph_ms ms (monitor ${step_ms[monitor]}, OSD ${step_ms[osd]}, radosgw ${step_ms[radosgw]}, user ${step_ms[user]})"
log "starting Garnet"
start_garnet
log "Garnet up in $garnet_ms ms"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$ROUNDS"); do
  # The same clients straight at the upstream (distribution reading its own disk): what this machine, the clients'
  # own curl and sha256sum included, allows at the moment.
  read -r mbps bad < <(pull_all "$UPSTREAM_PORT" 1)
  add direct "$mbps"; add direct.bad "$bad"
  log "round $round: the same pulls straight from the upstream $mbps MB/s, $bad failed"
  for config in $CONFIGS; do run_config "$config" "$round"; done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

declare -A engine_rss
engine_rss[ceph-mon]=$(mb "$(peak_kb "$mon_pid")")
engine_rss[ceph-osd]=$(mb "$(peak_kb "$osd_pid")")
engine_rss[radosgw]=$(mb "$(peak_kb "$rgw_pid")")
engine_rss[garnet]=$(mb "$(peak_kb "$garnet_pid")")
bucket_kb=$(timeout 30 radosgw-admin -c "$ceph_conf" bucket stats --bucket="$BUCKET" 2>/dev/null | jq -r '.usage["rgw.main"].size_kb // 0' || echo "?")

median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
range() { printf '%s\n' "$@" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "–" hi }'; }
# "median (min–max)" over rounds, or n/a
figure() { # key
  local values=${result[$1]:-}
  [ -n "$values" ] || { echo n/a; return; }
  # shellcheck disable=SC2086
  if [ "$ROUNDS" = 1 ]; then echo "$values"; else echo "$(median $values) ($(range $values))"; fi
}
sum() { local s=0 v; for v in $1; do s=$((s + v)); done; echo $s; }
maxof() { local m=0 v; for v in $1; do [ "$v" -gt "$m" ] && m=$v; done; echo $m; }

label() { case $1 in file) echo "one mirror, file store" ;; s3) echo "one mirror, S3 + Garnet" ;; replicas) echo "$REPLICAS replicas, S3 + Garnet" ;; esac; }

printf '\nMirrorProxy replicas harness: %s, %s cores, %s clients, %s layers of %s MiB (%s MiB per pull phase), %s round(s), loopback\n\n' \
  "$(uname -m)" "$(nproc)" "$CLIENTS" "$LAYERS" "$LAYER_MB" $((CLIENTS * LAYERS * LAYER_MB)) "$ROUNDS"
printf 'Load average (1, 5, 15 min) before the pulls %s, after %s.\n' "$load_before" "$load_after"
printf 'The same pulls straight from the upstream (no mirror): %s MB/s.\n' "$(figure direct)"
printf 'Bring-up: Ceph from nothing to an S3 user %s ms (monitor %s, OSD %s, radosgw and its pools %s, user %s); Garnet to PONG %s ms.\n\n' \
  "$ceph_ms" "${step_ms[monitor]}" "${step_ms[osd]}" "${step_ms[radosgw]}" "${step_ms[user]}" "$garnet_ms"
printf '| measure |'; for config in $CONFIGS; do printf ' %s |' "$(label "$config")"; done
printf '\n|---|'; for _ in $CONFIGS; do printf -- '---|'; done; printf '\n'
row() { printf '| %s |' "$1"; shift; local config; for config in $CONFIGS; do printf ' %s |' "$("$@" "$config")"; done; printf '\n'; }
fig() { figure "$2.$1"; }
gets() { local v=${result[$1.gets]:-}; [ -n "$v" ] && echo "$(maxof "${result[$1.gets.max]}") per blob, $(sum "$v") in all over $ROUNDS round(s) of $LAYERS blobs" || echo n/a; }
other_gets() { local v=${result[$2.$1]:-}; [ -n "$v" ] && sum "$v" || echo n/a; }
each() { local v=${result[$2.$1]:-}; [ -n "$v" ] && echo "${v// /; }" || echo n/a; }
row "mirrors ready, started one after another (ms)" fig start
row "cold pull, MB/s" fig cold
row "upstream GETs, cold" gets
row "warm pull (read cache), MB/s" fig warm
row "upstream GETs, warm" other_gets warm.gets
row "from the bucket (first replica restarted empty), MB/s" fig bucket
row "upstream GETs, from the bucket" other_gets bucket.gets
row "peak RSS per mirror after cold + warm, MB (largest replica)" fig rss
row "peak RSS of each replica, MB, per round" each rss.all
row "peak RSS of the restarted replica after the bucket pull, MB" fig rss.bucket
row "failed pulls (wrong digest or error)" other_gets bad
printf '\nPeak RSS after the run: ceph-mon %s MB, ceph-osd %s MB, radosgw %s MB, garnet %s MB. Bucket holds %s KiB.\n' \
  "${engine_rss[ceph-mon]}" "${engine_rss[ceph-osd]}" "${engine_rss[radosgw]}" "${engine_rss[garnet]}" "$bucket_kb"
[ "$(sum "${result[direct.bad]:-0}")" = 0 ] || printf '\nWARNING: %s failed pulls straight from the upstream\n' "$(sum "${result[direct.bad]}")"
for config in $CONFIGS; do
  [ "$(sum "${result[$config.bad]:-0}")" = 0 ] || printf '\nWARNING: %s: %s failed pulls; its figures are not valid\n' "$config" "$(sum "${result[$config.bad]}")"
done
