#!/usr/bin/env bash
# Installs what the tests need (Debian packages: a real upstream registry, real clients) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# A real upstream (CNCF distribution), real clients (skopeo, containerd), htpasswd for the basic-auth upstream,
# qemu with arm64 libraries to run the linux-arm64 builds as a Raspberry Pi would, and clang, lld and the arm64
# C libraries to cross-compile the Native AOT arm64 build as the Dockerfile does; openssl, zstd and node (with its
# npm, for the JS Sigstore verifier; it needs node 20.17 or later) check air-gap bundles with tools other than ours.
packages=(docker-registry skopeo containerd apache2-utils openssl zstd nodejs qemu-user-static libc6:arm64 libstdc++6:arm64 libgcc-s1:arm64 libssl3:arm64
  clang lld llvm libc6-dev:arm64 libstdc++-12-dev:arm64 libgcc-12-dev:arm64 zlib1g-dev:arm64)
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
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$status"
