import Hummingbird
import NIOCore
import Prometheus
import SlipwayCore

/// `GET /metrics` in Prometheus text format; queue gauges are read fresh at each scrape.
public struct MetricsEndpoint: Sendable {
    let registry: PrometheusCollectorRegistry
    let runs: RunStore?

    public init(registry: PrometheusCollectorRegistry, runs: RunStore?) {
        self.registry = registry
        self.runs = runs
    }

    public func addRoutes(to router: Router<SlipwayRequestContext>) {
        router.get("/metrics") { _, _ in
            if let runs = self.runs, let counts = try? await runs.activeCounts() {
                SlipwayMetrics.queue(queued: counts.queued, running: counts.running)
            }
            var buffer: [UInt8] = []
            registry.emit(into: &buffer)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: buffer)))
        }
    }
}
