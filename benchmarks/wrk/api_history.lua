-- GET a conversation's history, rotating over existing conversations.
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local token = os.getenv("BENCH_TOKEN")
local user = os.getenv("BENCH_USER")
local counter = 0

function request()
  counter = counter + 1
  local id = ids[(counter % #ids) + 1]
  return wrk.format("GET", "/api/v1/user/" .. user .. "/messages/" .. id .. "?limit=20",
    {["Authorization"] = "Bearer " .. token})
end
