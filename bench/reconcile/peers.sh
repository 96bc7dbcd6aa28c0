#!/usr/bin/env bash
# desiredstate beside CFEngine, Puppet and Ansible on the same local-files work, in one session,
# with the peer harness in ../shared/bench/peers (its README.md has the method and the checks).
#
#   bench/reconcile/peers.sh                 # N=10000, 3 timed runs per phase, Ansible on 100 files
#   N=1000 RUNS=5 ANSIBLE_N=0 bench/reconcile/peers.sh     # ANSIBLE_N=0 leaves Ansible out
#   TOOLS="desiredstate cfengine" bench/reconcile/peers.sh
#
# Phases (each run verified: content and mode of every file, and exactly the expected set touched):
# scratch (converge from nothing), steady (nothing to do), drift (repair 10 % content edits + 5 % chmods).
# Ansible checks a file in ~0.5 s (78 min projected for one pass over 10k files), so it runs on
# ANSIBLE_N files with one run per phase and no warm-up; compare it per file, not by wall time.
# Prints the harness's table (bin/report.sh) for this session only, then desiredstate's ratios to cf-agent,
# then what the filesystem alone charges for the same creates and rewrites (bench/reconcile/fs-floor.ts).
# Needs root once for bin/install.sh (Debian packages); everything generated goes to $BENCH_ROOT.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
PEERS=${PEERS:-$(cd "$REPO/../shared/bench/peers" 2>/dev/null && pwd || echo /work/shared/bench/peers)}
N=${N:-10000}
RUNS=${RUNS:-3}
ANSIBLE_N=${ANSIBLE_N:-100}
TOOLS=${TOOLS:-desiredstate cfengine puppet ansible}
export BENCH_ROOT=${BENCH_ROOT:-/tmp/ds-peers-bench}
# The absolute command line that starts the CLI as users do (npx desiredstate): bin/desiredstate,
# the project's pinned Node from the start-up snapshot.
export DESIREDSTATE=${DESIREDSTATE:-"$REPO/bin/desiredstate"}

command -v cf-agent >/dev/null && command -v puppet >/dev/null && [[ -x /usr/bin/time ]] ||
  { echo "peers missing: run $PEERS/bin/install.sh as root first" >&2; exit 1; }

# One CSV for this session, so the table holds only what ran here, together.
mkdir -p "$BENCH_ROOT/results"
SESSION_CSV=$BENCH_ROOT/results/raw.csv
[[ -s $SESSION_CSV ]] && mv "$SESSION_CSV" "$SESSION_CSV.$(date +%s).old"

gen() { # N
  [[ -s $BENCH_ROOT/gen/files-n$1/expected.listing ]] || "$PEERS/bin/gen-files.sh" "$1"
  [[ -s $BENCH_ROOT/gen/files-n$1/desiredstate/goals.yaml ]] || "$PEERS/bin/gen-desiredstate.sh" "$1"
}

gen "$N"
for tool in $TOOLS; do
  case $tool in
    ansible)
      ((ANSIBLE_N > 0)) || continue
      gen "$ANSIBLE_N"
      WARMUP=0 "$PEERS/bin/bench-files.sh" ansible "$ANSIBLE_N" 1 ;;
    desiredstate)
      rm -rf "$BENCH_ROOT/state/desiredstate-n$N"   # the warm-up scratch run starts from no state too
      "$PEERS/bin/bench-files.sh" desiredstate "$N" "$RUNS" ;;
    *) "$PEERS/bin/bench-files.sh" "$tool" "$N" "$RUNS" ;;
  esac
done

echo
echo "## $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo
"$PEERS/bin/report.sh" "$SESSION_CSV" | sed '/^### Per-item cost/,$d'
echo
echo "### desiredstate apply vs cf-agent (N=$N; wall median ratio, and user+sys CPU median ratio)"
echo
awk -F, -v n="$N" '
function median(s,   a, k, i, j, t) {
  k = split(s, a, " ")
  for (i = 2; i <= k; i++) { t = a[i] + 0; j = i - 1; while (j > 0 && a[j] + 0 > t) { a[j + 1] = a[j]; j-- } a[j + 1] = t }
  return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
NR > 1 && $5 != "" && $6 != 0 && $4 == n && ($2 == "desiredstate" || $2 == "cfengine") {
  w[$2, $5] = w[$2, $5] " " $7; c[$2, $5] = c[$2, $5] " " ($8 + $9)
}
END {
  print "| phase | desiredstate wall (s) | cf-agent wall (s) | cf-agent / desiredstate (wall) | desiredstate CPU (s) | cf-agent CPU (s) | ratio (CPU) | bar |"
  print "|---|---:|---:|---:|---:|---:|---:|---:|"
  split("scratch steady drift", ph, " ")
  for (i = 1; i <= 3; i++) {
    p = ph[i]
    if (w["desiredstate", p] == "" || w["cfengine", p] == "") continue
    dw = median(w["desiredstate", p]); cw = median(w["cfengine", p]); dc = median(c["desiredstate", p]); cc = median(c["cfengine", p])
    printf "| %s | %.2f | %.2f | %.2fx | %.2f | %.2f | %.2fx | %dx |\n", p, dw, cw, cw / dw, dc, cc, cc / dc, (p == "scratch") ? 3 : 5
  }
}' "$SESSION_CSV"

# What the filesystem alone charges for the same work, in the same place and session: the floor
# under every tool's converge and repair above (bench/reconcile/fs-floor.ts says how it is measured).
echo
"$REPO/node_modules/.bin/node" "$REPO/bench/reconcile/fs-floor.ts" --n "$N" "$BENCH_ROOT/fs-floor"
