#!/usr/bin/env bash
# Offline-readiness check: could this cluster keep running if the internet went away now?
#
#   images        every image the cluster's pods use (and every chart in CHARTS) is complete in the mirror (mirrorproxy check)
#   dns           the internal names (mirror.internal by default) resolve on this host
#   time          this host's clock is synchronised (chrony), so certificates stay valid
#   certificates  every cert-manager Certificate is Ready
#
# Each step prints one verdict line, `PASS <step>: ...` or `FAIL <step>: ...` (details indented below
# it), then one overall line. Exits 0 only when every step passed. A step whose tool is missing fails.
# Run it on a node (dns and time are checked on the host it runs on) with kubectl access to the cluster.
#
# Environment (defaults in brackets):
#   MIRROR_URL   the mirror [https://mirror.internal:5000]
#   MIRROR_CA    the CA certificate of the mirror's certificate, passed as --ca (or set SSL_CERT_FILE) []
#   PLATFORMS    platforms that must be complete: all, or e.g. linux/arm64 [all]
#   DNS_NAMES    names that must resolve, separated by spaces or commas [mirror.internal]
#   CHARTS       Helm charts that must be complete too, separated by spaces: helm:REPOSITORY/CHART@VERSION []
#   KUBECTL, MIRRORPROXY, CHRONYC, GETENT   the commands to run [kubectl, mirrorproxy, chronyc, getent]
set -euo pipefail

if [[ $# -gt 0 ]]; then
  case $1 in
    -h | --help)
      sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
      exit 0
      ;;
    *)
      echo "usage: $0 (settings come from the environment; --help lists them)" >&2
      exit 2
      ;;
  esac
fi

KUBECTL=${KUBECTL:-kubectl}
MIRRORPROXY=${MIRRORPROXY:-mirrorproxy}
CHRONYC=${CHRONYC:-chronyc}
GETENT=${GETENT:-getent}
MIRROR_URL=${MIRROR_URL:-https://mirror.internal:5000}
MIRROR_CA=${MIRROR_CA:-}
PLATFORMS=${PLATFORMS:-all}
DNS_NAMES=${DNS_NAMES:-mirror.internal}
CHARTS=${CHARTS:-}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

steps=0
failed=()

pass() {
  local step=$1
  shift
  steps=$((steps + 1))
  printf 'PASS %s: %s\n' "$step" "$*"
}

fail() {
  local step=$1
  shift
  steps=$((steps + 1))
  failed+=("$step")
  printf 'FAIL %s: %s\n' "$step" "$*"
}

# Indented detail lines under a verdict.
details() {
  local line
  while IFS= read -r line; do
    [[ -n $line ]] && printf '    %s\n' "$line"
  done
  return 0
}

have() {
  command -v "$1" >/dev/null 2>&1
}

# The last non-empty line of a file, for error messages.
last_line() {
  local line last=""
  while IFS= read -r line || [[ -n $line ]]; do
    [[ -n $line ]] && last=$line
  done <"$1"
  printf '%s' "${last:-no output}"
}

check_images() {
  if ! have "$KUBECTL"; then
    fail images "cannot list pod images: '$KUBECTL' not found (install kubectl or set KUBECTL)"
    return 0
  fi
  if ! have "$MIRRORPROXY"; then
    fail images "cannot check the mirror: '$MIRRORPROXY' not found (install mirrorproxy or set MIRRORPROXY)"
    return 0
  fi

  local images
  if ! images=$("$KUBECTL" get pods -A -o jsonpath='{..image}' 2>"$work/kubectl.err"); then
    fail images "kubectl get pods failed: $(last_line "$work/kubectl.err")"
    return 0
  fi
  if [[ -z ${images//[[:space:]]/} ]]; then
    fail images "kubectl listed no pod images"
    return 0
  fi

  local rc=0 ca=() charts=()
  [[ -n $MIRROR_CA ]] && ca=(--ca "$MIRROR_CA")
  read -r -a charts <<<"$CHARTS"
  # The mirror's own image is reported as not mirrored (nodes side-load it), which does not fail the check.
  { printf '%s\n' "$images"; [[ ${#charts[@]} -eq 0 ]] || printf '%s\n' "${charts[@]}"; } |
    "$MIRRORPROXY" check --server "$MIRROR_URL" "${ca[@]}" --images - --platform "$PLATFORMS" >"$work/check.out" 2>"$work/check.err" || rc=$?

  # One line per image, then a summary line: the summary goes into the verdict, every image that is not
  # OK (and anything on stderr) below it.
  local summary
  if [[ -s $work/check.out ]]; then
    summary=$(last_line "$work/check.out")
    grep -v -e '^OK ' -e '^[[:space:]]*$' "$work/check.out" | sed '$d' >"$work/check.problems" || true
  else
    summary=$(last_line "$work/check.err")
    sed '$d' "$work/check.err" >"$work/check.problems"
    : >"$work/check.err"
  fi
  if [[ $rc -eq 0 ]]; then
    pass images "$summary"
  else
    fail images "$summary (mirrorproxy check exited $rc)"
  fi
  details <"$work/check.problems"
  details <"$work/check.err"
}

check_dns() {
  if ! have "$GETENT"; then
    fail dns "cannot resolve names: '$GETENT' not found (set GETENT)"
    return 0
  fi

  local name answer address resolved=() unresolved=()
  for name in ${DNS_NAMES//,/ }; do
    if answer=$("$GETENT" hosts "$name" 2>/dev/null) && [[ -n $answer ]]; then
      read -r address _ <<<"$answer"
      resolved+=("$name -> $address")
    else
      unresolved+=("$name")
    fi
  done

  if [[ ${#resolved[@]} -eq 0 && ${#unresolved[@]} -eq 0 ]]; then
    fail dns "DNS_NAMES is empty"
  elif [[ ${#unresolved[@]} -eq 1 ]]; then
    fail dns "${unresolved[0]} does not resolve"
  elif [[ ${#unresolved[@]} -gt 1 ]]; then
    local joined
    joined=$(printf '%s, ' "${unresolved[@]}")
    fail dns "${joined%, } do not resolve"
  else
    local joined
    joined=$(printf '%s, ' "${resolved[@]}")
    pass dns "${joined%, }"
  fi
}

check_time() {
  if ! have "$CHRONYC"; then
    fail time "cannot check clock synchronisation: '$CHRONYC' not found (install chrony or set CHRONYC)"
    return 0
  fi

  local tracking
  if ! tracking=$("$CHRONYC" tracking 2>&1); then
    printf '%s\n' "$tracking" >"$work/chronyc.out"
    fail time "chronyc tracking failed: $(last_line "$work/chronyc.out")"
    return 0
  fi

  local leap reference
  leap=$(sed -n 's/^Leap status *: *//p' <<<"$tracking")
  reference=$(sed -n 's/^Reference ID *: *//p' <<<"$tracking")
  if [[ $leap == "Normal" ]]; then
    pass time "clock synchronised (Leap status Normal, reference ${reference:-unknown})"
  else
    fail time "clock not synchronised (Leap status: ${leap:-not reported by chronyc tracking})"
  fi
}

check_certificates() {
  if ! have "$KUBECTL"; then
    fail certificates "cannot list certificates: '$KUBECTL' not found (install kubectl or set KUBECTL)"
    return 0
  fi

  local listing
  local jsonpath='{range .items[*]}{.metadata.namespace}{"/"}{.metadata.name}{"\t"}{.status.conditions[?(@.type=="Ready")].status}{"\t"}{.status.notAfter}{"\n"}{end}'
  if ! listing=$("$KUBECTL" get certificates.cert-manager.io -A -o jsonpath="$jsonpath" 2>"$work/certs.err"); then
    fail certificates "kubectl get certificates failed: $(last_line "$work/certs.err")"
    return 0
  fi

  local name ready not_after total=0 not_ready=() next_name="" next_expiry=""
  while IFS=$'\t' read -r name ready not_after; do
    [[ -z $name ]] && continue
    total=$((total + 1))
    if [[ $ready != "True" ]]; then
      not_ready+=("$name (Ready=${ready:-unknown})")
    elif [[ -n $not_after && ( -z $next_expiry || $not_after < "$next_expiry" ) ]]; then
      next_expiry=$not_after
      next_name=$name
    fi
  done <<<"$listing"

  if [[ $total -eq 0 ]]; then
    fail certificates "no cert-manager Certificates found (the mirror's own should be there)"
  elif [[ ${#not_ready[@]} -gt 0 ]]; then
    fail certificates "${#not_ready[@]} of $total Certificates not Ready"
    printf '%s\n' "${not_ready[@]}" | details
  else
    pass certificates "$total of $total Certificates Ready${next_expiry:+, next expiry $next_expiry ($next_name)}"
  fi
}

check_images
check_dns
check_time
check_certificates

if [[ ${#failed[@]} -eq 0 ]]; then
  echo "PASS overall: $steps of $steps checks passed"
else
  list=$(printf '%s, ' "${failed[@]}")
  echo "FAIL overall: ${#failed[@]} of $steps checks failed (${list%, })"
  exit 1
fi
