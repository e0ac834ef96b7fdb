-- Shared by every wrk script of the benchmark: collects the threads and, when wrk is done,
-- prints one line "BENCH_JSON {...}" that bench/lib/wrk-runner.ts reads. With TOKENS_OUT set,
-- it also writes the refresh tokens still unused (see refresh-chain.lua) to that file.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local function counter(name)
  local total = 0
  for _, thread in ipairs(threads) do
    local value = thread:get(name)
    if type(value) == "number" then total = total + value end
  end
  return total
end

function done(summary, latency, requests)
  local out = os.getenv("TOKENS_OUT")
  local left = 0
  if out then
    local file = assert(io.open(out, "w"))
    for _, thread in ipairs(threads) do
      local pool, head, tail = thread:get("pool"), thread:get("head"), thread:get("tail")
      if type(pool) == "table" then
        for i = head, tail do
          if pool[i] then
            file:write(pool[i], "\n")
            left = left + 1
          end
        end
      end
    end
    file:close()
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"durationUs":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,' ..
    '"statusErrors":%d,"timeouts":%d,"p50Us":%d,"p90Us":%d,"p99Us":%d,"maxUs":%d,' ..
    '"refused":%d,"exhausted":%d,"tokensLeft":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    counter("refused"), counter("exhausted"), left))
end
