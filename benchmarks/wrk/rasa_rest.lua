-- POST Rasa's own REST webhook, one sender per in-flight request (like the API run's conversations).
local threads = {}
local text = os.getenv("BENCH_TEXT") or "hello"
local senders = tonumber(os.getenv("BENCH_SENDERS") or "64")
counter = 0
tid = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local body = '{"sender":"bench-' .. tid .. '-' .. (counter % senders) .. '","message":"' .. text .. '"}'
  return wrk.format("POST", "/webhooks/rest/webhook", {["Content-Type"] = "application/json"}, body)
end
