#!/usr/bin/env bash
# Starts the action server(s) (:5055…), the Rasa server(s) (:5005…) and the conversation API (:8000)
# with the settings in the environment, each under a supervisor that restarts it with a back-off
# when it dies (the others keep serving meanwhile). Ctrl-C stops everything.
#
#   RASA_REPLICAS=2 ACTION_REPLICAS=2 make run    # Rasa on :5005 and :5006, actions on :5055 and :5056
set -euo pipefail
cd "$(dirname "$0")/.."
export RASA_TELEMETRY_ENABLED=false PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# Rasa sends ACTION_SERVER_TOKEN to the action servers (endpoints.yml), which refuse calls without it.
export ACTION_SERVER_TOKEN=${ACTION_SERVER_TOKEN:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')}
export RASA_TOKEN=${RASA_TOKEN:-} ACTION_PORT=${ACTION_PORT:-5055} RASA_PORT=${RASA_PORT:-5005} API_PORT=${API_PORT:-8000}
RASA_REPLICAS=${RASA_REPLICAS:-1}
ACTION_REPLICAS=${ACTION_REPLICAS:-1}
BIND=${BIND_HOST:-127.0.0.1}
MODEL=${MODEL:-models/current.tar.gz}
BACKOFF_MAX=${RESTART_BACKOFF_MAX:-30}

for n in "$RASA_REPLICAS" "$ACTION_REPLICAS"; do
  [[ "$n" =~ ^[1-9][0-9]?$ ]] || { echo "RASA_REPLICAS and ACTION_REPLICAS must be whole numbers from 1 to 99" >&2; exit 2; }
done
if (( RASA_REPLICAS > 1 )) && [ -z "${REDIS_URL:-}" ]; then
  echo "RASA_REPLICAS=$RASA_REPLICAS needs REDIS_URL: the replicas share their conversation locks through Redis" >&2
  exit 2
fi

source scripts/supervise.sh

supervisors=()
stop() {
  trap - INT TERM EXIT
  echo "stopping ReviewBot..." >&2
  local children=()
  for pid in "${supervisors[@]}"; do children+=($(pgrep -P "$pid" || true)); done
  kill "${supervisors[@]}" 2>/dev/null || true
  # Rasa ignores signals while it loads a model: give everyone 10 s, then insist.
  for _ in $(seq 1 20); do
    kill -0 "${supervisors[@]}" "${children[@]}" 2>/dev/null || break
    sleep 0.5
  done
  kill -9 "${supervisors[@]}" "${children[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

action_urls=()
for ((i = 0; i < ACTION_REPLICAS; i++)); do
  port=$((ACTION_PORT + i))
  supervise "actions-$i" .venv-rasa/bin/python -m connectors.rasa.action_server --actions actions --port "$port" &
  supervisors+=($!)
  action_urls+=("http://127.0.0.1:$port/webhook")
done

rasa_auth=()
[ -n "$RASA_TOKEN" ] && rasa_auth=(--auth-token "$RASA_TOKEN")
rasa_urls=()
for ((i = 0; i < RASA_REPLICAS; i++)); do
  port=$((RASA_PORT + i))
  # Each Rasa replica calls one action server; with as many of each, every pair is independent.
  ACTION_SERVER_URL=${ACTION_SERVER_URL:-${action_urls[$((i % ACTION_REPLICAS))]}} \
    supervise "rasa-$i" .venv-rasa/bin/rasa run --enable-api "${rasa_auth[@]}" --interface "$BIND" --port "$port" \
    --model "$MODEL" --credentials rasa_project/credentials.yml --endpoints rasa_project/endpoints.yml &
  supervisors+=($!)
  rasa_urls+=("http://127.0.0.1:$port")
done

RASA_URLS=${RASA_URLS:-$(IFS=,; echo "${rasa_urls[*]}")} \
  supervise api .venv/bin/uvicorn --factory conversation_api.main:app_factory --host "$BIND" --port "$API_PORT" \
  --workers "${API_WORKERS:-1}" --timeout-keep-alive 75 --no-access-log &
supervisors+=($!)

for _ in $(seq 1 180); do
  if curl -fsS "http://127.0.0.1:$API_PORT/readyz" 2>/dev/null | grep -q '"bot":"ok"'; then
    echo "ReviewBot is ready: API http://127.0.0.1:$API_PORT (docs at /docs), Rasa ${rasa_urls[*]}," \
      "actions ${action_urls[*]}. Ctrl-C stops." >&2
    break
  fi
  sleep 1
done
wait
