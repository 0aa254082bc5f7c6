-- Signed GitHub push deliveries, each with a unique X-GitHub-Delivery id.
-- Environment: BENCH_BODY (payload file), BENCH_SIGNATURE ("sha256=..."), BENCH_RUN (id prefix).
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = "push"
wrk.headers["X-GitHub-Hook-ID"] = "4242"
wrk.headers["X-Hub-Signature-256"] = os.getenv("BENCH_SIGNATURE")
prefix = os.getenv("BENCH_RUN") or "run"

threads = {}
next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

sent = 0
bad = 0
function request()
  sent = sent + 1
  wrk.headers["X-GitHub-Delivery"] = prefix .. "-" .. tid .. "-" .. sent
  return wrk.format()
end

function response(status, headers, body)
  if status ~= 202 and status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local errors = 0
  for _, t in ipairs(threads) do errors = errors + t:get("bad") end
  io.write(string.format("RESULT requests=%d seconds=%.2f rps=%.0f p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000,
    errors, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
