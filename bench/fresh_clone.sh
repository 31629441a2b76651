# Sourced by the bench scripts that measure in a fresh clone of HEAD (demo_compare.sh,
# demo_verdicts.sh, suite_time.sh). `fresh_clone NAME` sets $root (this repository), $work (a
# temporary folder, removed at exit unless the script sets its own EXIT trap after the call) and
# $clone ($work/NAME, a clone of HEAD), and makes $clone the current directory.
fresh_clone() {
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  clone="$work/$1"
  git clone -q "$root" "$clone"
  cd "$clone"
}
