#!/usr/bin/env bash
# One-shot `rag ask --json` vs a warm `rag serve`, side by side: each question is asked once to a
# new process and once over HTTP, alternating, with the load average before and after.
# Uses RAG_HOME / RAG_MODELS_HOME as set (index the bundled corpus first: `rag ingest`).
# Usage: benchmarks/serve.sh [PORT]
port=${1:-8765}
now() { date +%s.%N; }
timings() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); t=d['timings']; print('retrieve', round(t['retrieve_s'],3), 'first token', round(t['first_token_s'] or 0,2), 'total', round(t['total_s'],2), 'refused', d['refused'])" "$1"; }
out=$(mktemp -d)
s=$(now)
rag serve --port "$port" > "$out/serve.log" 2>&1 & server=$!
trap 'kill $server' EXIT
until curl -sf "http://127.0.0.1:$port/health" > /dev/null; do sleep 0.1; done
echo "rag serve: /health answers $(echo "$(now) - $s" | bc) s after start"
echo "uptime before: $(uptime)"
i=0
for q in "How much does dynamic tokenization shorten token sequences on XNLI?" \
         "What data does Factorized-Dreamer train its video generator on?" \
         "What does the Decoder-Hybrid-Decoder architecture improve for reasoning with long generation?"; do
  i=$((i+1))
  s=$(now); rag ask --json "$q" > "$out/ask$i.json" 2>/dev/null; e=$(now)
  echo "Q$i rag ask --json: $(echo "$e - $s" | bc) s wall; $(timings "$out/ask$i.json")"
  s=$(now)
  curl -s "http://127.0.0.1:$port/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "{\"messages\": [{\"role\": \"user\", \"content\": \"$q\"}]}" > "$out/serve$i.json"
  e=$(now)
  echo "Q$i POST /v1/chat/completions: $(echo "$e - $s" | bc) s wall; $(timings "$out/serve$i.json")"
done
echo "uptime after: $(uptime)"
