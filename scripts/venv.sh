#!/usr/bin/env bash
# Usage: scripts/venv.sh DIR REQUIREMENTS
# Makes DIR a Python (3.11 or newer) virtualenv holding exactly the pinned REQUIREMENTS, installing
# python3-venv with apt when it is missing and this runs as root. The virtualenv itself lives in
# the per-user cache (scripts/cache.sh) as venv/NAME-HASH, HASH being that of REQUIREMENTS and of
# the Python that runs it, and DIR is a link to it: each set of pins is installed once on a
# machine, for every checkout. Without a writable cache, DIR is the virtualenv. Does nothing when
# it already matches REQUIREMENTS; rebuilds one left by a Python that is gone.
set -euo pipefail
(($# == 2)) || { sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2; }
venv=$1 requirements=$2
say() { echo "venv: $*" >&2; }
# shellcheck source-path=SCRIPTDIR source=cache.sh
. "$(dirname "${BASH_SOURCE[0]}")/cache.sh"

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  say "needs Python 3.11 or newer; python3 is $(python3 --version 2>&1)"
  exit 1
fi

# make DIR: DIR holds exactly REQUIREMENTS, made anew when it does not.
make() {
  local dir=$1
  if [[ -x $dir/bin/python ]] && ! "$dir/bin/python" -c '' 2>/dev/null; then
    rm -rf "$dir"
  fi
  cmp -s "$requirements" "$dir/.requirements" && return 0
  if [[ ! -x $dir/bin/python ]] && ! python3 -m venv "$dir" >/dev/null 2>&1; then
    rm -rf "$dir"
    if [[ $(id -u) -ne 0 ]]; then
      say "python3 cannot create a virtualenv; install python3-venv (Debian: apt-get install python3-venv)"
      exit 1
    fi
    say "installing python3-venv"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
    python3 -m venv "$dir"
  fi
  say "installing $requirements into $dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$dir/.requirements"
}

key=$({ python3 -c 'import sys; print(sys.version, sys.executable)'; cat "$requirements"; } |
  sha256sum | cut -c1-16)
name=$(basename "$venv")
if entry=$(cache_entry venv "${name#.}-$key"); then
  cache_lock "$entry"
  make "$entry"
  if [[ ! -L $venv || $(readlink "$venv") != "$entry" ]]; then
    rm -rf -- "$venv"
    ln -s "$entry" "$venv"
  fi
else
  make "$venv"
fi
