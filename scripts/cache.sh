# shellcheck shell=bash
# Sourced by the scripts that install tools (scripts/venv.sh, scripts/helm-check.sh): the
# per-user cache those tools live in, outside every checkout, so that each checkout on a machine
# (CI's fresh clones too) finds what an earlier one installed instead of installing it again:
# $EVENTS_SERVICE_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/events-service. An entry is a
# directory named by what it holds and its version (KIND/KEY); a machine without the cache gets
# everything installed into it the first time, by the same scripts.
#
#   cache_entry KIND KEY   prints the entry's directory (its parent made); fails, printing
#                          nothing, when there is no writable cache (the caller then installs
#                          into the checkout, as before there was a cache)
#   cache_lock ENTRY       waits for, then holds, ENTRY's lock until the calling process exits, so
#                          that two checkouts never install into one entry at once
#                          (file descriptor 8); cache_unlock lets it go sooner

cache_entry() {
  local root=${EVENTS_SERVICE_CACHE:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/events-service}
  mkdir -p "$root/$1" 2>/dev/null && [[ -w $root/$1 ]] || return 1
  echo "$root/$1/$2"
}

cache_lock() {
  exec 8>"$1.lock"
  flock 8
}

cache_unlock() {
  exec 8>&-
}
