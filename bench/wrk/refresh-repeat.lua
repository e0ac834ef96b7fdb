-- The grace-window path: POST /auth/refresh with refresh tokens that were each used once a
-- moment ago (TOKENS_IN), round robin. Within the grace window every answer is the same
-- successor again, and nothing is written.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")

local tokens, next_index = {}, 0
refused = 0
local path = os.getenv("REFRESH_PATH") or "/auth/refresh"
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  for line in io.lines(os.getenv("TOKENS_IN")) do
    if #line > 0 then table.insert(tokens, line) end
  end
end

function request()
  next_index = next_index % #tokens + 1
  return wrk.format("POST", path, headers, '{"refresh_token":"' .. tokens[next_index] .. '"}')
end

function response(status, headers, body)
  if status ~= 200 then refused = refused + 1 end
end
