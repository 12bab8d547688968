#!/usr/bin/env bash
# Verifies captured webhook deliveries with an implementation independent of ours: the
# Standard Webhooks reference library for Python (`standardwebhooks`, pinned, from PyPI),
# installed once into a virtualenv under target/ (reinstalled when the pin below
# changes, like scripts/contract-test.sh does for schemathesis).
#
#   scripts/verify-webhooks.sh DELIVERIES.json SECRET
#
# DELIVERIES.json: [{"headers": {"webhook-id": …, "webhook-timestamp": …,
# "webhook-signature": …}, "body": "<the raw body, as a string>"}, …]; SECRET: the
# endpoint's `whsec_…` secret. Exits 0 when every delivery verifies, 1 naming the first
# one that does not, 2 on a usage error. tests/webhooks.rs runs it.
#
# Environment: WEBHOOKS_VENV (default target/webhooks-venv).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${WEBHOOKS_VENV:-target/webhooks-venv}
# What goes into the venv, pinned by version and by the wheel's hash (it has no
# dependencies of its own).
requirements='standardwebhooks==1.1.0 --hash=sha256:9a88d48a1f198be61517fc7ad328cf58ba02b73f0fbd8941d4213e9c0b6c2a61'

if [ "$#" -ne 2 ]; then
  echo "usage: $0 DELIVERIES.json SECRET" >&2
  exit 2
fi

log() { printf 'verify-webhooks: %s\n' "$*" >&2; }

# apt-get as root, or through sudo when there is one.
apt_install() {
  local runner=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to apt-get install $*" >&2; exit 1; }
    runner=(sudo)
  fi
  log "apt-get install $*"
  "${runner[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  "${runner[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

ensure_venv() {
  local wanted
  wanted="$(printf '%s\n' "$requirements" | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$wanted" ]; then
    return 0
  fi
  if ! command -v python3 >/dev/null; then
    apt_install python3 python3-venv
  fi
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    apt_install python3-venv
  fi
  log "installing standardwebhooks into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  local file
  file=$(mktemp)
  printf '%s\n' "$requirements" >"$file"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input --no-deps \
    --require-hashes -r "$file"
  rm -f "$file"
  echo "$wanted" >"$venv/.requirements.sha256"
}

# Several tests may run this at once: one of them installs, the others wait.
mkdir -p "$(dirname "$venv")"
if command -v flock >/dev/null; then
  exec 9>"$venv.lock"
  flock 9
  ensure_venv
  flock -u 9
  exec 9>&-
else
  ensure_venv
fi

exec "$venv/bin/python" scripts/verify-webhooks.py "$1" "$2"
