import Foundation

/// A run's status, as DESIGN.md names them.
public enum RunStatus: String, Sendable, CaseIterable, Codable {
    case queued = "Queued"
    case running = "Running"
    case succeeded = "Succeeded"
    case failed = "Failed"
    case canceled = "Canceled"
    case timeout = "Timeout"
    case error = "Error"

    public var isFinal: Bool { self != .queued && self != .running }
}

/// A run and its current (latest) state.
public struct RunRecord: Sendable, Equatable {
    /// The row id: the `n` of `swN`.
    public var number: Int64
    public var runID: String
    public var task: String
    public var trigger: String
    public var eventSeq: Int64?
    public var attempt: Int
    public var repoURL: String
    public var branch: String
    public var commit: String
    public var createdAt: String
    public var status: RunStatus
    public var reason: String
    public var step: String
    public var exitCode: Int?
    public var updatedAt: String
    public var durationsJSON: String
    public var digestsJSON: String

    /// The run's images: every tag it built, with its digest once pushed ("" until then).
    public var images: [(tag: String, digest: String)] {
        let map = (try? JSONSerialization.jsonObject(with: Data(digestsJSON.utf8)) as? [String: String]) ?? [:]
        return map.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Seconds per step (`fetch`, `checkout`, `build`, `push`) as recorded so far.
    public var durations: [String: Double] {
        (try? JSONSerialization.jsonObject(with: Data(durationsJSON.utf8)) as? [String: Double]) ?? [:]
    }

    /// Queued (or claimed) by `slipway run retry-push`: push the kept images, build nothing.
    public var isPushRetry: Bool { step == "push" && reason.hasPrefix(RunStore.retryPushReason) }
}

/// A run the matcher (or an operator) asks for.
public struct NewRun: Sendable, Equatable {
    public var task: String
    public var trigger: String
    public var eventSeq: Int64?
    public var repoURL: String
    public var branch: String
    public var commit: String
    public var attempt: Int = 1

    public init(task: String, trigger: String, eventSeq: Int64?, repoURL: String, branch: String, commit: String, attempt: Int = 1) {
        self.task = task
        self.trigger = trigger
        self.eventSeq = eventSeq
        self.repoURL = repoURL
        self.branch = branch
        self.commit = commit
        self.attempt = attempt
    }
}

/// A state change to append.
public struct RunStateChange: Sendable {
    public var status: RunStatus
    public var reason: String = ""
    public var step: String = ""
    public var exitCode: Int?
    public var durationsJSON: String = "{}"
    public var digestsJSON: String = "{}"

    public init(
        _ status: RunStatus, reason: String = "", step: String = "", exitCode: Int? = nil, durationsJSON: String = "{}",
        digestsJSON: String = "{}"
    ) {
        self.status = status
        self.reason = reason
        self.step = step
        self.exitCode = exitCode
        self.durationsJSON = durationsJSON
        self.digestsJSON = digestsJSON
    }
}

/// One task's line in an event's match trace.
public struct MatchTrace: Sendable, Equatable {
    public var task: String
    public var matched: Bool
    public var reason: String
    public var runID: String?
}
