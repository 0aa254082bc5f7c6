-- Signed GitHub push deliveries: each request a distinct signed body (a body already in the log
-- is a duplicate whatever its delivery id) with a unique X-GitHub-Delivery id.
-- Environment: BENCH_BODIES (lines "sha256=<hmac>\t<body>" from signed-bodies.py), BENCH_RUN (id prefix),
-- BENCH_THREADS (wrk's -t), BENCH_EVENT (X-GitHub-Event, default push). Each thread takes its own share of the bodies; past the end it wraps
-- around (those repeats are duplicates: `reused` in the RESULT line says how many).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-GitHub-Event"] = os.getenv("BENCH_EVENT") or "push"
wrk.headers["X-GitHub-Hook-ID"] = "4242"
prefix = os.getenv("BENCH_RUN") or "run"

threads = {}
next_id = 0
function setup(thread)
  next_id = next_id + 1
  thread:set("tid", next_id)
  table.insert(threads, thread)
end

function init(args)
  local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
  signatures, bodies = {}, {}
  local n = 0
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    n = n + 1
    if (n - 1) % nthreads == tid - 1 then
      local tab = line:find("\t", 1, true)
      table.insert(signatures, line:sub(1, tab - 1))
      table.insert(bodies, line:sub(tab + 1))
    end
  end
end

sent = 0
bad = 0
reused = 0
-- BENCH_OFFSET: bodies each thread skips (a later round of the same run starts after the earlier ones).
offset = tonumber(os.getenv("BENCH_OFFSET") or "0")
function request()
  sent = sent + 1
  local i = (sent - 1 + offset) % #bodies + 1
  if sent + offset > #bodies then reused = reused + 1 end
  wrk.headers["X-GitHub-Delivery"] = prefix .. "-" .. tid .. "-" .. sent
  wrk.headers["X-Hub-Signature-256"] = signatures[i]
  return wrk.format(nil, nil, nil, bodies[i])
end

function response(status, headers, body)
  if status ~= 202 and status ~= 200 then bad = bad + 1 end
end

function done(summary, latency, requests)
  local errors, repeats = 0, 0
  for _, t in ipairs(threads) do
    errors = errors + t:get("bad")
    repeats = repeats + t:get("reused")
  end
  io.write(string.format("RESULT requests=%d seconds=%.2f rps=%.0f p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f non2xx=%d socket_errors=%d reused_bodies=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000, latency.max / 1000,
    errors, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, repeats))
end
