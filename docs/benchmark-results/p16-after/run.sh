#!/bin/bash
# Issue 16: before (main) and after (p16-perf), back to back on the same machine.
PY=/work/wt/p16-perf/.venv/bin/python
OUT=/tmp/p16-results/final
mkdir -p $OUT
stamp() { echo "== $1 $(date -u +%T) load $(cat /proc/loadavg)"; }
stamp start
cd /tmp/p16-main; stamp "viewer before"; $PY -m bench.viewer --runs 3
cd /work/wt/p16-perf; stamp "viewer after"; $PY -m bench.viewer --runs 3
cd /tmp/p16-main; stamp "suite before"; $PY -m bench.suite --workers 1 --runs 3 --phases floor,send,inbox,history --no-delivery --no-attachments --out $OUT/suite-before
cd /work/wt/p16-perf; stamp "suite after"; $PY -m bench.suite --workers 1 --runs 3 --phases floor,send,inbox,history --no-delivery --no-attachments --out $OUT/suite-after
for w in 1 2; do
  cd /tmp/p16-main; stamp "firm-day before w$w"; $PY -m bench.firm_day --workers $w --runs 1 --json $OUT/firm-day-before-w$w.json
  cd /work/wt/p16-perf; stamp "firm-day after w$w"; $PY -m bench.firm_day --workers $w --runs 1 --json $OUT/firm-day-after-w$w.json
done
stamp end
