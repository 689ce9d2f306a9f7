#!/bin/bash
# Issue 16, inbox: "before" is main (dbc26a0) in its own checkout, "after" the p16-inbox branch;
# one after the other on the same machine. Output: console.log beside this file.
set -x
date -u
cd "$MAIN" && .venv/bin/python -m bench.suite --workers 1 --runs 3 --phases floor,inbox --no-delivery --no-attachments --out "$OUT/before"
date -u
cd "$BRANCH" && .venv/bin/python -m bench.suite --workers 1 --runs 3 --phases floor,inbox --no-delivery --no-attachments --out "$OUT/after"
date -u
cd "$MAIN" && .venv/bin/python -m bench.profile --phases inbox --seconds 10 --out "$OUT/prof-before"
date -u
cd "$BRANCH" && .venv/bin/python -m bench.profile --phases inbox --seconds 10 --out "$OUT/prof-after"
date -u
