-- bench.lua: the wrk script of the licensegate load harness
-- (integration/bench). It is written next to the token file and run as
--
--   wrk ... -s bench.lua <url> -- [tokens.txt]
--
-- Without an argument the request is wrk's static one (the hot token comes
-- in with -H "Authorization: Bearer ..."). With a token file (one token a
-- line) every thread pre-formats one request per token at init and then
-- rotates through them, one token per request, starting at a different
-- offset per thread; formatting up front keeps wrk's per-request cost as low
-- as for the static request.
--
-- done() prints one line, "BENCHJSON {...}", that the harness parses:
-- latencies in microseconds.

local counter = 0

function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
end

function init(args)
   local path = args[1]
   if path == nil or path == "" then
      return
   end
   local reqs = {}
   for line in io.lines(path) do
      if line ~= "" then
         local h = {}
         for k, v in pairs(wrk.headers) do
            h[k] = v
         end
         h["Authorization"] = "Bearer " .. line
         reqs[#reqs + 1] = wrk.format(nil, nil, h)
      end
   end
   local n = #reqs
   if n == 0 then
      error("no tokens in " .. path)
   end
   local i = ((id or 0) * 7919) % n
   request = function()
      i = i + 1
      if i > n then
         i = 1
      end
      return reqs[i]
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
      '"lat_mean_us":%.2f,"lat_max_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.max,
      latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9)))
end
