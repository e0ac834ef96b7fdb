-- POST /auth/refresh where every request presents a refresh token never presented before:
-- the pool starts with one token per session (TOKENS_IN, one per line); a request takes the
-- oldest, its answer puts the successor at the back. Each token is sent exactly once, so
-- chains never repeat and never race. A non-200 answer ends its chain (counted as "refused");
-- an empty pool sends a malformed token (counted as "exhausted"), which the caller treats as
-- a failed run. TOKENS_OUT receives what is left for the next run.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")

pool, head, tail, refused, exhausted = {}, 1, 0, 0, 0
local path = os.getenv("REFRESH_PATH") or "/auth/refresh"
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  for line in io.lines(os.getenv("TOKENS_IN")) do
    if #line > 0 then
      tail = tail + 1
      pool[tail] = line
    end
  end
end

function request()
  local token = "tsr_exhausted"
  if head <= tail then
    token = pool[head]
    pool[head] = nil
    head = head + 1
  else
    exhausted = exhausted + 1
  end
  return wrk.format("POST", path, headers, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
  local successor = status == 200 and body:match('"refresh_token":"(tsr_[%w_%-]+)"')
  if successor then
    tail = tail + 1
    pool[tail] = successor
  else
    refused = refused + 1
  end
end
