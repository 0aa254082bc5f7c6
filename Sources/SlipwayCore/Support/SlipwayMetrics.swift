import Metrics

/// Slipway's metric names, in one place (Prometheus conventions: snake_case, `_total`, `_seconds`).
public enum SlipwayMetrics {
    public static func delivery(event: String, status: Int) {
        Counter(label: "slipway_webhook_deliveries_total", dimensions: [("event", event), ("status", "\(status)")]).increment()
    }

    public static func signatureFailure() {
        Counter(label: "slipway_webhook_signature_failures_total").increment()
    }

    public static func appendLatency(_ duration: Duration) {
        Timer(label: "slipway_event_log_append_seconds").recordNanoseconds(duration.nanoseconds)
    }

    public static func runFinished(status: RunStatus) {
        Counter(label: "slipway_runs_finished_total", dimensions: [("status", status.rawValue)]).increment()
    }

    public static func step(_ step: String, seconds: Double) {
        Timer(label: "slipway_run_step_seconds", dimensions: [("step", step)]).recordNanoseconds(Int64(seconds * 1e9))
    }

    public static func queue(queued: Int, running: Int) {
        Gauge(label: "slipway_runs_queued").record(queued)
        Gauge(label: "slipway_runs_running").record(running)
    }
}

extension Duration {
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}
