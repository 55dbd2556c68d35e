-- POST /transfers between two different random accounts. Every seeded account holds EUR and
-- far more than the few euros moved, so a refusal (409) is rare; it is counted apart from
-- errors all the same.
dofile("common.lua")

local headers = {["Content-Type"] = "application/json"}

function request()
  local source, destination = two_accounts()
  local body = string.format(
    '{"source_account_id": %d, "destination_account_id": %d, "amount": %d}',
    source, destination, math.random(1, 1000))
  return wrk.format("POST", "/transfers", headers, body)
end
