-- wrk script of `make bench`, list scenario: GET one fixed page of the inbox
-- (GET /api/v1/conversations?limit=25[&cursor=…]).
--
--   wrk -c 32 -t 1 -d 10s -s benches/wrk/list.lua http://HOST:PORT -- PATH_FILE TOKEN
--
-- PATH_FILE holds one line: the path and query of the page (cursor URL-encoded).
-- Every request sends `Authorization: Bearer TOKEN`. Every response that is not 2xx
-- is an error; `done` prints one line `BENCH_JSON {...}` that scripts/bench.sh parses.

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
  table.insert(threads, thread)
end

function init(args)
  local path_file, token = args[1], args[2]
  if path_file == nil or token == nil then
    error("usage: -s list.lua URL -- PATH_FILE TOKEN")
  end
  for line in io.lines(path_file) do
    if #line > 0 and page_path == nil then
      page_path = line
    end
  end
  if page_path == nil then
    error("no path in " .. path_file)
  end
  errors = 0
  first_error = ""
  req = wrk.format("GET", page_path, { ["Authorization"] = "Bearer " .. token })
end

function request()
  return req
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
