#!/usr/bin/env bash
# need.sh CMD:PACKAGE ... — installs the Debian package of every missing
# command (as root: apt-get update once, then install); otherwise says how.
# Exits 0 even if something is missing: the tests that need it will fail
# with their own message.
set -u
missing=()
for pair in "$@"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "need: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; } ||
    echo "need: could not install ${missing[*]}"
else
  echo "need: missing ${missing[*]} (install with: apt-get install ${missing[*]})"
fi
exit 0
