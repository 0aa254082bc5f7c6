import Foundation

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
    public var retention: RetentionSettings = RetentionSettings()
    /// `engines:`; empty = one engine `local` from `builds.docker` and the environment.
    public var engines: [EngineSettings] = []

    public struct EngineSettings: Sendable, Equatable {
        public var name: String
        /// DOCKER_HOST syntax: `unix://…`, `tcp://host:2376`, `ssh://user@host`.
        public var host: String
        public var tls: TLS?
        public var ssh: SSH?
        public var maxConcurrent: Int = 1
        public var labels: [String] = []
        /// A small image with `df` (busybox) run on the engine to measure the free space under
        /// its DockerRootDir: how a `tcp://` engine on another machine is measured. When set it
        /// is used for any engine; without it, engines on this host use statvfs and ssh engines `df`.
        public var diskProbeImage: String? = nil

        public struct TLS: Sendable, Equatable {
            public var caFile: String
            public var certFile: String
            public var keyFile: String
        }

        public struct SSH: Sendable, Equatable {
            public var identityFile: String
            public var knownHostsFile: String?
        }
    }

    /// `ui:`; nil when absent (the web page is off).
    public var ui: UISettings? = nil

    public struct UISettings: Sendable, Equatable {
        public var listen: ListenAddress
        /// htpasswd with bcrypt hashes; without it the page only listens on loopback.
        public var usersFile: String?
    }

    /// `github:`; nil when absent (nothing about GitHub is required).
    public var github: GitHubSettings? = nil

    public struct GitHubSettings: Sendable, Equatable {
        /// `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise (no trailing `/`).
        public var apiURL: String = "https://api.github.com"
        public var tokenFile: String?
        public var app: App?
        public var statuses: Bool = true
        /// Missed deliveries are caught up at start and this often.
        public var reconcileInterval: Duration = .seconds(600)

        public struct App: Sendable, Equatable {
            public var id: Int
            public var installationID: Int
            public var privateKeyFile: String
        }
    }
    public var registries: [RegistryCredential]
    public var tasks: [TaskDefinition]
    public var tls: TLSFiles?
    /// How GitHub and people reach this host (`https://ci.example.com`), without a trailing `/`.
    public var publicURL: String? = nil

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
        /// Body bytes held before their signature is checked, all connections together; over it: 503.
        public var maxInflightBytes: Int = 268_435_456
    }

    public struct BuildSettings: Sendable {
        public var maxConcurrent: Int
        public var defaultTimeout: Duration
        public var docker: String
        public var network: String
        public var buildkit: Bool
        /// On SIGTERM, how long running builds may finish before they are stopped (and resumed at the next start).
        public var stopGrace: Duration
        /// How often base images' registries are asked for their current digest; nil = never.
        public var baseImagePoll: Duration? = .seconds(300)
    }

    public struct PushSettings: Sendable {
        /// Pushes at once, in their own stage: a build slot is not held while a run pushes.
        public var maxConcurrent: Int = 2
    }

    /// `retention:`: what Slipway removes so a build host runs for months unattended.
    public struct RetentionSettings: Sendable {
        /// Run log files older than this are deleted (run rows stay).
        public var runLogs: Duration = .seconds(90 * 86_400)
        /// Per task: the local images of the newest N runs are kept on the engine; older runs' are removed.
        public var keepImages: Int = 3
        /// The engine's build cache is pruned down to this many bytes.
        public var buildCache: Int64 = 20_000_000_000
        /// Under this many free bytes on data_dir (or the engine), no new build starts.
        public var minFreeDisk: Int64 = 2_000_000_000
    }

    public struct RegistryCredential: Sendable {
        public var server: String
        public var username: String
        public var passwordFile: String
        /// Plain HTTP for this registry (loopback registries use it anyway).
        public var insecure: Bool = false
    }

    public struct TLSFiles: Sendable {
        public var certificate: String
        public var key: String
    }

    /// 127.0.0.0/8, `::1` and `localhost`: addresses only this host can reach.
    public static func isLoopback(_ host: String) -> Bool {
        let h = host.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        if h == "localhost" || h == "::1" || h == "0:0:0:0:0:0:0:1" { return true }
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
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
    /// What starts this task besides a manual run (DESIGN.md "Triggers").
    public var trigger: TriggerSettings = TriggerSettings()
    /// Only engines with all these labels build this task.
    public var engineLabels: [String] = []
    /// `cache: registry`: `--cache-from`/inline cache at `<first tag's repository>:buildcache`.
    public var cacheFromRegistry: Bool = false

    /// `trigger:`: branch and tag globs, pull requests, base-image updates, schedules.
    public struct TriggerSettings: Sendable {
        /// Branch globs; nil = the context's branch only.
        public var branches: [String]? = nil
        /// Tag globs; empty = tag pushes build nothing.
        public var tags: [String] = []
        /// Base branches whose pull requests are built (never pushed); nil = pull requests build nothing.
        public var pullRequestBranches: [String]? = nil
        public var baseImage: Bool = true
        public var schedule: [CronExpression] = []

        public init() {}
    }

    /// The branch globs a push must match.
    public var branchGlobs: [String] { trigger.branches ?? [context.branch] }

    public struct KeyValue: Sendable, Equatable {
        public var key: String
        public var value: String
    }

    public struct PathFilters: Sendable, Equatable {
        public var include: [String]
        public var exclude: [String]
    }
}
