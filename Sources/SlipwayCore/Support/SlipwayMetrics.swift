import Metrics
import Synchronization

/// Slipway's metric names, in one place (Prometheus conventions: snake_case, `_total`, `_seconds`).
///
/// Handles are created once and cached: asking the factory on every request costs locks and
/// label formatting on the webhook's hot path.
public enum SlipwayMetrics {
    private static let counters = Mutex<[String: Counter]>([:])
    private static let timers = Mutex<[String: Timer]>([:])
    private static let appendTimer = Timer(label: "slipway_event_log_append_seconds")
    private static let signatureFailures = Counter(label: "slipway_webhook_signature_failures_total")

    private static func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return counters.withLock { cache in
            if let existing = cache[key] { return existing }
            let made = Counter(label: label, dimensions: dimensions)
            cache[key] = made
            return made
        }
    }

    public static func delivery(event: String, status: Int) {
        // Once per delivery: looked up by (event, status) without building the label key.
        let key = DeliveryKey(event: event, status: status)
        let handle = deliveryCounters.withLock { cache in
            if let existing = cache[key] { return existing }
            let made = counter("slipway_webhook_deliveries_total", [("event", event), ("status", "\(status)")])
            cache[key] = made
            return made
        }
        handle.increment()
    }

    private struct DeliveryKey: Hashable {
        var event: String
        var status: Int
    }

    private static let deliveryCounters = Mutex<[DeliveryKey: Counter]>([:])

    /// A webhook connection the listener closed itself: `limit` (too many open) or `read_timeout` (slow client).
    public static func connectionCut(reason: String) {
        counter("slipway_webhook_connections_cut_total", [("reason", reason)]).increment()
    }

    public static func signatureFailure() { signatureFailures.increment() }

    public static func appendLatency(_ duration: Duration) { appendTimer.recordNanoseconds(duration.nanoseconds) }

    public static func runFinished(status: RunStatus) {
        counter("slipway_runs_finished_total", [("status", status.rawValue)]).increment()
    }

    public static func step(_ step: String, seconds: Double) {
        let timer = timers.withLock { cache in
            if let existing = cache[step] { return existing }
            let made = Timer(label: "slipway_run_step_seconds", dimensions: [("step", step)])
            cache[step] = made
            return made
        }
        timer.recordNanoseconds(Int64(seconds * 1e9))
    }

    /// Free bytes where builds write (`data_dir`, or an engine).
    public static func diskFree(where place: String, bytes: Int64) {
        Gauge(label: "slipway_disk_free_bytes", dimensions: [("where", place)]).record(bytes)
    }

    /// What a cleanup removed (`run_logs`, `images`, `build_cache`): how many things and bytes.
    public static func retention(_ what: String, removed: Int, bytes: Int64) {
        counter("slipway_retention_removed_total", [("what", what)]).increment(by: Int64(removed))
        counter("slipway_retention_freed_bytes_total", [("what", what)]).increment(by: bytes)
    }

    public static func engine(_ name: String, up: Bool, running: Int) {
        Gauge(label: "slipway_engine_up", dimensions: [("engine", name)]).record(up ? 1 : 0)
        Gauge(label: "slipway_engine_running", dimensions: [("engine", name)]).record(running)
    }

    public static func redelivery() { counter("slipway_github_redeliveries_total", []).increment() }

    public static func queue(queued: Int, running: Int) {
        Gauge(label: "slipway_runs_queued").record(queued)
        Gauge(label: "slipway_runs_running").record(running)
    }
}

extension Duration {
    public var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}
