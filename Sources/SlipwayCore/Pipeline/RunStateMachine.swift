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

/// The step a run is in, or ended in.
public enum RunStep: String, Sendable, CaseIterable, Codable {
    case none = ""
    case prepare, resolve, fetch, checkout, build, push
}

/// What started a run (DESIGN.md "Runs").
public enum RunTrigger: String, Sendable, CaseIterable, Codable {
    case push, tag
    case pullRequest = "pull_request"
    case manual, replay
    case baseImage = "base-image"
    case timer

    /// Automatic runs coalesce: a newer one supersedes an older queued one of the same task and branch.
    public var isAutomatic: Bool { [.push, .tag, .timer, .baseImage].contains(self) }
}

/// A run's work: a whole build (and push), or only the push of images it built before.
public enum RunKind: String, Sendable, CaseIterable, Codable {
    case build
    case pushRetry = "push-retry"
}

/// Which stage holds the run: the queue each stage claims from.
public enum RunPhase: String, Sendable, CaseIterable, Codable {
    /// Waiting for a build slot (status `Queued`).
    case queued
    /// Claimed by the builder: fetch, checkout, build (status `Running`).
    case building
    /// Built; waiting for a push slot (status `Running`, or `Queued` for a push retry).
    case pushWait = "push-wait"
    /// Claimed by the pusher (status `Running`).
    case pushing
    /// Finished: the status says how.
    case ended
}

/// The typed state of one run: what its latest `run_states` row says.
public struct RunState: Sendable, Equatable {
    public var status: RunStatus
    public var phase: RunPhase
    public var kind: RunKind
    public var step: RunStep
    public var reason: String

    public init(status: RunStatus, phase: RunPhase, kind: RunKind = .build, step: RunStep = .none, reason: String = "") {
        self.status = status
        self.phase = phase
        self.kind = kind
        self.step = step
        self.reason = reason
    }

    /// A new run: queued for a build.
    public static func queued(reason: String = "") -> RunState { RunState(status: .queued, phase: .queued, reason: reason) }
}

/// The reason a waiting run shows while every push slot is taken.
public let waitingForPushSlot = "waiting for a push slot"

/// Every legal change of a run's state: a pure function of (state, input), as SwiftNIO keeps its
/// `…StateMachine` structs. The stores persist what it returns; an illegal input is a typed error,
/// so a stage can never move a run where it does not belong (say, push a run that never built).
public enum RunStateMachine {
    /// What happens to a run.
    public enum Input: Sendable, Equatable {
        /// The builder took it (a build slot is held).
        case claimForBuild
        /// The builder moved on to `step`.
        case enterStep(RunStep)
        /// The build ended well; the images wait for a push slot.
        case built
        /// The build ended well and there is nothing to push (`push: false`, pull requests).
        case builtOnly
        /// The pusher took it (a push slot is held).
        case claimForPush
        /// Every tag is pushed.
        case pushed
        /// The stage ended it: `Failed`, `Timeout`, `Error` or `Canceled`, in `step`.
        case end(RunStatus, step: RunStep, reason: String)
        /// An operator asked to stop it.
        case cancel(reason: String)
        /// A newer automatic run of the same task and branch was queued.
        case supersede(by: String)
        /// `slipway run retry-push`.
        case retryPush(requestedBy: String)
        /// A queued run cannot start yet (disk space): the reason says why.
        case hold(reason: String)
    }

    /// An input the current state does not allow, said so an operator understands it.
    public struct IllegalTransition: Error, Equatable, CustomStringConvertible {
        public var from: RunState
        public var input: Input
        public var description: String { "a run that is \(from.status.rawValue) (\(from.phase.rawValue)) cannot \(input)" }
    }

    /// What a restart does to a run a stage held.
    public enum RestartOutcome: Sendable, Equatable {
        /// Nothing to do: the run was not held.
        case untouched
        /// The push resumes with the kept images (no rebuild).
        case resumePush(RunState)
        /// The build is lost: the run ends `Error`; a first attempt is queued again.
        case interrupted(RunState)
    }

    public static func transition(_ state: RunState, _ input: Input) throws(IllegalTransition) -> RunState {
        var next = state
        switch (state.phase, input) {
        case (.queued, .hold(let reason)):
            next.reason = reason
        case (.queued, .claimForBuild):
            next = RunState(status: .running, phase: .building, kind: .build, step: .fetch)
        case (.building, .enterStep(let step)) where step != .push:
            next.step = step
            next.reason = ""
        case (.building, .built):
            next = RunState(status: .running, phase: .pushWait, kind: state.kind, step: .push, reason: waitingForPushSlot)
        case (.building, .builtOnly):
            next = RunState(status: .succeeded, phase: .ended, kind: state.kind, step: state.step)
        case (.pushWait, .claimForPush):
            next = RunState(status: .running, phase: .pushing, kind: state.kind, step: .push)
        case (.pushing, .pushed):
            next = RunState(status: .succeeded, phase: .ended, kind: state.kind, step: .push)
        case (.building, .end(let status, let step, let reason)), (.pushing, .end(let status, let step, let reason)):
            guard status.isFinal, status != .succeeded, state.phase == .building || step == .push else {
                throw IllegalTransition(from: state, input: input)
            }
            next = RunState(status: status, phase: .ended, kind: state.kind, step: step, reason: reason)
        case (.queued, .cancel(let reason)), (.pushWait, .cancel(let reason)), (.building, .cancel(let reason)),
            (.pushing, .cancel(let reason)):
            next = RunState(status: .canceled, phase: .ended, kind: state.kind, step: state.step, reason: reason)
        case (.queued, .supersede(let newer)) where state.kind == .build:
            next = RunState(status: .canceled, phase: .ended, kind: .build, reason: "superseded by \(newer)")
        case (.ended, .retryPush(let who)) where state.step == .push && state.status != .succeeded:
            next = RunState(status: .queued, phase: .pushWait, kind: .pushRetry, step: .push, reason: "push retry requested by \(who)")
        default:
            throw IllegalTransition(from: state, input: input)
        }
        return next
    }

    /// The state a run held by a stage gets at the next start.
    public static func afterRestart(_ state: RunState) -> RestartOutcome {
        switch state.phase {
        case .queued, .ended: .untouched
        case .pushWait where state.status == .queued: .untouched
        case .pushWait, .pushing:
            .resumePush(RunState(status: .running, phase: .pushWait, kind: state.kind, step: .push, reason: waitingForPushSlot))
        case .building:
            .interrupted(RunState(status: .error, phase: .ended, kind: state.kind, step: state.step, reason: "interrupted by restart"))
        }
    }
}
