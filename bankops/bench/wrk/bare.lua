-- GET the URL's own path (the bare FastAPI endpoint), built per request like the others.
dofile("common.lua")

function request()
  return wrk.format("GET", wrk.path)
end
