# Sourced by scripts/run-stack.sh (bash).
# supervise NAME COMMAND...: run COMMAND, and run it again whenever it exits, waiting 1, 2, 4 … up to
# $BACKOFF_MAX seconds between starts (back to 1 s once it has stayed up for a minute).
# TERM or INT stops the command and the supervisor.
supervise() {
  local name=$1; shift
  local delay=1 child=0 started code
  trap 'kill -TERM "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM INT
  while true; do
    started=$SECONDS
    "$@" &
    child=$!
    code=0; wait "$child" || code=$?
    (( SECONDS - started >= 60 )) && delay=1
    echo "reviewbot: $name exited with code $code; restarting in ${delay}s" >&2
    sleep "$delay" & wait $! || true
    delay=$(( delay * 2 > ${BACKOFF_MAX:-30} ? ${BACKOFF_MAX:-30} : delay * 2 ))
  done
}
