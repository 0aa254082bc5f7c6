import Foundation
import Logging

/// A run and its current (latest) state.
public struct RunRecord: Sendable, Equatable {
    /// The row id: the `n` of `swN`.
    public var number: Int64
    public var runID: String
    public var task: String
    public var trigger: RunTrigger
    public var eventSeq: Int64?
    public var attempt: Int
    public var repoURL: String
    public var branch: String
    public var commit: String
    public var createdAt: String
    /// The engine it was (or will be) built on; "" until a builder claims it.
    public var engine: String = ""
    /// The engine it built on, where runs recorded before engines existed (engine "") built: `local`.
    public var builtOn: String { engine.isEmpty ? EnginePool.implicitEngine : engine }
    /// Who asked for a manual run, a replay or a push retry ("" for automatic runs).
    public var requestedBy: String = ""
    /// The tag name of a tag push ("" otherwise).
    public var tag: String = ""
    /// The pull request number of a `pull_request` run.
    public var pullRequest: Int? = nil
    /// A pull request from a fork: built without any registry credentials.
    public var fromFork: Bool = false
    public var state: RunState
    public var exitCode: Int?
    public var updatedAt: String
    /// When a builder (or pusher, for a push retry) first took it; nil while queued.
    public var startedAt: String?
    /// When it reached its final status; nil while it is not final.
    public var finishedAt: String?
    public var durationsJSON: String
    public var digestsJSON: String

    public var status: RunStatus {
        get { state.status }
        set { state.status = newValue }
    }
    public var reason: String {
        get { state.reason }
        set { state.reason = newValue }
    }
    public var step: RunStep { state.step }

    /// The run's images: every tag it built, with its digest once pushed ("" until then).
    public var images: [(tag: String, digest: String)] {
        let map = (try? JSONSerialization.jsonObject(with: Data(digestsJSON.utf8)) as? [String: String]) ?? [:]
        return map.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Seconds per step (`fetch`, `checkout`, `build`, `push`) as recorded so far.
    public var durations: [String: Double] {
        (try? JSONSerialization.jsonObject(with: Data(durationsJSON.utf8)) as? [String: Double]) ?? [:]
    }

    public static func == (a: RunRecord, b: RunRecord) -> Bool { a.number == b.number && a.state == b.state && a.updatedAt == b.updatedAt }
}

/// A run the matcher (or an operator) asks for.
public struct NewRun: Sendable, Equatable {
    public var task: String
    public var trigger: RunTrigger
    public var eventSeq: Int64?
    public var repoURL: String
    public var branch: String
    public var commit: String
    public var attempt: Int = 1
    public var requestedBy: String = ""
    public var tag: String = ""
    public var pullRequest: Int? = nil
    public var fromFork: Bool = false

    public init(
        task: String, trigger: RunTrigger, eventSeq: Int64?, repoURL: String, branch: String, commit: String, attempt: Int = 1,
        requestedBy: String = "", tag: String = "", pullRequest: Int? = nil
    ) {
        self.task = task
        self.trigger = trigger
        self.eventSeq = eventSeq
        self.repoURL = repoURL
        self.branch = branch
        self.commit = commit
        self.attempt = attempt
        self.requestedBy = requestedBy
        self.tag = tag
        self.pullRequest = pullRequest
    }
}

/// What a stage reports with a transition: exit code, durations, images.
public struct RunFacts: Sendable {
    public var exitCode: Int?
    /// `{"fetch": 0.05, …}`; nil keeps the run's current durations.
    public var durationsJSON: String?
    /// `{"tag": "sha256:…" or ""}`; nil keeps the run's current images.
    public var digestsJSON: String?

    public init(exitCode: Int? = nil, durationsJSON: String? = nil, digestsJSON: String? = nil) {
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

extension Logger {
    /// This logger with a run's fields (`RUN_ID`, `TASK`, `COMMIT`, `ENGINE` in the journal).
    public func `for`(_ run: RunRecord) -> Logger {
        var logger = self
        logger[metadataKey: "run.id"] = "\(run.runID)"
        logger[metadataKey: "task"] = "\(run.task)"
        logger[metadataKey: "commit"] = "\(run.commit)"
        if !run.engine.isEmpty { logger[metadataKey: "engine"] = "\(run.engine)" }
        return logger
    }
}
