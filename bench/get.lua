-- Scenarios 1-3: Get Session. Each request takes the next pre-created
-- (token, node) pair; the node is named by cookie (scenario 1), by the
-- gcbSessionServer header (2) or not at all (3, the front must find the
-- owner from the token in the path).
--   wrk ... -s get.lua -- sessions=FILE mode=cookie|header|none [threads=T]
-- With -tT, pass threads=T: thread k takes entries k, k+T, ... of the list.
-- The report counts how often a thread came to the end of its share and
-- started over (`wrapped`): for cold lookups, where every token must be new
-- to the proxy, run.py refuses a run that wrapped.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")

setup = common.setup

local requests, n, i
-- Globals (not local) so that done() can read them with thread:get().
wrapped = 0

function init(args)
   local opts = common.parse_args(args)
   local list = common.load_sessions(opts.sessions)
   local threads = tonumber(opts.threads or "1")
   requests = {}
   -- Thread k takes entries k, k+T, k+2T, ... so no two threads share a token.
   for j = thread_id + 1, #list, threads do
      local s = list[j]
      table.insert(requests, common.get_request(s[1], s[2], opts.mode))
   end
   n = #requests
   i = 0
   wrapped = 0
end

function request()
   i = i + 1
   if i > n then
      i = 1
      wrapped = wrapped + 1
   end
   return requests[i]
end

function done(summary, latency, _)
   local w = 0
   for _, t in ipairs(common.threads) do w = w + (t:get("wrapped") or 0) end
   common.report(summary, latency, { wrapped = w })
end
