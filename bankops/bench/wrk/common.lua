-- Shared by every wrk script here (loaded with dofile; wrk runs with this folder as its
-- working directory): random account ids per thread, responses counted by status, and a
-- one-line JSON summary that bankops/bench/loadgen.py reads.
--
-- Arguments after `--`: the first and last account id, and a word unique to this wrk run (for
-- Idempotency-Keys). Every script builds each request in request(), the bare endpoint's
-- included, so the load generator does the same work per request in every measurement.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

function init(args)
  first_id = tonumber(args[1]) or 1
  last_id = tonumber(args[2]) or first_id
  run_word = args[3] or tostring(os.time())
  -- Each thread draws its own sequence.
  math.randomseed(os.time() * 1000 + thread_number)
  statuses = {}
  refusals = 0
  sent = 0
end

function random_account()
  return math.random(first_id, last_id)
end

-- Two different accounts, uniformly.
function two_accounts()
  local source = math.random(first_id, last_id)
  local destination = math.random(first_id, last_id - 1)
  if destination >= source then
    destination = destination + 1
  end
  return source, destination
end

-- Counting answers here is what separates refusals from errors; wrk itself only counts
-- "non-2xx or 3xx". A refusal is the bank's normal "no" (409 insufficient_funds); any other
-- 409 (idempotency_conflict, …) is an error of the benchmark.
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 409 and body:find("insufficient_funds", 1, true) then
    refusals = refusals + 1
  end
end

function done(summary, latency, requests)
  local counts, refused = {}, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
    refused = refused + thread:get("refusals")
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}, ' ..
    '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"refused": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean,
    errors.connect, errors.read, errors.write, errors.timeout,
    refused, table.concat(parts, ", ")))
end
