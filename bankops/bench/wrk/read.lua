-- GET /accounts/{id} for a random seeded account.
dofile("common.lua")

function request()
  return wrk.format("GET", "/accounts/" .. random_account())
end
