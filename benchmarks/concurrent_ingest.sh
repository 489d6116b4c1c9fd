#!/usr/bin/env bash
# two `rag ingest` at once into a fresh data dir, N times; prints papers/chunks/vectors and who waited
cd "$(dirname "$0")/.."
for i in 1 2 3 4 5; do
  h=$(mktemp -d)
  rag --home $h ingest tests/data/small.jsonl 2>$h/a.err & p1=$!
  rag --home $h ingest tests/data/small.jsonl 2>$h/b.err & p2=$!
  wait $p1; r1=$?; wait $p2; r2=$?
  s=$(rag --home $h stats --json | python -c "import json,sys; d=json.load(sys.stdin); print(d['papers'], d['chunks'], d['vectors'])")
  echo "trial $i rc=$r1,$r2 papers/chunks/vectors=$s waited=$(cat $h/*.err | grep -c waiting)"
  rm -rf $h
done
