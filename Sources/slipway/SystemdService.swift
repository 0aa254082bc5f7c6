import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SlipwayCore
import Synchronization
import UnixSignals

/// Talks to systemd: `STATUS=` with the queue, `WATCHDOG=1` only while the event loop and the
/// database answer, `STOPPING=1` when shutdown begins. `READY=1` is sent by the listener once bound.
///
/// It is the last service in the group, so it is the first told to stop: STOPPING=1 goes out
/// before anything else winds down.
struct SystemdService: Service {
    let notifier: SystemdNotifier
    let log: EventLog
    let runs: RunStore
    let watchdogInterval: Duration?
    let allowTestHang: Bool
    let logger: Logger

    func run() async throws {
        guard notifier.isEnabled else {
            try? await gracefulShutdown()
            return
        }
        let hung = StopFlag()
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                if allowTestHang {
                    group.addTask {
                        // Test-only: SIGUSR2 makes the daemon behave as if its event loop hung (no more WATCHDOG=1).
                        for await _ in await UnixSignalsSequence(trapping: .sigusr2).cancelOnGracefulShutdown() {
                            logger.warning("SIGUSR2 with SLIPWAY_TEST_HANG=1: simulating a hang, watchdog pings stop")
                            hung.set()
                        }
                    }
                }
                group.addTask {
                    let period = watchdogInterval.map { $0 / 2 } ?? .seconds(10)
                    while !Task.isCancelled {
                        let alive = await isAlive()
                        if alive && !hung.isSet {
                            if watchdogInterval != nil { notifier.watchdog() }
                            if let counts = try? await runs.activeCounts() {
                                notifier.status("Ready: \(counts.running) running, \(counts.queued) queued, \(log.lastCommittedSeq) events")
                            }
                        } else if !alive {
                            logger.error("watchdog: the event loop or the event log is not answering; not pinging systemd")
                        }
                        try? await Task.sleep(for: period)
                    }
                }
                try? await gracefulShutdown()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            notifier.stopping()
        }
    }

    /// The NIO event loop runs a task, and the event log takes a write, each within 5 s.
    func isAlive() async -> Bool {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let probe = loop.scheduleTask(in: .zero) { true }
        let loopAlive = await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await probe.futureResult.get()) ?? false }
            group.addTask {
                try? await Task.sleep(for: .seconds(5))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        guard loopAlive else { return false }
        do {
            try await log.checkWritable()
            return true
        } catch {
            return false
        }
    }
}
