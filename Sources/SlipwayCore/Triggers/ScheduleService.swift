import Logging
import ServiceLifecycle

/// Fires `trigger.schedule` slots: each slot appends one internal `schedule` event (the task and
/// the head of its context branch), which the matcher turns into a `timer` run.
///
/// A slot missed while the daemon was down runs once at start, not once per missed slot: the
/// last minute checked is kept in the cursor `schedule`; a new data_dir has missed nothing.
public struct ScheduleService: Service {
    public static let cursorName = "schedule"

    let log: EventLog
    let tasks: @Sendable () -> [TaskDefinition]
    let resolve: @Sendable (TaskDefinition) async -> (commit: String?, error: String?)
    let logger: Logger
    let now: @Sendable () -> Int64

    public init(
        log: EventLog, tasks: @escaping @Sendable () -> [TaskDefinition],
        resolve: @escaping @Sendable (TaskDefinition) async -> (commit: String?, error: String?), logger: Logger,
        now: @escaping @Sendable () -> Int64 = { Timestamp.now().milliseconds / 1000 }
    ) {
        self.log = log
        self.tasks = tasks
        self.resolve = resolve
        self.logger = logger
        self.now = now
    }

    public func run() async throws {
        let startMinute = now() / 60
        var last = try await log.cursor(Self.cursorName)
        if last == 0 || last > startMinute {
            last = startMinute  // a new data_dir has missed nothing
        } else if last < startMinute {
            // Down since `last`: each (task, expression) with a slot in (last, start] runs once.
            for (task, cron) in scheduled() where (last + 1...startMinute).contains(where: { cron.matches(epochMinute: $0) }) {
                let slot = (last + 1...startMinute).last { cron.matches(epochMinute: $0) }!
                logger.notice("schedule slot missed while stopped: running it once now", metadata: ["task": "\(task.name)", "cron": "\(cron)"])
                await fire(task, cron, minute: slot)
            }
        }
        try await log.saveCursor(Self.cursorName, seq: startMinute)
        var minute = startMinute
        while !Task.isCancelledOrShuttingDown {
            let next = (minute + 1) * 60
            let wait = max(0, next - now())
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(wait)) }
            } catch {
                break
            }
            minute = max(minute + 1, now() / 60)
            for (task, cron) in scheduled() where cron.matches(epochMinute: minute) { await fire(task, cron, minute: minute) }
            try? await log.saveCursor(Self.cursorName, seq: minute)
        }
    }

    func scheduled() -> [(TaskDefinition, CronExpression)] {
        tasks().filter(\.enabled).flatMap { task in task.trigger.schedule.map { (task, $0) } }
    }

    func fire(_ task: TaskDefinition, _ cron: CronExpression, minute: Int64) async {
        let slot = Timestamp(milliseconds: minute * 60_000).iso8601
        let head = await resolve(task)
        let event = InternalEvent(
            kind: "schedule",
            targets: [.init(task: task.name, branch: task.context.branch, commit: head.commit, error: head.error)],
            source: cron.text, detail: slot)
        do {
            let outcome = try await log.append(try event.delivery(id: "schedule-\(task.name)-\(minute)-\(SHA256.hex(Array(cron.text.utf8)).prefix(8))"))
            logger.notice(
                "schedule slot: event appended",
                metadata: ["task": "\(task.name)", "cron": "\(cron)", "slot": "\(slot)", "event.seq": "\(outcome.seq)"])
        } catch {
            logger.error("schedule slot: cannot append its event", metadata: ["task": "\(task.name)", "error": "\(error)"])
        }
    }
}

extension Task where Success == Never, Failure == Never {
    static var isCancelledOrShuttingDown: Bool { Task.isCancelled || Task.isShuttingDownGracefully }
}
