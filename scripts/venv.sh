#!/usr/bin/env bash
# Usage: scripts/venv.sh DIR REQUIREMENTS
# Makes DIR a Python (3.11 or newer) virtualenv holding exactly the pinned REQUIREMENTS, installing
# python3-venv with apt when it is missing and this runs as root. Does nothing when DIR already
# matches REQUIREMENTS; rebuilds a DIR left by a Python that is gone.
set -euo pipefail
(($# == 2)) || { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }
venv=$1 requirements=$2
say() { echo "venv: $*" >&2; }

if [[ -x $venv/bin/python ]] && ! "$venv/bin/python" -c '' 2>/dev/null; then
  rm -rf "$venv"
fi
cmp -s "$requirements" "$venv/.requirements" && exit 0

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  say "needs Python 3.11 or newer; python3 is $(python3 --version 2>&1)"
  exit 1
fi
if [[ ! -x $venv/bin/python ]] && ! python3 -m venv "$venv" >/dev/null 2>&1; then
  rm -rf "$venv"
  if [[ $(id -u) -ne 0 ]]; then
    say "python3 cannot create a virtualenv; install python3-venv (Debian: apt-get install python3-venv)"
    exit 1
  fi
  say "installing python3-venv"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
  python3 -m venv "$venv"
fi
say "installing $requirements into $venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
cp "$requirements" "$venv/.requirements"
