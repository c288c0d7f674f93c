-- Latency at a fixed request rate (wrk2 is not in Debian): run wrk with as
-- many threads as connections (-t C -c C), so each thread drives exactly one
-- keep-alive connection, and pace it with wrk's delay() hook.
--   wrk -t C -c C ... -s rate.lua -- sessions=FILE mode=cookie|none rate=R
--       threads=C out=FILE
-- R is the total rate; each connection sends one request every C/R seconds
-- on a fixed schedule. Two latencies are kept:
--   * wrk's own histogram measures from the moment a request is written;
--     if a response is late, the next request goes out late and the wait is
--     never counted (coordinated omission);
--   * this script also measures from the *scheduled* send time whenever the
--     previous response on the connection came back after that time (as
--     wrk2 does), which counts that wait; when the connection was free in
--     time it measures from the actual send, so the client's millisecond
--     timer granularity is not charged to the server. Those samples are written to `out`
--     (one number per line, microseconds) and run.py pools them.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local common = dofile(dir .. "common.lua")
local ffi = require("ffi")

ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local ts = ffi.new("bench_timespec")
local function now_us()
   ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
   return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end

setup = common.setup

local requests, n, i
-- Globals (not local) so that done() can read them with thread:get().
wrapped = 0
local interval_us, next_us, start_us
local last_response_us = 0
-- Globals, read by done() with thread:get(). Samples are one string because
-- thread:get() copies strings and numbers to the main state, not tables.
samples, late, count = "", 0, 0
-- Answers other than 200, as "status:count,..." and the first such body
-- (for run.py's error message).
bad, bad_body = "", ""
local bad_counts = {}

function init(args)
   local opts = common.parse_args(args)
   local list = common.load_sessions(opts.sessions)
   local threads = tonumber(opts.threads or "1")
   local rate = assert(tonumber(opts.rate), "missing rate=R")
   requests = {}
   for j = thread_id + 1, #list, threads do
      local s = list[j]
      table.insert(requests, common.get_request(s[1], s[2], opts.mode or "cookie"))
   end
   n, i, wrapped = #requests, 0, 0
   interval_us = 1e6 * threads / rate
   -- Spread the connections over one interval so they do not fire together.
   next_us = now_us() + interval_us * (thread_id + 0.5) / threads
   out_file = opts.out -- read back by done() in the main state
end

-- Milliseconds to wait before the next request (wrk's timers are in ms).
function delay()
   local wait = next_us - now_us()
   if wait <= 0 then return 0 end
   return math.floor(wait / 1000 + 0.5)
end

function request()
   i = i + 1
   if i > n then
      i = 1
      wrapped = wrapped + 1
   end
   local now = now_us()
   if last_response_us > next_us then
      -- The previous response came back after this request was due: the
      -- server held the connection, so the wait counts (wrk2's correction).
      start_us = next_us
      late = late + 1
   else
      -- The connection was free in time; any lateness is the client's own
      -- millisecond timer, which is not the server's fault.
      start_us = now
   end
   next_us = next_us + interval_us
   return requests[i]
end

function response(status, headers, body)
   last_response_us = now_us()
   if status ~= 200 then
      bad_counts[status] = (bad_counts[status] or 0) + 1
      local parts = {}
      for k, v in pairs(bad_counts) do parts[#parts + 1] = k .. ":" .. v end
      bad = table.concat(parts, ",")
      if bad_body == "" then bad_body = status .. " " .. (body or "") end
   end
   samples = samples .. string.format("%.0f\n", last_response_us - start_us)
   count = count + 1
end

function done(summary, latency, _)
   local w, l, count = 0, 0, 0
   local out = nil
   local statuses = {}
   for _, t in ipairs(common.threads) do
      local b = t:get("bad") or ""
      if b ~= "" then statuses[#statuses + 1] = b .. " (" .. (t:get("bad_body") or "") .. ")" end
      w = w + (t:get("wrapped") or 0)
      l = l + (t:get("late") or 0)
      out = out or t:get("out_file")
      count = count + (t:get("count") or 0)
      if out then
         local f = assert(io.open(out, "a"))
         f:write(t:get("samples") or "")
         f:close()
      end
   end
   common.report(summary, latency, { wrapped = w, late_sends = l, samples = count,
                                     bad_statuses = table.concat(statuses, ",") })
end
