-- A mix of customer messages to one of three targets, each in-flight request in its own conversation.
-- Env: BENCH_TARGET = parse (Rasa /model/parse) | channel (the ReviewBot Rasa channel) | api (POST /api/v1/messages)
--      BENCH_MIX (file, one message per line, # comments), BENCH_TEXT (a single message instead of the mix),
--      BENCH_ADDRS (host:port,host:port: wrk threads spread over several Rasa replicas),
--      BENCH_IDS, BENCH_USER, BENCH_TOKEN (api), BENCH_RASA_TOKEN (parse, channel), BENCH_SENDERS, BENCH_THREADS.
local target = os.getenv("BENCH_TARGET") or "api"
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
local messages = {}
if os.getenv("BENCH_TEXT") and os.getenv("BENCH_TEXT") ~= "" then
  messages[1] = os.getenv("BENCH_TEXT")
else
  for line in io.lines(os.getenv("BENCH_MIX")) do
    if line ~= "" and line:sub(1, 1) ~= "#" then messages[#messages + 1] = line end
  end
end
local ids = {}
if target == "api" then
  for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
else
  for i = 1, tonumber(os.getenv("BENCH_SENDERS") or "128") do ids[i] = "bench-" .. target .. "-" .. i end
end
local token = os.getenv("BENCH_TOKEN") or ""
local rasa_token = os.getenv("BENCH_RASA_TOKEN") or ""
local user = os.getenv("BENCH_USER") or "bench-user"
local addrs = {}
for addr in string.gmatch(os.getenv("BENCH_ADDRS") or "", "[^,]+") do addrs[#addrs + 1] = addr end
local threads = {}
counter = 0
tid = 0

function setup(thread)
  thread:set("tid", #threads)
  if #addrs > 0 then
    local host, port = addrs[(#threads % #addrs) + 1]:match("([^:]+):(%d+)")
    thread.addr = wrk.lookup(host, port)[1]
  end
  table.insert(threads, thread)
end

local function json_string(s)
  return '"' .. s:gsub('\\', '\\\\'):gsub('"', '\\"') .. '"'
end

function request()
  counter = counter + 1
  -- Threads take disjoint slices of the conversations, so no two in-flight requests share one;
  -- each conversation sees every message of the mix in turn.
  local slice = math.floor(#ids / nthreads)
  local id = ids[(tid * slice) + (counter % slice) + 1]
  local text = messages[((counter + math.floor(counter / slice)) % #messages) + 1]
  if target == "parse" then
    return wrk.format("POST", "/model/parse?token=" .. rasa_token, {["Content-Type"] = "application/json"},
      '{"text":' .. json_string(text) .. '}')
  elseif target == "channel" then
    return wrk.format("POST", "/webhooks/reviewbot/webhook",
      {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. rasa_token},
      '{"sender":"' .. id .. '","message":' .. json_string(text) .. '}')
  end
  return wrk.format("POST", "/api/v1/messages",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token},
    '{"conversation_id":"' .. id .. '","user_id":"' .. user .. '","message":' .. json_string(text) .. '}')
end
