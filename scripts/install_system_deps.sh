#!/usr/bin/env bash
# Install the Debian packages listed in the given lists (default: app-packages.txt and
# system-packages.txt, i.e. what the app and the tests need) that are missing.
# Runs as root (CI) or through sudo; elsewhere it prints the exact install command and carries
# on (the app then names what is missing; tests that need a package skip with the reason).
set -euo pipefail
cd "$(dirname "$0")"
[ "$(uname -s)" = Linux ] || exit 0  # the lists are Linux packages; macOS and Windows need none
lists=("$@")
[ ${#lists[@]} -gt 0 ] || lists=(app-packages.txt system-packages.txt)
mapfile -t wanted < <(cat "${lists[@]}" | grep -vE '^\s*(#|$)')
[ ${#wanted[@]} -gt 0 ] || exit 0
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -gt 0 ] || exit 0
if ! command -v apt-get >/dev/null; then
  echo "note: not a Debian system; install the equivalents of: ${missing[*]}" >&2
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo"; else
  echo "note: missing system packages (${missing[*]}); run: sudo apt-get install ${missing[*]}" >&2
  exit 0
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true  # a stale index is fine when the packages are in it
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
