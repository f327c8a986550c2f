#!/usr/bin/env bash
# Build the real peer tools used by the interop tests and benchmarks from
# their Go modules, pinned, into <repo>/.peers/bin (git-ignored).
#
#   scripts/build-peers.sh            # all tools
#   scripts/build-peers.sh oras cosign
#
# Everything Go writes (GOPATH, GOCACHE, GOMODCACHE) stays under
# <repo>/.peers/go, so the user's home is untouched and CI re-runs reuse the
# caches.  A tool is reused when .peers/bin/NAME exists and
# .peers/bin/NAME.version records the pinned MODULE/PKG@VERSION.
# Build logs go to .peers/logs/NAME.log.
#
# Only the Go module proxy is used (go install / go mod download).
#
# Exit codes: 0 all requested tools available, 1 some tool failed,
#             2 usage error, 3 no Go toolchain (peers unavailable).
set -u -o pipefail

# ---- pinned versions -------------------------------------------------------
ORAS_MODULE=oras.land/oras
ORAS_VERSION=v1.3.6
COSIGN_V2_MODULE=github.com/sigstore/cosign/v2
COSIGN_V2_VERSION=v2.6.5
COSIGN_V3_MODULE=github.com/sigstore/cosign/v3
COSIGN_V3_VERSION=v3.1.3
ONMETAL_IMAGE_MODULE=github.com/onmetal/onmetal-image
# Preferred: the pseudo-version of commit 26f6ac2607e1cac19c35fac94aa8cd963b19628a
# (no tag precedes it).  Fallback: the newest tag.  In both, the main package
# is ./cmd (cmd/onmetal-image is a library package there).
ONMETAL_IMAGE_PSEUDO_VERSION=v0.0.0-20220928182407-26f6ac2607e1
ONMETAL_IMAGE_VERSION=v0.1.1
IRONCORE_IMAGE_MODULE=github.com/ironcore-dev/ironcore-image
IRONCORE_IMAGE_VERSION=v0.5.0

ALL_TOOLS=(oras cosign cosign-v3 onmetal-image ironcore-image)

# Candidates per tool: "MODULE VERSION PKGDIR" (PKGDIR relative to the module
# root, "." for the root), tried in order until one builds.
candidates() {
  case "$1" in
    oras)           echo "$ORAS_MODULE $ORAS_VERSION cmd/oras" ;;
    cosign)         echo "$COSIGN_V2_MODULE $COSIGN_V2_VERSION cmd/cosign" ;;
    cosign-v3)      echo "$COSIGN_V3_MODULE $COSIGN_V3_VERSION cmd/cosign" ;;
    onmetal-image)  echo "$ONMETAL_IMAGE_MODULE $ONMETAL_IMAGE_PSEUDO_VERSION cmd"
                    echo "$ONMETAL_IMAGE_MODULE $ONMETAL_IMAGE_VERSION cmd" ;;
    ironcore-image) echo "$IRONCORE_IMAGE_MODULE $IRONCORE_IMAGE_VERSION cmd/ironcore-image" ;;
    *) return 1 ;;
  esac
}

# ---- setup ------------------------------------------------------------------
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PEERS="$REPO/.peers"
BIN="$PEERS/bin"
LOGS="$PEERS/logs"

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    PATH="$PATH:/usr/local/go/bin"
  else
    echo "build-peers: go toolchain not found (not on PATH, no /usr/local/go/bin/go); peers unavailable"
    exit 3
  fi
fi

tools=()
if [ "$#" -eq 0 ]; then
  tools=("${ALL_TOOLS[@]}")
else
  for t in "$@"; do
    case "$t" in
      -h|--help)
        echo "usage: $0 [${ALL_TOOLS[*]}]"; exit 0 ;;
    esac
    if ! candidates "$t" >/dev/null; then
      echo "build-peers: unknown tool '$t' (known: ${ALL_TOOLS[*]})" >&2
      exit 2
    fi
    tools+=("$t")
  done
fi

mkdir -p "$BIN" "$LOGS" "$PEERS/go"
TMPROOT="$PEERS/tmp/run.$$"
mkdir -p "$TMPROOT"
trap 'rm -rf "$TMPROOT"; rmdir "$PEERS/tmp" 2>/dev/null || true' EXIT

export GOPATH="$PEERS/go"
export GOMODCACHE="$PEERS/go/pkg/mod"
export GOCACHE="$PEERS/go/cache"
# -modcacherw: keep the module cache deletable with a plain rm -rf .peers
export GOFLAGS="-modcacherw"
export CGO_ENABLED=0
export GO111MODULE=on
export GOWORK=off
unset GOBIN GOOS GOARCH

BUILD_FLAGS=(-p 2 -trimpath "-ldflags=-s -w")

# Serialise concurrent runs (e.g. two test sessions) when flock exists.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$PEERS/.build.lock"
  flock 9
fi

# Last informative line of a go output file, for the one-line failure reason.
last_line() {
  local l
  l=$(grep -e '^go: ' "$1" 2>/dev/null | grep -v '^go: downloading' | tail -n 1)
  [ -n "$l" ] || l=$(grep -v -e '^[[:space:]]*$' -e '^###' "$1" 2>/dev/null | tail -n 1)
  printf '%s' "$l" | sed 's/^[[:space:]]*//' | cut -c1-300
}

# build_one NAME MODULE VERSION PKGDIR -> 0 and binary in $BIN/NAME, or 1
build_one() {
  local name=$1 module=$2 version=$3 pkgdir=$4
  local log="$LOGS/$name.log" pkg="$module" tmp built=""
  ROUTE="" FAIL_REASON=""
  [ "$pkgdir" != "." ] && pkg="$module/$pkgdir"
  tmp=$(mktemp -d "$TMPROOT/$name.XXXXXX") || return 1
  {
    echo "### $(date -u +%FT%TZ) go install $pkg@$version ($(go version))"
  } >>"$log"

  # A fresh GOBIN per build: the installed binary is named after the package
  # directory (cosign v2 and v3 are both "cosign", onmetal-image's is "cmd"),
  # so nothing already in $BIN is overwritten before the rename.
  if GOBIN="$tmp/bin" go install "${BUILD_FLAGS[@]}" "$pkg@$version" </dev/null >>"$log" 2>&1; then
    built=$(find "$tmp/bin" -maxdepth 1 -type f | head -n 1)
    ROUTE="go install"
  else
    # go install MODULE@VERSION refuses modules whose go.mod has replace or
    # exclude directives, and it also fails when the proxy refuses the
    # module's version list (it looks up @latest for deprecation notices).
    # Standard workaround: fetch the module source through the proxy into the
    # module cache and build it with its own go.mod.
    if grep -qE 'contains one or more (replace|exclude) directives' "$log"; then
      ROUTE="source build (go install refused replace/exclude directives)"
    elif grep -q 'loading deprecation' "$log"; then
      ROUTE="source build (go install: proxy refused the module version list)"
    else
      ROUTE="source build (go install failed)"
    fi
    echo "### $ROUTE: go mod download $module@$version + go build ./$pkgdir" >>"$log"
    local dir
    # -json reports errors in its "Error" field on stdout, not on stderr.
    go mod download -json "$module@$version" </dev/null >"$tmp/dl.json" 2>"$tmp/dl.err"
    cat "$tmp/dl.json" "$tmp/dl.err" >>"$log"
    dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' "$tmp/dl.json" | head -n 1)
    sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/go: \1/p' "$tmp/dl.json" \
      | sed 's/\\n\\t/ /g; s/\\[nt]/ /g' >>"$tmp/dl.err"
    if [ -n "$dir" ] && [ -d "$dir" ]; then
      mkdir -p "$tmp/bin" && cp -R "$dir" "$tmp/src" && chmod -R u+w "$tmp/src" &&
      (cd "$tmp/src" && GOFLAGS="-modcacherw -mod=mod" \
        go build "${BUILD_FLAGS[@]}" -o "$tmp/bin/$name" "./$pkgdir" </dev/null >"$tmp/build.out" 2>&1) &&
      built="$tmp/bin/$name"
      if [ -f "$tmp/build.out" ]; then
        cat "$tmp/build.out" >>"$log"
        [ -z "$built" ] && FAIL_REASON="$version: go build failed: $(last_line "$tmp/build.out")"
      fi
    else
      FAIL_REASON="$version: go install and go mod download failed: $(last_line "$tmp/dl.err")"
      echo "go mod download of $module@$version gave no source directory" >>"$log"
    fi
  fi

  if [ -n "${built:-}" ] && [ -x "$built" ]; then
    mv -f "$built" "$BIN/$name.new" && mv -f "$BIN/$name.new" "$BIN/$name" &&
      printf '%s@%s\n' "$pkg" "$version" >"$BIN/$name.version"
    local rc=$?
    rm -rf "$tmp"
    return $rc
  fi
  rm -rf "$tmp"
  return 1
}

failed=0
for name in "${tools[@]}"; do
  mapfile -t cands < <(candidates "$name")
  stamp=""
  [ -f "$BIN/$name.version" ] && stamp=$(head -n 1 "$BIN/$name.version")

  # Reuse: binary present and stamp equals one of the pinned candidates.
  reused=""
  if [ -x "$BIN/$name" ] && [ -n "$stamp" ]; then
    for c in "${cands[@]}"; do
      read -r m v p <<<"$c"
      want="$m/$p@$v"; [ "$p" = "." ] && want="$m@$v"
      if [ "$stamp" = "$want" ]; then reused=$v; break; fi
    done
  fi
  if [ -n "$reused" ]; then
    echo "$name: reused $reused ($BIN/$name)"
    continue
  fi

  : >"$LOGS/$name.log"
  start=$SECONDS
  ok="" reasons=""
  for c in "${cands[@]}"; do
    read -r m v p <<<"$c"
    if build_one "$name" "$m" "$v" "$p"; then ok=$v; break; fi
    reasons="${reasons:+$reasons; }${FAIL_REASON:-$v: failed}"
  done
  took=$((SECONDS - start))
  if [ -n "$ok" ]; then
    echo "$name: built $ok in ${took}s via $ROUTE ($BIN/$name)"
  else
    echo "$name: FAILED after ${took}s: $reasons (log: $LOGS/$name.log)"
    failed=1
  fi
done

exit "$failed"
