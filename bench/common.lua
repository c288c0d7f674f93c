-- Shared by the wrk scripts of the benchmark (loaded with dofile).
--
-- Every script takes its parameters after wrk's `--`, as key=value words:
--   sessions=FILE   a text file, one `<sessionToken> <owner node>` a line,
--                   written by run.py (sessions pre-created on each node)
--   mode=cookie|header|none   how a Get Session names its node
-- and prints one line `BENCH_JSON {...}` at the end, which run.py parses.

local M = {}

M.origin = "http://bench.test"
M.base = "/cobrowse/rest/live/sessions"

-- `key=value` words after wrk's `--` into a table.
function M.parse_args(args)
   local t = {}
   for _, a in ipairs(args or {}) do
      local k, v = a:match("^([%w_]+)=(.*)$")
      if k then t[k] = v end
   end
   return t
end

-- { {token, node}, ... } from a sessions file. (A Lua table literal would
-- be simpler to load but is limited to 65,536 constants.)
function M.load_sessions(file)
   assert(file, "missing sessions=FILE")
   local list = {}
   for line in io.lines(file) do
      local token, node = line:match("^(%d+)%s+(%S+)")
      if token then list[#list + 1] = { token, node } end
   end
   assert(#list > 0, "no sessions in " .. file)
   return list
end

-- A Get Session of `token`, its owner `node` named by cookie, by header, or
-- not at all. Call from init() or later (see create_request).
function M.get_request(token, node, mode)
   local headers = { ["Origin"] = M.origin }
   if mode == "cookie" then
      headers["Cookie"] = "gcbSessionServer=" .. node
   elseif mode == "header" then
      headers["gcbSessionServer"] = node
   elseif mode ~= "none" then
      error("mode must be cookie, header or none, not " .. tostring(mode))
   end
   return wrk.format("GET", M.base .. "/" .. token, headers)
end

-- A Create Session: POST, no cookie, empty body ("" makes wrk.format send
-- Content-Length: 0). Call it from init() or later: wrk fills in the Host
-- header only then.
function M.create_request()
   return wrk.format("POST", M.base, {}, "")
end

-- setup() runs in the main Lua state once per wrk thread: number the threads
-- (each thread's init() then sees `thread_id`, 0-based) and keep them for done().
M.threads = {}
function M.setup(thread)
   thread:set("thread_id", #M.threads)
   table.insert(M.threads, thread)
end

local function json_value(v)
   if type(v) == "number" then
      if v ~= v or v == math.huge or v == -math.huge then return "null" end
      return string.format("%.17g", v)
   elseif type(v) == "table" then
      local parts = {}
      for k, x in pairs(v) do
         table.insert(parts, string.format("%q:%s", tostring(k), json_value(x)))
      end
      return "{" .. table.concat(parts, ",") .. "}"
   elseif type(v) == "boolean" then
      return tostring(v)
   else
      return string.format("%q", tostring(v))
   end
end

-- Summary line for run.py. Latencies in microseconds (from wrk's histogram:
-- measured from the moment the request was written).
function M.report(summary, latency, extra)
   local out = {
      requests = summary.requests,
      duration_us = summary.duration,
      bytes = summary.bytes,
      errors = {
         connect = summary.errors.connect,
         read = summary.errors.read,
         write = summary.errors.write,
         status = summary.errors.status,
         timeout = summary.errors.timeout,
      },
      latency_us = {
         p50 = latency:percentile(50),
         p99 = latency:percentile(99),
         p999 = latency:percentile(99.9),
         max = latency.max,
         mean = latency.mean,
      },
   }
   for k, v in pairs(extra or {}) do out[k] = v end
   io.write("BENCH_JSON ", json_value(out), "\n")
end

return M
