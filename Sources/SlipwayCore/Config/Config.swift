/// Slipway's configuration: the YAML of DESIGN.md decoded into values.
///
/// Relative paths in the file are resolved against the directory of the file they appear in,
/// so the daemon behaves the same whatever its working directory.
public struct SlipwayConfig: Sendable {
    public var sourceFile: String
    public var listen: ListenAddress
    public var dataDirectory: String
    public var adminSocket: String
    public var runIDPrefix: String
    public var webhook: WebhookSettings
    public var builds: BuildSettings
    public var pushes: PushSettings = PushSettings()
    public var registries: [RegistryCredential]
    public var tasks: [TaskDefinition]
    public var tls: TLSFiles?

    public struct ListenAddress: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    public struct WebhookSettings: Sendable {
        public var secretFiles: [String]
        public var maxBodyBytes: Int
        public var allowSHA1: Bool
        /// A request (headers and body) must arrive in full within this time of the connection
        /// opening or of the previous response (slowloris defence). Read at start only.
        public var readTimeout: Duration = .seconds(10)
        /// Open connections to the webhook listener beyond this are closed at once. Read at start only.
        public var maxConnections: Int = 4096
    }

    public struct BuildSettings: Sendable {
        public var maxConcurrent: Int
        public var defaultTimeout: Duration
        public var docker: String
        public var network: String
        public var buildkit: Bool
        /// On SIGTERM, how long running builds may finish before they are stopped (and resumed at the next start).
        public var stopGrace: Duration
    }

    public struct PushSettings: Sendable {
        /// Pushes at once, in their own stage: a build slot is not held while a run pushes.
        public var maxConcurrent: Int = 2
    }

    public struct RegistryCredential: Sendable {
        public var server: String
        public var username: String
        public var passwordFile: String
    }

    public struct TLSFiles: Sendable {
        public var certificate: String
        public var key: String
    }

    /// The path of the event log database.
    public var databasePath: String { dataDirectory + "/slipway.sqlite" }

    public static let defaultPath = "/etc/slipway/slipway.yaml"
}

/// One build task (ACR's build task): where the source is, what to build, how to tag it.
public struct TaskDefinition: Sendable {
    public var name: String
    public var context: GitContext
    public var dockerfile: String
    public var tags: [String]
    public var gitTokenFile: String?
    public var buildArgs: [KeyValue]
    /// Build-arg name → file holding its value.
    public var secretBuildArgs: [KeyValue]
    public var paths: PathFilters
    public var push: Bool
    public var noCache: Bool
    public var timeout: Duration?
    public var enabled: Bool
    /// Where the task is defined, for messages ("config/slipway.yaml:14").
    public var definedIn: String
    public var line: Int

    public struct KeyValue: Sendable, Equatable {
        public var key: String
        public var value: String
    }

    public struct PathFilters: Sendable, Equatable {
        public var include: [String]
        public var exclude: [String]
    }
}
