#!/usr/bin/env bash
# A curl session against the dev gateway: mint a token, open the stream, register,
# enqueue a task, see the lease, ack it, read the task back.
# usage: bash tester-ui/examples/curl-session.sh [port]
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"
PORT="${1:-8788}"
GW="http://127.0.0.1:$PORT"
SSE_OUT="$(mktemp)"
node "$HERE/gateway/cli.js" serve --port "$PORT" --data :memory: --log-level warn > /dev/null &
GWPID=$!
trap 'kill $GWPID ${CURLPID:-} 2>/dev/null || true; rm -f "$SSE_OUT"' EXIT
for _ in $(seq 50); do curl -sf "$GW/healthz" > /dev/null && break; sleep 0.1; done

echo "# 1. mint a token"
TOKEN=$(node "$HERE/gateway/cli.js" token --kind service --sub service:curl)
echo "$TOKEN"

echo "# 2. open the stream"
curl -sN -H "Authorization: Bearer $TOKEN" "$GW/neuron/events?neuronId=w-1" > "$SSE_OUT" &
CURLPID=$!
sleep 0.3

echo "# 3. register"
curl -s -X POST "$GW/neuron/register" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d '{"type":"register","neuronId":"w-1","capabilities":[{"type":"core/echo","scope":"any","concurrency":1}]}'
echo

echo "# 4. enqueue a task"
TASK=$(curl -s -X POST "$GW/dev/tasks" -H 'Content-Type: application/json' \
  -d '{"type":"core/echo","input":{"text":"hi"}}' | node -pe 'JSON.parse(require("fs").readFileSync(0)).taskId')
echo "$TASK"
sleep 0.3

echo "# 5. the stream so far"
cat "$SSE_OUT"
LEASE=$(grep -o '"leaseId":"[^"]*"' "$SSE_OUT" | head -1 | cut -d'"' -f4)

echo "# 6. ack $LEASE"
curl -s -X POST "$GW/neuron/ack" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"type\":\"ack\",\"neuronId\":\"w-1\",\"leaseId\":\"$LEASE\",\"taskId\":\"$TASK\",\"output\":{\"text\":\"hi\"}}"
echo

echo "# 7. the task"
curl -s "$GW/dev/tasks/$TASK"
echo
