-- GET the floor app's latest 20 rows.
function request()
  return wrk.format("GET", "/floor/messages")
end
