#!/usr/bin/env bash
# S3 client harness: the mirror's own signed requests (S3Client) against AWSSDK.S3 and Minio, on a real single-host
# Ceph RGW on loopback, measured in one run on this machine.
#
#   benchmarks/s3/run.sh                   # throughput and allocations, then a Native AOT probe of each client
#   ROUNDS=9 AOT=0 benchmarks/s3/run.sh    # more rounds, no AOT publishes
#   benchmarks/s3/run.sh serve             # only the RGW, for experiments: prints its endpoint and keys, stops
#                                          # at Ctrl-C (or after an hour)
#
# The clients take turns (own aws aws-chunked minio, then aws aws-chunked minio own, ...) for ROUNDS rounds after one
# warm-up round, so that noise on the machine falls on all of them alike. Then, one at a time (never two builds at
# once), a Native AOT publish of the same program with only one client compiled in; the binary PUTs and GETs 1 MiB and
# 16 MiB against the same RGW. It exits non-zero when a measured operation failed (listed under the tables).
# Every wait has a deadline; the daemons are stopped by PID and their directory is deleted on exit.
set -euo pipefail
# A CA bundle given to the AWS SDK through the environment is not this endpoint's business (it is plain http).
unset AWS_CA_BUNDLE

ROUNDS=${ROUNDS:-5}
AOT=${AOT:-1}
CLIENTS=${CLIENTS:-own,aws,aws-chunked,minio}
BASE_PORT=${BASE_PORT:-15600} # ceph-mon, radosgw
MON_PORT=$BASE_PORT
RGW_PORT=$((BASE_PORT + 1))

root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=../lib/ceph.sh
. "$root/benchmarks/lib/ceph.sh"
project="$root/benchmarks/s3/S3Clients"
# bluestore opens its block file with O_DIRECT, which tmpfs refuses.
base=/tmp
[ "$(stat -f -c %T /tmp)" != tmpfs ] || base=/var/tmp
work=$(mktemp -d "$base/mirrorproxy-s3bench.XXXXXX")
pids=()
cleanup() {
  # radosgw first, then the OSD, then the monitor (as the integration tests stop them).
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  local deadline=$((SECONDS + 15))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

install_prerequisites() {
  local missing=()
  for package in ceph-mon ceph-osd radosgw ceph-common curl clang lld; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# A tool with a bound, its output in the log; fails the run with the log's tail.
run() { # what command...
  local what=$1; shift
  if ! timeout 60 env -u CEPH_CONF -u CEPH_ARGS LC_ALL=C "$@" >> "$work/log/$what.out" 2>&1; then
    log "$what failed: $*"; tail -20 "$work/log/$what.out" >&2; exit 1
  fi
}

daemon() { # name command...
  local name=$1; shift
  env -u CEPH_CONF -u CEPH_ARGS LC_ALL=C "$@" > "$work/log/$name.out" 2>&1 &
  pids+=($!)
}

# One monitor (msgr2 on MON_PORT), one bluestore OSD on a sparse file, pools of size 1, cephx, radosgw (beast) on
# RGW_PORT and one S3 user: the steps of the integration tests' CephRgw engine, in shell.
start_ceph() {
  mkdir -p "$work"/{run,log,mon,osd/0,rgw,crash,keyring}
  local conf="$work/ceph.conf" fsid; fsid=$(cat /proc/sys/kernel/random/uuid)
  write_ceph_conf "$conf" "$work" "$fsid" "$MON_PORT" "$RGW_PORT" 17179869184
  local k="$work/keyring"
  log "ceph: monitor on 127.0.0.1:$MON_PORT"
  run mon ceph-authtool --create-keyring "$k/mon-mkfs.keyring" --gen-key -n mon. --cap mon 'allow *'
  run mon ceph-authtool --create-keyring "$k/client.admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *'
  run mon ceph-authtool "$k/mon-mkfs.keyring" --import-keyring "$k/client.admin.keyring"
  run mon monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$MON_PORT]" "$work/monmap"
  run mon ceph-mon -c "$conf" -i a --mkfs --monmap "$work/monmap" --keyring "$k/mon-mkfs.keyring"
  daemon mon ceph-mon -c "$conf" -i a -f

  log "ceph: OSD"
  local key uuid id; key=$(ceph-authtool --gen-print-key); uuid=$(cat /proc/sys/kernel/random/uuid)
  printf '{"cephx_secret":"%s"}' "$key" > "$work/osd-secrets.json"
  id=$(timeout 60 env -u CEPH_CONF -u CEPH_ARGS ceph -c "$conf" --connect-timeout 30 osd new "$uuid" -i "$work/osd-secrets.json" 2>> "$work/log/osd.out")
  [ "$id" = 0 ] || { log "ceph osd new printed '$id'"; tail -20 "$work/log/osd.out" >&2; exit 1; }
  run osd ceph-authtool --create-keyring "$k/osd.0.keyring" --name osd.0 --add-key "$key"
  run osd ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$uuid" --no-mon-config
  daemon osd ceph-osd -c "$conf" -i 0 -f

  log "ceph: radosgw on 127.0.0.1:$RGW_PORT"
  run rgw ceph -c "$conf" --connect-timeout 30 auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' -o "$k/client.rgw.a.keyring"
  daemon rgw radosgw -c "$conf" -n client.rgw.a -f
  local deadline=$((SECONDS + 120))
  until curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$RGW_PORT/"; do
    [ $SECONDS -lt $deadline ] || { log "radosgw did not answer"; tail -20 "$work/log/client.rgw.a.log" >&2; exit 1; }
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || { log "a ceph daemon exited"; tail -20 "$work"/log/*.out >&2; exit 1; }; done
    sleep 0.2
  done

  run user radosgw-admin -c "$conf" user create --uid=bench --display-name="S3 client benchmark"
  S3_ACCESS_KEY=$(sed -n 's/.*"access_key": "\([^"]*\)".*/\1/p' "$work/log/user.out" | head -1)
  S3_SECRET_KEY=$(sed -n 's/.*"secret_key": "\([^"]*\)".*/\1/p' "$work/log/user.out" | head -1)
  [ -n "$S3_ACCESS_KEY" ] && [ -n "$S3_SECRET_KEY" ] || { log "radosgw-admin printed no keys"; cat "$work/log/user.out" >&2; exit 1; }
  export S3_ENDPOINT="http://127.0.0.1:$RGW_PORT" S3_ACCESS_KEY S3_SECRET_KEY
}

install_prerequisites
if [ "${1:-}" = serve ]; then
  start_ceph
  printf 'export S3_ENDPOINT=%s S3_ACCESS_KEY=%s S3_SECRET_KEY=%s\n' "$S3_ENDPOINT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY"
  sleep 3600 &
  pids+=($!)
  wait $! || true
  exit 0
fi
log "building (Release)"
dotnet build "$project" -c Release -nologo -v quiet > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
start_ceph

log "measuring: $CLIENTS, $ROUNDS rounds"
bench_status=0
dotnet "$project/bin/Release/net10.0/MirrorProxy.Benchmarks.S3.dll" bench --rounds "$ROUNDS" --clients "$CLIENTS" --bucket bench > "$work/bench.md" || bench_status=$?

aot_rows=()
if [ "$AOT" = 1 ]; then
  for client in own aws minio; do
    log "Native AOT publish with only '$client' compiled in"
    out="$work/aot-$client"
    # One publish at a time; warnings stay warnings here (they are what is counted), one line each.
    # Its own artifacts directory (MirrorProxy.Core included): nothing is shared with the build above or the next publish.
    if dotnet publish "$project" -c Release -r linux-x64 -p:PublishAot=true -p:OnlyClient="$client" -p:TreatWarningsAsErrors=false \
      -p:TrimmerSingleWarn=false --artifacts-path "$work/artifacts-$client" -o "$out" -nologo > "$work/aot-$client.log" 2>&1; then
      published=yes
    else
      published=no
    fi
    # Each warning once (MSBuild prints some twice, with and without the source line).
    { grep -oE 'warning IL[23][0-9]{3}[^[]*' "$work/aot-$client.log" || true; } | sed 's/ *$//' | sort -u > "$work/aot-$client.warnings"
    warnings=$(wc -l < "$work/aot-$client.warnings")
    codes=$(awk '{print $2}' "$work/aot-$client.warnings" | tr -d : | sort | uniq -c | awk '{printf "%s%s×%s", sep, $2, $1; sep=", "}')
    size="n/a"; works="n/a"
    if [ "$published" = yes ]; then
      size=$(awk -v b="$(stat -c %s "$out/MirrorProxy.Benchmarks.S3")" 'BEGIN { printf "%.1f MB", b / 1e6 }')
      works=$(timeout 120 "$out/MirrorProxy.Benchmarks.S3" probe --bucket "aot-$client" 2>&1 | tail -1) || true
    else
      tail -5 "$work/aot-$client.log" >&2
    fi
    aot_rows+=("| $client | $published | $warnings${codes:+ ($codes)} | $size | $works |")
  done
fi

printf '\nS3 clients on Ceph RGW %s (loopback), %s: %s (%s), %s cores, %s GiB, .NET SDK %s, %s rounds\n\n' \
  "$(radosgw --version 2>/dev/null | awk '{print $3}')" "$(date -u +%Y-%m-%d)" "$(uname -m)" \
  "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)" "$(nproc)" \
  "$(awk '/^MemTotal/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)" "$(dotnet --version)" "$ROUNDS"
cat "$work/bench.md"
if [ ${#aot_rows[@]} -gt 0 ]; then
  printf '\nNative AOT (linux-x64), the same program with only that client compiled in: PUT and GET of 1 MiB and 16 MiB (SHA-256 checked), a conditional PUT:\n\n'
  printf '| client | published | trim/AOT warnings (IL2xxx/IL3xxx, distinct) | binary | against RGW |\n|---|---|---|---|---|\n'
  printf '%s\n' "${aot_rows[@]}"
fi
[ "$bench_status" = 0 ] || { log "some measured operations failed (listed under the tables)"; exit "$bench_status"; }
