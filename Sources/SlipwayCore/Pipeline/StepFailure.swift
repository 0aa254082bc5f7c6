/// Why a run stopped before succeeding: the final status, the step, and a message for the operator.
public struct StepFailure: Error, Sendable {
    public var status: RunStatus
    public var step: String
    public var reason: String
    public var exitCode: Int?
    /// The command's last output lines, for callers that classify the failure (transient or not).
    public var output: [String] = []

    public init(_ status: RunStatus, step: String, _ reason: String, exitCode: Int? = nil, output: [String] = []) {
        self.output = output
        self.status = status
        self.step = step
        self.reason = reason
        self.exitCode = exitCode
    }
}
