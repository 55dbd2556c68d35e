-- The same credit with an Idempotency-Key unique to each request (run, thread, counter), as a
-- careful client sends it: every request is new, none is a replay.
dofile("common.lua")

function request()
  sent = sent + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("wrk-%s-%d-%d", run_word, thread_number, sent),
  }
  local body = string.format('{"direction": "credit", "amount": %d}', math.random(1, 1000))
  return wrk.format("POST", "/accounts/" .. random_account() .. "/transactions", headers, body)
end
