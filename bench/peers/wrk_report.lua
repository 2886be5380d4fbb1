-- wrk script for bench/compare.sh: writes wrk's summary as the comparison's
-- JSON report (the field names of `wirespeed load --json`) to the file
-- named by WRK_JSON. WRK_CONNECTIONS is wrk's -c; WRK_CLOSE=1 when every
-- request carries "Connection: close" (one connection per request).

local threads = {}

setup = function(thread)
   table.insert(threads, thread)
end

-- Runs in each thread once Host and the -H headers are set: the exact
-- request wrk will send on every request.
init = function(args)
   request_bytes = #wrk.format()
end

done = function(summary, latency, requests)
   local path = os.getenv("WRK_JSON")
   if path == nil then
      return
   end
   local secs = summary.duration / 1e6
   local e = summary.errors
   local total = e.connect + e.read + e.write + e.status + e.timeout
   local close = os.getenv("WRK_CLOSE") == "1"
   local conns = tonumber(os.getenv("WRK_CONNECTIONS") or "0")
   local opened = conns
   if close then
      opened = summary.requests
   end
   local per_request = 0
   if #threads > 0 then
      per_request = threads[1]:get("request_bytes") or 0
   end
   local tx = per_request * summary.requests
   local function rate(n)
      if secs > 0 then
         return n / secs
      end
      return 0
   end
   local function us(v)
      return string.format("%.3f", v)
   end
   local lat = "null"
   if summary.requests > 0 then
      lat = string.format(
         '{"p50": %s, "p90": %s, "p99": %s, "p999": %s, "p9999": %s, "max": %s, "mean": %s}',
         us(latency:percentile(50)), us(latency:percentile(90)), us(latency:percentile(99)),
         us(latency:percentile(99.9)), us(latency:percentile(99.99)), us(latency.max),
         us(latency.mean))
   end
   local status = "ok"
   if total > 0 then
      status = "errors"
   end
   local cps = 0
   if close then
      cps = rate(summary.requests)
   end
   local f = assert(io.open(path, "w"))
   f:write(string.format(
      '{"workload": "%s", "requests": %d, "connections_opened": %d, ' ..
      '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, "total": %d}, ' ..
      '"duration_s": %.6f, "rps": %.3f, "cps": %.3f, "bytes_rx": %d, "bytes_tx": %d, "gbps": %.6f, ' ..
      '"latency_us": %s, "status": "%s"}\n',
      close and "http-close" or "http", summary.requests, opened,
      e.connect, e.read, e.write, e.status, e.timeout, total,
      secs, rate(summary.requests), cps, summary.bytes, tx, rate(summary.bytes) * 8 / 1e9,
      lat, status))
   f:close()
end
