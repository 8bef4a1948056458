#!/usr/bin/env bash
# Build the vCenter simulator the targets tests use, from Debian's golang-go and
# golang-github-vmware-govmomi-dev (GOPATH mode: no module download, works offline).
# Usage: tools/vcsim/build.sh [OUTPUT]   (default: ~/.cache/lora-studio/vcsim/vcsim)
# Prints the binary's path; rebuilds only when main.go is newer than the binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-${LORA_STUDIO_VCSIM:-${XDG_CACHE_HOME:-$HOME/.cache}/lora-studio/vcsim/vcsim}}"
command -v go >/dev/null || { echo "go is not installed: apt-get install golang-go golang-github-vmware-govmomi-dev" >&2; exit 3; }
[ -d /usr/share/gocode/src/github.com/vmware/govmomi/simulator ] || {
  echo "govmomi sources are missing: apt-get install golang-github-vmware-govmomi-dev" >&2; exit 3; }
if [ ! -x "$out" ] || [ "$here/main.go" -nt "$out" ]; then
  mkdir -p "$(dirname "$out")"
  # The go tool's build cache goes next to the binary, not into the user's home.
  export GO111MODULE=off GOPATH=/usr/share/gocode
  export GOCACHE="${GOCACHE:-$(dirname "$out")/gocache}"
  (cd "$here" && go build -o "$out.tmp" main.go)
  mv -f "$out.tmp" "$out"
fi
echo "$out"
