-- POST /auth/login with one user's credentials (LOGIN_BODY); with LOGIN_DELAY_MS, each
-- connection waits that long between two logins.
dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")

wrk.method = "POST"
wrk.body = os.getenv("LOGIN_BODY")
wrk.headers["Content-Type"] = "application/json"

local pause = tonumber(os.getenv("LOGIN_DELAY_MS") or "0")
if pause > 0 then
  function delay()
    return pause
  end
end
