-- wrk script of `make bench`: GET /api/v1/conversations/{id} over many conversations.
--
--   wrk -c 32 -t 1 -d 10s -s benches/wrk/conversations.lua http://HOST:PORT -- IDS_FILE TOKEN
--
-- Each request picks a conversation id at random from IDS_FILE (one per line) and
-- sends `Authorization: Bearer TOKEN`. Every response that is not 2xx is an error;
-- `done` prints one line `BENCH_JSON {...}` that scripts/bench.sh parses.

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
  table.insert(threads, thread)
end

function init(args)
  local path, token = args[1], args[2]
  if path == nil or token == nil then
    error("usage: -s conversations.lua URL -- IDS_FILE TOKEN")
  end
  ids = {}
  for line in io.lines(path) do
    if #line > 0 then
      ids[#ids + 1] = line
    end
  end
  if #ids == 0 then
    error("no conversation ids in " .. path)
  end
  math.randomseed(os.time() * 1000 + 7919 * (thread_number or 1))
  headers = { ["Authorization"] = "Bearer " .. token }
  errors = 0
  first_error = ""
end

function request()
  return wrk.format("GET", "/api/v1/conversations/" .. ids[math.random(#ids)], headers)
end

function response(status, response_headers, body)
  if status < 200 or status > 299 then
    errors = errors + 1
    if first_error == "" then
      first_error = tostring(status)
    end
  end
end

function done(summary, latency, requests)
  local non_2xx = 0
  local first = ""
  for _, thread in ipairs(threads) do
    non_2xx = non_2xx + thread:get("errors")
    if first == "" then
      first = thread:get("first_error") or ""
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "non_2xx": %d, ' ..
    '"first_error_status": "%s", "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "timeouts": %d, "status_errors": %d, ' ..
    '"latency_mean_us": %.1f, "latency_max_us": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, non_2xx, first,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99)))
end
