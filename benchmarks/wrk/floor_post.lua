-- POST the floor app's one-row insert, with a body like the API run's.
-- Env: BENCH_USER, BENCH_TEXT.
local user = os.getenv("BENCH_USER") or "bench-user"
local text = os.getenv("BENCH_TEXT") or "hello"
local body = '{"user_id":"' .. user .. '","message":"' .. text .. '"}'

function request()
  return wrk.format("POST", "/floor/messages", {["Content-Type"] = "application/json"}, body)
end
