#!/usr/bin/env bash
# Scale harness: how start-up, memory and eviction grow with the number of cached objects.
#
#   benchmarks/scale/run.sh                    # 1,000,000 objects, JIT and Native AOT builds
#   OBJECTS=100000 AOT=0 benchmarks/scale/run.sh
#
# For each build: an empty cache, then a generated cache of OBJECTS small blobs and TAGS tags (no index: the
# first start builds it in the background), then a start after a clean stop, a start after kill -9, and an
# eviction pass that frees a tenth of the budget. Each start makes one blob request at once (a hit, a miss on the
# empty cache) before its RSS is taken 5 s after the start. After the clean stop, HITS random hits are timed (and
# again with the page cache dropped, when run as root); EVICTION_HITS more while a second eviction pass runs. Then the
# index's disk use after CHURN tag updates. Every wait has a deadline, every loop a count; loopback only.
set -euo pipefail

OBJECTS=${OBJECTS:-1000000}
TAGS=${TAGS:-10000}
CHURN=${CHURN:-10000000}
AOT=${AOT:-1}
PORT=${PORT:-15500}
HITS=${HITS:-1000}
EVICTION_HITS=${EVICTION_HITS:-10000}

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/mirrorproxy-scale.XXXXXX)
pid=""
cleanup() {
  local status=$?
  [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true
  if [ "$status" != 0 ] && [ -n "${result[*]:-}" ]; then # a failed run still reports what it measured
    for key in "${!result[@]}"; do printf '%s: %s\n' "$key" "${result[$key]}"; done | sort >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
rss_mb() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# CPU time (user + system) the process has used, in ms: start-up cost apart from waiting for a busy machine's cores.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%d", ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }
peak_mb() { awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
ready_field() { curl -s --max-time 2 "http://127.0.0.1:$PORT/readyz" | sed -n "s/.*\"$1\":\"\([a-z-]*\)\".*/\1/p"; }

# Starts the program on a cache; sets pid, and ready_ms to "wall / CPU" milliseconds until /readyz answers 200. Not
# run in a command substitution: that subshell would keep pid to itself and leave the mirror running.
start() { # program cache [extra flags...]
  local program=$1 cache=$2; shift 2
  local started; started=$(now_ms)
  env MIRRORPROXY__LOGGING__LOGLEVEL__DEFAULT=Information "$program" serve --listen "127.0.0.1:$PORT" --cache "$cache" \
    --upstream "bench.local=http://127.0.0.1:9" "$@" > "$work/mirror.log" 2>&1 &
  pid=$!
  local deadline=$((SECONDS + 120))
  until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$PORT/readyz")" = 200 ]; do
    [ $SECONDS -lt $deadline ] || { log "mirror did not become ready"; tail -20 "$work/mirror.log" >&2; exit 1; }
    sleep 0.02
  done
  ready_ms="$(( $(now_ms) - started )) / $(cpu_ms "$pid")"
}

stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
crash() { kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

blob_url() { echo "http://127.0.0.1:$PORT/v2/scale/app/blobs/$1?ns=bench.local"; } # digest

# A cached object, fetched and checked against its digest.
hit() { # index (taken modulo OBJECTS)
  local digest; digest=$(dotnet "$bench" object-digest "$(( $1 % OBJECTS ))")
  local got; got=$(curl -s --max-time 5 "$(blob_url "$digest")" | sha256sum | cut -d' ' -f1)
  [ "sha256:$got" = "$digest" ] && echo ok || echo "WRONG"
}

# The status of one blob request. The empty-cache run makes it too (a miss there, answered by the unreachable
# upstream), so that every "RSS 5 s after start" holds what a first blob request loads, as the other starts' hits do.
request_status() { # index
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$(blob_url "$(dotnet "$bench" object-digest "$1")")"
}

wait_evicted() { # until the mirror logs its eviction pass
  local deadline=$((SECONDS + 600))
  until grep -q "Evicted .* objects" "$work/mirror.log"; do
    [ $SECONDS -lt $deadline ] || { log "no eviction pass logged"; tail -5 "$work/mirror.log" >&2; exit 1; }
    sleep 0.5
  done
}

wait_index_ready() { # prints seconds until the index reports ready
  local started=$SECONDS deadline=$((SECONDS + 900))
  until [ "$(ready_field index)" = ready ]; do
    [ $SECONDS -lt $deadline ] || { log "index not rebuilt in time"; exit 1; }
    sleep 0.5
  done
  echo $((SECONDS - started))
}

log "building (Release)"
dotnet build "$root/benchmarks/MirrorProxy.Benchmarks" -c Release -nologo -v quiet > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
bench="$root/benchmarks/MirrorProxy.Benchmarks/bin/Release/net10.0/MirrorProxy.Benchmarks.dll"
dotnet publish "$root/src/MirrorProxy" -c Release -o "$work/jit" -nologo -v quiet > "$work/build-jit.log" 2>&1 || { cat "$work/build-jit.log"; exit 1; }
programs=("jit:$work/jit/mirrorproxy")
if [ "$AOT" = 1 ]; then
  dotnet publish "$root/src/MirrorProxy" -c Release -r linux-x64 -p:PublishAot=true -o "$work/aot" -nologo -v quiet > "$work/build-aot.log" 2>&1 || { cat "$work/build-aot.log"; exit 1; }
  programs+=("aot:$work/aot/mirrorproxy")
fi

log "generating $OBJECTS objects and $TAGS tags"
dotnet "$bench" generate-cache "$work/generated" "$OBJECTS" "$TAGS" >&2
total_bytes=$((OBJECTS * 100))

declare -A result
for entry in "${programs[@]}"; do
  name=${entry%%:*}; program=${entry#*:}
  log "$name: empty cache"
  rm -rf "$work/empty"
  start "$program" "$work/empty"; result[$name.empty.ready]=$ready_ms; result[$name.empty.request]=$(request_status 12345)
  sleep 5; result[$name.empty.rss]=$(rss_mb "$pid"); stop

  log "$name: first start on $OBJECTS objects (index built in the background)"
  rm -rf "$work/cache"; cp -a "$work/generated" "$work/cache"
  start "$program" "$work/cache" --max-cache-size 1TiB; result[$name.first.ready]=$ready_ms
  result[$name.first.hit]=$(hit 12345)
  result[$name.first.rebuild]=$(wait_index_ready)
  result[$name.first.peak]=$(peak_mb "$pid")
  stop

  log "$name: start after a clean stop"
  start "$program" "$work/cache"; result[$name.clean.ready]=$ready_ms
  result[$name.clean.index]=$(ready_field index)
  result[$name.clean.hit]=$(hit 777777)
  sleep 5; result[$name.clean.rss]=$(rss_mb "$pid")
  # The first look-ups of records the index read no further than its recovery: after the start (whose seal check
  # has just read the index log), and again with the page cache dropped, as after a reboot (root only).
  result[$name.clean.hits]=$(dotnet "$bench" hit-latency "http://127.0.0.1:$PORT/" "$OBJECTS" "$HITS" 1)
  if [ -w /proc/sys/vm/drop_caches ]; then
    sync; echo 3 > /proc/sys/vm/drop_caches
    result[$name.clean.cold]=$(dotnet "$bench" hit-latency "http://127.0.0.1:$PORT/" "$OBJECTS" "$HITS" 2)
  fi

  log "$name: start after kill -9"
  crash
  start "$program" "$work/cache"; result[$name.crash.ready]=$ready_ms
  result[$name.crash.hit]=$(hit 424242)
  sleep 5; result[$name.crash.rss]=$(rss_mb "$pid")
  wait_index_ready > /dev/null
  stop

  log "$name: eviction of a tenth of the budget"
  start "$program" "$work/cache" --max-cache-size "$((total_bytes - 1))"; result[$name.evict.ready]=$ready_ms
  wait_evicted
  result[$name.evict.line]=$(grep -o "Evicted .*" "$work/mirror.log" | head -1)
  result[$name.evict.peak]=$(peak_mb "$pid")
  stop

  log "$name: another eviction pass, with hits made one after another from the start"
  left=$(grep -o "cache now [0-9]* bytes" "$work/mirror.log" | head -1 | tr -dc 0-9)
  start "$program" "$work/cache" --max-cache-size "$((left - 1))"
  # Objects the pass evicts before they are asked for are not served (the upstream is unreachable).
  dotnet "$bench" hit-latency "http://127.0.0.1:$PORT/" "$OBJECTS" "$EVICTION_HITS" 3 > "$work/eviction-hits.txt" &
  hits_pid=$!
  wait_evicted
  hits_done=$( [ -d "/proc/$hits_pid" ] && echo "after the pass" || echo "before the pass" )
  wait "$hits_pid" || { log "hits during the eviction pass failed"; cat "$work/eviction-hits.txt" >&2; exit 1; }
  result[$name.evict_load.hits]="$(cat "$work/eviction-hits.txt") (ended $hits_done)"
  result[$name.evict_load.line]=$(grep -o "Evicted .*\|Eviction scan .*\|Cache still over budget .*" "$work/mirror.log" | paste -sd '|' | sed 's/|/; then /g')
  result[$name.evict_load.peak]=$(peak_mb "$pid")
  stop
done

log "index disk use after $CHURN tag updates over $TAGS tags"
result[churn]=$(dotnet "$bench" index-churn "$work/churn" "$CHURN" "$TAGS")

printf '\nMirrorProxy scale harness: %s, %s cores, %s objects of 100 bytes, %s tags\n\n' "$(uname -m)" "$(nproc)" "$OBJECTS" "$TAGS"
printf '| measure |'; for entry in "${programs[@]}"; do printf ' %s |' "${entry%%:*}"; done
printf '\n|---|'; for _ in "${programs[@]}"; do printf -- '---|'; done; printf '\n'
row() { printf '| %s |' "$1"; for entry in "${programs[@]}"; do printf ' %s |' "${result[${entry%%:*}.$2]:-n/a}"; done; printf '\n'; }
row "empty cache: ready, wall / CPU (ms)" empty.ready
row "empty cache: a blob request at once (HTTP status of the miss)" empty.request
row "empty cache: RSS 5 s after start (MB)" empty.rss
row "first start, no index: ready, wall / CPU (ms)" first.ready
row "first start: a hit served at once" first.hit
row "first start: index rebuilt in the background (s)" first.rebuild
row "first start: peak RSS (MB)" first.peak
row "after a clean stop: ready, wall / CPU (ms)" clean.ready
row "after a clean stop: index state at ready" clean.index
row "after a clean stop: a hit served at once" clean.hit
row "after a clean stop: RSS 5 s after start (MB)" clean.rss
row "after a clean stop: $HITS random hits, one at a time" clean.hits
row "the same with the page cache dropped" clean.cold
row "after kill -9: ready, wall / CPU (ms)" crash.ready
row "after kill -9: a hit served at once" crash.hit
row "after kill -9: RSS 5 s after start (MB)" crash.rss
row "eviction of a tenth of the budget" evict.line
row "eviction: peak RSS (MB)" evict.peak
row "next eviction pass, with hits from the start" evict_load.line
row "next eviction pass: $EVICTION_HITS random hits from the start, one at a time" evict_load.hits
row "next eviction pass: peak RSS (MB)" evict_load.peak
printf '\n%s\n' "${result[churn]}"
