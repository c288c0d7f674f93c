-- Scenario 5: mixed. Out of every 10 requests: 7 Get Session with the
-- owner's cookie, 2 Get Session with no cookie (owner lookup; tokens are
-- cached after the warm-up) and 1 Create Session.
--   wrk ... -s mixed.lua -- sessions=FILE
-- nginx and HAProxy cannot look an owner up: their 2-in-10 lookups go
-- round-robin and 2 out of 3 of them hit a node that answers 404. run.py
-- allows that share of non-2xx answers for those fronts only.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup

-- c = cookie hit, l = lookup, p = create (POST)
local PATTERN = { "c", "c", "l", "c", "c", "p", "c", "l", "c", "c" }

local hits, lookups, create, h, l, k

function init(args)
   local opts = common.parse_args(args)
   local list = common.load_sessions(opts.sessions)
   hits, lookups = {}, {}
   for _, s in ipairs(list) do
      table.insert(hits, common.get_request(s[1], s[2], "cookie"))
      table.insert(lookups, common.get_request(s[1], s[2], "none"))
   end
   create = common.create_request()
   -- Start the threads at different places in the list.
   h = (thread_id * 37) % #hits
   l = (thread_id * 53) % #lookups
   k = 0
end

function request()
   k = k % #PATTERN + 1
   local kind = PATTERN[k]
   if kind == "c" then
      h = h % #hits + 1
      return hits[h]
   elseif kind == "l" then
      l = l % #lookups + 1
      return lookups[l]
   end
   return create
end

function done(summary, latency, _)
   common.report(summary, latency)
end
