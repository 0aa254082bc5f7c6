import Synchronization

/// The live configuration: read by every stage, swapped whole by a reload.
///
/// A reload validates the new files first; on any error the old configuration stays in force.
public final class ConfigStore: Sendable {
    public let path: String
    private let state: Mutex<SlipwayConfig>

    public init(path: String, initial: SlipwayConfig) {
        self.path = path
        self.state = Mutex(initial)
    }

    public var current: SlipwayConfig { state.withLock { $0 } }
    public var tasks: [TaskDefinition] { state.withLock { $0.tasks } }

    public func task(named name: String) -> TaskDefinition? { tasks.first { $0.name == name } }

    /// Re-reads the config file and `tasks.d`; swaps only when everything is valid.
    public func reload() -> Result<SlipwayConfig, ConfigErrors> {
        do {
            let fresh = try ConfigLoader.load(path: path)
            state.withLock { $0 = fresh }
            return .success(fresh)
        } catch {
            return .failure(error)
        }
    }
}
