-- POST /api/v1/messages to a rotating set of existing conversations.
-- Env: BENCH_TOKEN (JWT), BENCH_USER, BENCH_IDS (file with one conversation id per line), BENCH_TEXT.
local threads = {}
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "2")
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local token = os.getenv("BENCH_TOKEN")
local user = os.getenv("BENCH_USER")
local text = os.getenv("BENCH_TEXT") or "hello"
counter = 0
tid = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  -- Threads take disjoint slices of the ids, so no two in-flight requests share a conversation.
  local slice = math.floor(#ids / nthreads)
  local id = ids[(tid * slice) + (counter % slice) + 1]
  local body = '{"conversation_id":"' .. id .. '","user_id":"' .. user .. '","message":"' .. text .. '"}'
  return wrk.format("POST", "/api/v1/messages",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
