-- bench.lua: the wrk script of the licensegate load harness
-- (integration/bench). It is written next to the token files and run as
--
--   wrk ... -s bench.lua <url> -- [tokens.txt [sequence.txt]]
--
-- Without an argument the request is wrk's static one (the hot token comes
-- in with -H "Authorization: Bearer ..."). With a token file (one token a
-- line) every thread pre-formats one request per token at init, so its
-- per-request cost stays as low as for the static request. The sequence
-- file (1-based token indices, one a line, drawn by the harness: uniform or
-- Zipf-skewed) says which token each request carries; every thread walks
-- it and wraps around, from the run's start (the third argument, drawn by
-- the harness for every run) plus its share: of t threads (the fourth
-- argument), thread k starts k/t of the sequence further on, so no two
-- threads send the same stretch in a run, and a license's requests come
-- as the draws say. Without it the threads rotate through the tokens in
-- order.
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
   local seq = {}
   local seqPath = args[2]
   if seqPath ~= nil and seqPath ~= "" then
      for line in io.lines(seqPath) do
         local k = tonumber(line)
         if k ~= nil then
            if k < 1 or k > n then
               error("token index " .. k .. " out of 1.." .. n)
            end
            seq[#seq + 1] = k
         end
      end
   else
      for k = 1, n do
         seq[k] = k
      end
   end
   local m = #seq
   if m == 0 then
      error("empty sequence " .. seqPath)
   end
   local start = tonumber(args[3] or "") or 0
   local threads = math.max(1, tonumber(args[4] or "") or 1)
   local i = (start + (id or 0) * math.floor(m / threads)) % m
   request = function()
      i = i + 1
      if i > m then
         i = 1
      end
      return reqs[seq[i]]
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
