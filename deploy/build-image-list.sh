#!/usr/bin/env bash
# Builds the warm-up image list from what the cluster runs and writes it to the ConfigMap
# mirrorproxy-images (key images.txt), which the nightly warm-up CronJob reads.
#
#   deploy/build-image-list.sh [--extra FILE] [--merge] [--print]
#
# Sources: the images of every pod (`kubectl get pods -A -o jsonpath='{..image}'`) and of every CronJob's
# pod template (their pods exist only while they run). Bare image IDs (sha256:...) are dropped, the rest
# deduplicated and sorted. The mirror's own images (pods and CronJobs labelled
# app.kubernetes.io/part-of=mirrorproxy in NAMESPACE) are left out: the mirror cannot serve its own image,
# which every node has side-loaded (deploy/README.md, step 2).
#   --extra FILE  also add the images listed in FILE (one or more a line; # starts a comment), e.g.
#                 images of workloads that are scaled to zero or not deployed yet
#   --merge       keep the images already in the ConfigMap (nothing the cluster once needed is dropped)
#   --print       print the list instead of writing the ConfigMap
# Environment: KUBECTL [kubectl], NAMESPACE [mirrorproxy].
set -euo pipefail

KUBECTL=${KUBECTL:-kubectl}
NAMESPACE=${NAMESPACE:-mirrorproxy}
CONFIGMAP=mirrorproxy-images

extra=()
merge=false
print=false
while [[ $# -gt 0 ]]; do
  case $1 in
    --extra)
      [[ $# -ge 2 ]] || { echo "--extra needs a file" >&2; exit 2; }
      [[ -r $2 ]] || { echo "cannot read $2" >&2; exit 2; }
      extra+=("$2")
      shift 2
      ;;
    --merge) merge=true; shift ;;
    --print) print=true; shift ;;
    -h | --help)
      sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
      exit 0
      ;;
    *)
      echo "unknown argument: $1 (--help for usage)" >&2
      exit 2
      ;;
  esac
done

if ! command -v "$KUBECTL" >/dev/null 2>&1; then
  echo "'$KUBECTL' not found (install kubectl or set KUBECTL)" >&2
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

{
  "$KUBECTL" get pods -A -o jsonpath='{..image}'
  printf '\n'
  "$KUBECTL" get cronjobs -A -o jsonpath='{..image}'
  printf '\n'
  for file in "${extra[@]}"; do
    sed 's/#.*//' "$file"
  done
  if $merge; then
    # A missing ConfigMap is a first run: nothing to merge.
    if "$KUBECTL" -n "$NAMESPACE" get configmap "$CONFIGMAP" >/dev/null 2>&1; then
      "$KUBECTL" -n "$NAMESPACE" get configmap "$CONFIGMAP" -o jsonpath='{.data.images\.txt}'
    fi
  fi
} >"$work/raw"

# The mirror's own images, to leave out. No such pods (a first install) leaves nothing out.
"$KUBECTL" -n "$NAMESPACE" get pods,cronjobs -l app.kubernetes.io/part-of=mirrorproxy -o jsonpath='{..image}' \
  2>/dev/null >"$work/own.raw" || : >"$work/own.raw"
tr -s '[:space:]' '\n' <"$work/own.raw" | grep -v '^$' | LC_ALL=C sort -u >"$work/own" || true

# One image a line; no bare IDs (sha256:<hex>, or the hex alone); no duplicates; not the mirror's own.
tr -s '[:space:]' '\n' <"$work/raw" |
  grep -Ev '^$|^(sha256:)?[0-9a-f]{64}$' |
  LC_ALL=C sort -u |
  LC_ALL=C comm -23 - "$work/own" >"$work/images.txt" || true
if [[ -s $work/own ]]; then
  echo "left out the mirror's own images (side-loaded on every node): $(tr '\n' ' ' <"$work/own")" >&2
fi

count=$(wc -l <"$work/images.txt")
if [[ $count -eq 0 ]]; then
  echo "no images found: nothing written" >&2
  exit 1
fi

if $print; then
  cat "$work/images.txt"
  exit 0
fi

"$KUBECTL" -n "$NAMESPACE" create configmap "$CONFIGMAP" --from-file=images.txt="$work/images.txt" \
  --dry-run=client -o yaml |
  "$KUBECTL" label --local -f - app.kubernetes.io/part-of=mirrorproxy -o yaml |
  "$KUBECTL" apply -f -
echo "$count images in configmap $NAMESPACE/$CONFIGMAP"
