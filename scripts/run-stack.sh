#!/usr/bin/env bash
# Starts the action server (:5055), the Rasa server (:5005) and the conversation API (:8000)
# with the settings in the environment; Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
export RASA_TELEMETRY_ENABLED=false PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export RASA_TOKEN=${RASA_TOKEN:-} ACTION_PORT=${ACTION_PORT:-5055} RASA_PORT=${RASA_PORT:-5005} API_PORT=${API_PORT:-8000}
export ACTION_SERVER_URL=${ACTION_SERVER_URL:-http://127.0.0.1:$ACTION_PORT/webhook}
export RASA_URL=${RASA_URL:-http://127.0.0.1:$RASA_PORT}
BIND=${BIND_HOST:-127.0.0.1}
MODEL=${MODEL:-models/current.tar.gz}

pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping ReviewBot..." >&2
  kill "${pids[@]}" 2>/dev/null || true
  # Rasa ignores signals while it loads a model: give everyone 10 s, then insist.
  for _ in $(seq 1 20); do
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.5
  done
  kill -9 "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

.venv-rasa/bin/python -m connectors.rasa.action_server --actions actions --port "$ACTION_PORT" &
pids+=($!)
rasa_auth=()
[ -n "$RASA_TOKEN" ] && rasa_auth=(--auth-token "$RASA_TOKEN")
.venv-rasa/bin/rasa run --enable-api "${rasa_auth[@]}" --interface "$BIND" --port "$RASA_PORT" \
  --model "$MODEL" --credentials rasa_project/credentials.yml --endpoints rasa_project/endpoints.yml &
pids+=($!)
.venv/bin/uvicorn --factory conversation_api.main:app_factory --host "$BIND" --port "$API_PORT" \
  --workers "${API_WORKERS:-1}" --no-access-log &
pids+=($!)

for _ in $(seq 1 180); do
  if curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then
    echo "ReviewBot is ready: API http://127.0.0.1:$API_PORT (docs at /docs), Rasa :$RASA_PORT, actions :$ACTION_PORT. Ctrl-C stops." >&2
    break
  fi
  sleep 1
done
wait -n "${pids[@]}"
echo "a ReviewBot process exited; stopping the others" >&2
