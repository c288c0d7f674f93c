-- Scenario 4: Create Session. POST, no cookie: the front balances.
--   wrk ... -s create.lua
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

local req

function init(_)
   req = common.create_request()
end

function request()
   return req
end

function done(summary, latency, _)
   common.report(summary, latency)
end
