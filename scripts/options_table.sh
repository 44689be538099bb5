#!/usr/bin/env bash
# The README's options table, generated from the one table in src/options.c.
#
#   scripts/options_table.sh           prints the markdown table
#   scripts/options_table.sh --update  rewrites it in README.md (between the
#                                      options:begin / options:end markers)
#   scripts/options_table.sh --check   exit 1 if README.md is out of date
set -euo pipefail
cd "$(dirname "$0")/.."
table() {
  echo "| variable | default | range | meaning |"
  echo "|---|---|---|---|"
  # rows look like: {"HAKMEM_X", OPT_INT, O(field), default, min, max, "text default" or 0, "help"},
  # split on the quotes: 2 = name, 3 = the numeric fields, then the strings
  grep -E '^\s*\{"HAKMEM_' src/options.c |
  awk -F'"' '{
    name = $2; n = split($3, f, / *, */)
    if ($3 ~ /OPT_STR/) {
      def = $4; if (def == "") def = "(empty)"; range = "text"; help = $6
    } else {
      def = f[4]; lo = f[5]; hi = f[6]; help = $4
      if (hi == "1e12") hi = "10^12"
      if (hi == "HAK_MID_BASE_MAX") hi = "1024"
      if (def == "HAK_SECURE_DEFAULT") def = "0 (1 if built with `make HARDENED=1`)"
      range = lo ".." hi
    }
    printf "| `%s` | %s | %s | %s |\n", name, def, range, help
  }'
}
case "${1:-}" in
  "") table ;;
  --update|--check)
    new=$(mktemp)
    awk -v tbl="$(table)" '
      /<!-- options:begin -->/ { print; print tbl; skip = 1; next }
      /<!-- options:end -->/   { skip = 0 }
      !skip' README.md > "$new"
    if [ "$1" = --check ]; then
      if cmp -s "$new" README.md; then rm -f "$new"; exit 0; fi
      echo "README.md's options table is out of date: run scripts/options_table.sh --update" >&2
      diff README.md "$new" >&2 || true; rm -f "$new"; exit 1
    fi
    mv "$new" README.md ;;
  *) echo "usage: $0 [--update|--check]" >&2; exit 2 ;;
esac
