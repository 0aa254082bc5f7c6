import Subprocess
import SystemPackage
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A command to run: always an argument array, never a shell string.
public struct Command: Sendable {
    public var executable: String
    public var arguments: [String]
    /// The child's whole environment (nothing is inherited), so daemon secrets never leak to children.
    public var environment: [String: String]
    public var workingDirectory: String?

    public init(_ executable: String, _ arguments: [String], environment: [String: String], workingDirectory: String? = nil) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
    }

    /// `git fetch --prune origin` as a log line would show it.
    public var display: String {
        ([executable.split(separator: "/").last.map(String.init) ?? executable] + arguments).map { arg in
            arg.isEmpty || arg.contains(where: { $0 == " " || $0 == "\"" || $0 == "'" }) ? JSONText.quote(arg) : arg
        }.joined(separator: " ")
    }
}

/// How a command ended.
public struct CommandOutcome: Sendable, Equatable {
    public enum Ending: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)
        case timedOut
        case canceled
    }

    public var ending: Ending
    /// The last non-blank line the command wrote to stderr: usually the reason it failed.
    public var lastErrorLine: String? = nil
    public var succeeded: Bool { ending == .exited(0) }
}

/// Runs commands in their own process group, streaming output line by line.
public enum ProcessRunner {
    /// How long a TERM'd process group gets before KILL.
    public static let killGrace: Duration = .seconds(5)

    public struct LaunchError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Runs `command`; every output line (stdout and stderr) goes to `onLine`. At `deadline`, or
    /// when `stop` fires, the whole process group gets SIGTERM, then SIGKILL after `killGrace`.
    ///
    /// No polling: the output readers race a deadline sleep and the stop signal in one task
    /// group, so a cancel or a timeout reaches the process within milliseconds.
    public static func run(
        _ command: Command, deadline: ContinuousClock.Instant? = nil, stop: StopSignal? = nil,
        onLine: @escaping @Sendable (String) -> Void
    ) async throws -> CommandOutcome {
        guard let path = resolve(command.executable, path: command.environment["PATH"]) else {
            throw LaunchError(description: "cannot find '\(command.executable)' on PATH")
        }
        if stop?.isFired == true { return CommandOutcome(ending: .canceled) }
        var options = PlatformOptions()
        options.processGroupID = 0  // a new group led by the child: signals reach its descendants too
        let environment = Environment.custom(
            Dictionary(uniqueKeysWithValues: command.environment.map { (Environment.Key(rawValue: $0.key)!, $0.value) }))
        let ending = EndingBox()
        let result = try await Subprocess.run(
            .path(.init(path)), arguments: Arguments(command.arguments), environment: environment,
            workingDirectory: command.workingDirectory.map { .init($0) }, platformOptions: options,
            input: .none, output: .sequence, error: .sequence
        ) { execution in
            await withTaskGroup(of: Bool.self) { group in
                // The readers end when the process (and every child holding its pipes) is gone.
                group.addTask {
                    await withTaskGroup(of: Void.self) { readers in
                        readers.addTask {
                            do { for try await line in execution.standardOutput.strings() { onLine(line) } } catch {}
                        }
                        readers.addTask {
                            do {
                                for try await line in execution.standardError.strings() {
                                    if !line.allSatisfy(\.isWhitespace) { ending.lastErrorLine = line }
                                    onLine(line)
                                }
                            } catch {}
                        }
                    }
                    return true
                }
                // The watchdog: whichever comes first of the deadline and the stop signal.
                group.addTask {
                    let forced: CommandOutcome.Ending? = await withTaskGroup(of: CommandOutcome.Ending?.self) { race in
                        if let deadline {
                            race.addTask {
                                do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return nil }
                                return .timedOut
                            }
                        }
                        if let stop {
                            race.addTask {
                                await stop.wait()
                                return Task.isCancelled ? nil : .canceled
                            }
                        }
                        let first = await race.next() ?? nil
                        race.cancelAll()
                        return first
                    }
                    guard let forced, !Task.isCancelled else { return false }
                    ending.set(forced)
                    try? execution.send(signal: .terminate, toProcessGroup: true)
                    do { try await Task.sleep(for: killGrace) } catch { return false }
                    try? execution.send(signal: .kill, toProcessGroup: true)
                    return false
                }
                // Once the readers are done the watchdog has nothing left to guard.
                while let readersDone = await group.next() {
                    if readersDone { group.cancelAll() }
                }
            }
        }
        if let forced = ending.value {
            // The group leader is gone; make sure nothing it started survives.
            kill(-result.processIdentifier.value, SIGKILL)
            return CommandOutcome(ending: forced, lastErrorLine: ending.lastErrorLine)
        }
        switch result.terminationStatus {
        case .exited(let code): return CommandOutcome(ending: .exited(code), lastErrorLine: ending.lastErrorLine)
        case .signaled(let signal): return CommandOutcome(ending: .signaled(signal), lastErrorLine: ending.lastErrorLine)
        }
    }

    /// Finds `name` on `path` (or the daemon's PATH); a name with a slash is used as is.
    public static func resolve(_ name: String, path: String?) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let search = path ?? getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in search.split(separator: ":") where access("\(dir)/\(name)", X_OK) == 0 {
            return "\(dir)/\(name)"
        }
        return nil
    }
}

/// The forced ending (timeout or cancel), set at most once from the watchdog.
private final class EndingBox: Sendable {
    private let stored = Mutex<CommandOutcome.Ending?>(nil)
    func set(_ e: CommandOutcome.Ending) { stored.withLock { if $0 == nil { $0 = e } } }
    var value: CommandOutcome.Ending? { stored.withLock { $0 } }
    private let errorLine = Mutex<String?>(nil)
    var lastErrorLine: String? {
        get { errorLine.withLock { $0 } }
        set { errorLine.withLock { $0 = newValue } }
    }
}
