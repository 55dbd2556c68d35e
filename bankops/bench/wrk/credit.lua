-- POST /accounts/{id}/transactions: a small credit to a random account, no Idempotency-Key.
dofile("common.lua")

local headers = {["Content-Type"] = "application/json"}

function request()
  local body = string.format('{"direction": "credit", "amount": %d}', math.random(1, 1000))
  return wrk.format("POST", "/accounts/" .. random_account() .. "/transactions", headers, body)
end
