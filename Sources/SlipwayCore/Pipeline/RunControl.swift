import Synchronization

/// A one-shot signal a task can await: fired once, by an operator's cancel or by shutdown.
public final class StopSignal: Sendable {
    private let signal = CommitSignal(0)
    public init() {}
    public var isFired: Bool { signal.value > 0 }
    public func fire() { signal.advance(to: 1) }
    /// Returns once fired, or when the waiting task is cancelled.
    public func wait() async { await signal.wait(beyond: 0) }
}

/// What a stage holds while it works on one run: how to know it must stop, and why.
public struct RunHandle: Sendable {
    public let runID: String
    public let stop: StopSignal
    let control: RunControl

    /// The operator's reason, when the run was canceled (nil for a shutdown).
    public var cancelReason: String? { control.cancelReason(runID) }
    /// The daemon is stopping: the run is left for recovery at the next start.
    public var isShutdown: Bool { control.isShuttingDown && cancelReason == nil }
}

/// Cancel requests and stop signals of the runs the stages hold, and their ends, which the admin
/// API awaits (no polling): a cancel stops the run's processes within milliseconds.
public final class RunControl: Sendable {
    private struct Entry {
        var stop = StopSignal()
        var reason: String?
        var ended = StopSignal()
    }

    private let entries = Mutex<[String: Entry]>([:])
    private let shutdown = Atomic<Bool>(false)

    public init() {}

    /// A stage starts working on `runID`.
    public func register(_ runID: String) -> RunHandle {
        let stop = entries.withLock { entries -> StopSignal in
            if let existing = entries[runID] { return existing.stop }
            let entry = Entry()
            if shutdown.load(ordering: .acquiring) { entry.stop.fire() }
            entries[runID] = entry
            return entry.stop
        }
        return RunHandle(runID: runID, stop: stop, control: self)
    }

    /// Asks `runID` to stop; `reason` is recorded ("canceled by root"). Returns a signal fired
    /// when the stage holding the run has recorded its end (or handed it on).
    @discardableResult
    public func requestCancel(_ runID: String, reason: String) -> StopSignal {
        // A stage may be about to take the run (claimed, not yet registered): the entry waits for it.
        let entry = entries.withLock { entries -> Entry in
            var entry = entries[runID] ?? Entry()
            entry.reason = entry.reason ?? reason
            entries[runID] = entry
            return entry
        }
        entry.stop.fire()
        return entry.ended
    }

    public func cancelReason(_ runID: String) -> String? { entries.withLock { $0[runID]?.reason } }

    var isShuttingDown: Bool { shutdown.load(ordering: .acquiring) }

    /// Stops every held run for shutdown: their processes get TERM, then KILL.
    public func stopAll() {
        shutdown.store(true, ordering: .releasing)
        for entry in entries.withLock({ Array($0.values) }) { entry.stop.fire() }
    }

    /// The stage recorded the run's end (or handed it on): waiters are woken.
    public func finished(_ runID: String) {
        let entry = entries.withLock { $0.removeValue(forKey: runID) }
        entry?.ended.fire()
    }
}
