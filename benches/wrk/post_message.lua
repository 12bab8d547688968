-- wrk script of `make bench`, write scenario: POST /api/v1/conversations/{id}/messages.
--
--   wrk -c 32 -t 1 -d 10s -s benches/wrk/post_message.lua http://HOST:PORT -- \
--       IDS_FILE TOKEN BODIES_FILE [KEY_PREFIX]
--
-- Each request posts to a conversation picked at random from IDS_FILE (one id per
-- line) a body picked at random from BODIES_FILE (one JSON document per line, UTF-8),
-- with `Authorization: Bearer TOKEN`. With KEY_PREFIX, every request also carries a
-- unique `Idempotency-Key: KEY_PREFIX-THREAD-N` (the prefix must differ between runs:
-- a key is kept 24 h, and the same key with another body is refused). Every response
-- that is not 2xx is an error; `done` prints one line `BENCH_JSON {...}` in the format
-- of conversations.lua, which scripts/bench.sh parses. A line of IDS_FILE may also be
-- `ID TOKEN`: that conversation is posted to with its own token (conversations of
-- several businesses: the event-stream scenario's contention table); TOKEN is the
-- default for lines without one.

local threads = {}
local thread_count = 0

function setup(thread)
  thread_count = thread_count + 1
  thread:set("thread_number", thread_count)
  table.insert(threads, thread)
end

local function lines_of(path)
  local out = {}
  for line in io.lines(path) do
    if #line > 0 then
      out[#out + 1] = line
    end
  end
  if #out == 0 then
    error("nothing in " .. path)
  end
  return out
end

function init(args)
  local ids_path, token, bodies_path = args[1], args[2], args[3]
  if ids_path == nil or token == nil or bodies_path == nil then
    error("usage: -s post_message.lua URL -- IDS_FILE TOKEN BODIES_FILE [KEY_PREFIX]")
  end
  paths = {}
  tokens = {}
  for _, line in ipairs(lines_of(ids_path)) do
    local id, own = line:match("^(%S+)%s+(%S+)$")
    if id == nil then
      id = line
    end
    paths[#paths + 1] = "/api/v1/conversations/" .. id .. "/messages"
    tokens[#paths] = "Bearer " .. (own or token)
  end
  bodies = lines_of(bodies_path)
  key_prefix = args[4]
  if key_prefix == "" then
    key_prefix = nil
  end
  if key_prefix then
    key_prefix = key_prefix .. "-" .. tostring(thread_number or 1) .. "-"
  end
  counter = 0
  math.randomseed(os.time() * 1000 + 7919 * (thread_number or 1))
  headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }
  errors = 0
  first_error = ""
end

function request()
  if key_prefix then
    counter = counter + 1
    headers["Idempotency-Key"] = key_prefix .. counter
  end
  local n = math.random(#paths)
  headers["Authorization"] = tokens[n]
  return wrk.format("POST", paths[n], headers, bodies[math.random(#bodies)])
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
