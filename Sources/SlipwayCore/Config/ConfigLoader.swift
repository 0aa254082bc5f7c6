#if canImport(Glibc)
    import Glibc
#endif
import Yams

/// Reads `slipway.yaml` (and `tasks.d/*.yaml` beside it) into a `SlipwayConfig`, or every problem found.
public enum ConfigLoader {
    static let topKeys = ["listen", "data_dir", "admin_socket", "run_id_prefix", "webhook", "builds", "registries", "tasks", "tls", "pushes", "public_url", "retention", "github", "ui", "engines"]
    static let webhookKeys = ["secret_files", "max_body_bytes", "allow_sha1", "read_timeout", "max_connections", "max_inflight_bytes"]
    static let buildKeys = ["max_concurrent", "default_timeout", "docker", "network", "buildkit", "stop_grace", "base_image_poll"]
    static let registryKeys = ["server", "username", "password_file", "insecure"]
    static let taskKeys = [
        "name", "context", "dockerfile", "tags", "git_token_file", "build_args", "secret_build_args", "paths",
        "push", "no_cache", "timeout", "enabled", "trigger", "engine_labels", "cache",
    ]

    /// Loads and validates the config at `path`.
    public static func load(path givenPath: String) throws(ConfigErrors) -> SlipwayConfig {
        // Absolute, so paths resolved against its folder stay right whatever the working directory.
        let path = FileText.absolute(givenPath)
        let text: String
        do {
            text = try FileText.read(path)
        } catch {
            throw ConfigErrors(errors: [ConfigError(file: path, line: 0, key: "", message: "cannot read config: \(error)")])
        }
        var readErrors: [ConfigError] = []
        let dir = FileText.directory(of: path) + "/tasks.d"
        let taskFiles: [(String, String)] = FileText.list(dir, suffix: ".yaml").compactMap { file in
            do {
                return (file, try FileText.read(file))
            } catch let error as FileText.Failure {
                readErrors.append(ConfigError(file: file, line: 0, key: "", message: "cannot read task file: \(error.reason)"))
                return nil
            } catch {
                return nil
            }
        }
        do throws(ConfigErrors) {
            let config = try parse(text, file: path, taskFiles: taskFiles)
            if !readErrors.isEmpty { throw ConfigErrors(errors: readErrors) }
            return config
        } catch {
            throw ConfigErrors(errors: readErrors + error.errors)
        }
    }

    /// Parses config text; `taskFiles` are (path, text) of drop-in task files.
    public static func parse(_ text: String, file: String, taskFiles: [(String, String)] = []) throws(ConfigErrors) -> SlipwayConfig {
        let problems = ProblemList()
        let base = FileText.directory(of: file)
        let root = compose(text, file: file, problems: problems)
        let top = root.flatMap { $0.node.mapping == nil && $0.node.string == "" ? nil : $0.mapping(allowed: topKeys) } ?? [:]

        func path(_ node: YAMLNode?) -> String? { node?.nonEmptyString().map { FileText.resolve($0, against: base) } }

        var listen = SlipwayConfig.ListenAddress(host: "127.0.0.1", port: 8080)
        if let node = top["listen"], let text = node.nonEmptyString() {
            if let parsed = parseListen(text) {
                listen = parsed
            } else {
                node.fail("expected host:port (like 127.0.0.1:8080 or [::1]:8080), got '\(text)'")
            }
        }
        let dataDirectory = path(top["data_dir"]) ?? "/var/lib/slipway"
        let adminSocket = path(top["admin_socket"]) ?? "/run/slipway/slipway.sock"
        var prefix = "sw"
        if let node = top["run_id_prefix"], let p = node.nonEmptyString() {
            if p.allSatisfy({ $0.isASCII && $0.isLetter }) && p.count <= 8 {
                prefix = p
            } else {
                node.fail("must be 1 to 8 ASCII letters, got '\(p)'")
            }
        }

        var webhook = SlipwayConfig.WebhookSettings(secretFiles: [], maxBodyBytes: 26_214_400, allowSHA1: false)
        if let keys = top["webhook"]?.mapping(allowed: webhookKeys) {
            if let node = keys["secret_files"], let files = node.stringList() {
                webhook.secretFiles = files.map { FileText.resolve($0, against: base) }
                for (item, file) in zip(node.list() ?? [], webhook.secretFiles) { item.checkSecretFile(file) }
            }
            if let n = keys["max_body_bytes"]?.int(min: 1024, max: 100 * 1024 * 1024) { webhook.maxBodyBytes = n }
            if let b = keys["allow_sha1"]?.bool { webhook.allowSHA1 = b }
            if let node = keys["read_timeout"], let d = node.duration {
                if d < .milliseconds(100) || d > .seconds(600) {
                    node.fail("must be between 100ms and 10m, got \(node.kind)")
                } else {
                    webhook.readTimeout = d
                }
            }
            if let n = keys["max_connections"]?.int(min: 16, max: 1_000_000) { webhook.maxConnections = n }
            if let n = keys["max_inflight_bytes"]?.int(min: 1024 * 1024, max: 64 * 1024 * 1024 * 1024) { webhook.maxInflightBytes = n }
        }

        var builds = SlipwayConfig.BuildSettings(
            maxConcurrent: 2, defaultTimeout: .seconds(3600), docker: "docker", network: "default", buildkit: true, stopGrace: .seconds(60))
        if let keys = top["builds"]?.mapping(allowed: buildKeys) {
            if let n = keys["max_concurrent"]?.int(min: 1, max: 64) { builds.maxConcurrent = n }
            if let d = keys["default_timeout"]?.duration { builds.defaultTimeout = d }
            if let s = keys["docker"]?.nonEmptyString() { builds.docker = s.contains("/") ? FileText.resolve(s, against: base) : s }
            if let s = keys["network"]?.nonEmptyString() { builds.network = s }
            if let b = keys["buildkit"]?.bool { builds.buildkit = b }
            if let d = keys["stop_grace"]?.duration { builds.stopGrace = d }
            if let node = keys["base_image_poll"], let text = node.nonEmptyString() {
                builds.baseImagePoll = text == "0" ? nil : node.duration  // 0 turns polling off
            }
        }

        var pushes = SlipwayConfig.PushSettings()
        if let keys = top["pushes"]?.mapping(allowed: ["max_concurrent"]) {
            if let n = keys["max_concurrent"]?.int(min: 1, max: 64) { pushes.maxConcurrent = n }
        }

        var retention = SlipwayConfig.RetentionSettings()
        if let keys = top["retention"]?.mapping(allowed: ["run_logs", "keep_images", "build_cache", "min_free_disk"]) {
            if let d = keys["run_logs"]?.duration { retention.runLogs = d }
            if let n = keys["keep_images"]?.int(min: 1, max: 10_000) { retention.keepImages = n }
            for (key, assign) in [
                ("build_cache", { (v: Int64) in retention.buildCache = v }), ("min_free_disk", { (v: Int64) in retention.minFreeDisk = v }),
            ] as [(String, (Int64) -> Void)] {
                guard let node = keys[key], let text = node.nonEmptyString() else { continue }
                do { assign(try SizeParser.parse(text)) } catch { node.fail(error.description) }
            }
        }

        var github: SlipwayConfig.GitHubSettings?
        if let node = top["github"], let keys = node.mapping(allowed: ["api_url", "token_file", "app", "statuses", "reconcile_interval"]) {
            var settings = SlipwayConfig.GitHubSettings()
            if let u = keys["api_url"], let text = u.nonEmptyString() {
                if text.hasPrefix("https://") || text.hasPrefix("http://") {
                    settings.apiURL = text.hasSuffix("/") ? String(text.dropLast()) : text
                } else {
                    u.fail("must be an http(s) URL like https://api.github.com or https://HOST/api/v3, got '\(text)'")
                }
            }
            if let t = keys["token_file"], let file = path(t) {
                t.checkSecretFile(file)
                settings.tokenFile = file
            }
            if let a = keys["app"], let ak = a.mapping(allowed: ["id", "installation_id", "private_key_file"]) {
                let id = ConfigLoader.required(ak, "id", in: a)?.int(min: 1, max: Int.max)
                let installation = ConfigLoader.required(ak, "installation_id", in: a)?.int(min: 1, max: Int.max)
                let key = path(ConfigLoader.required(ak, "private_key_file", in: a))
                if let key { ak["private_key_file"]?.checkSecretFile(key) }
                if let id, let installation, let key { settings.app = .init(id: id, installationID: installation, privateKeyFile: key) }
            }
            if settings.tokenFile != nil && settings.app != nil { node.fail("give github.token_file or github.app, not both") }
            if settings.tokenFile == nil && settings.app == nil { node.fail("needs github.token_file (a token) or github.app (a GitHub App)") }
            if let b = keys["statuses"]?.bool { settings.statuses = b }
            if let d = keys["reconcile_interval"]?.duration { settings.reconcileInterval = d }
            github = settings
        }

        var engines: [SlipwayConfig.EngineSettings] = []
        for item in top["engines"]?.list() ?? [] {
            guard let keys = item.mapping(allowed: ["name", "host", "tls", "ssh", "max_concurrent", "labels", "disk_probe_image"]) else { continue }
            guard let name = ConfigLoader.required(keys, "name", in: item)?.nonEmptyString(),
                let host = ConfigLoader.required(keys, "host", in: item)?.nonEmptyString()
            else { continue }
            if engines.contains(where: { $0.name == name }) { keys["name"]?.fail("duplicate engine name '\(name)'") }
            guard ["unix://", "tcp://", "ssh://"].contains(where: host.hasPrefix) else {
                keys["host"]?.fail("must be DOCKER_HOST syntax: unix:///path, tcp://host:port or ssh://user@host, got '\(host)'")
                continue
            }
            var engine = SlipwayConfig.EngineSettings(name: name, host: host)
            if let t = keys["tls"], let tk = t.mapping(allowed: ["ca_file", "cert_file", "key_file"]) {
                let ca = path(ConfigLoader.required(tk, "ca_file", in: t))
                let cert = path(ConfigLoader.required(tk, "cert_file", in: t))
                let key = path(ConfigLoader.required(tk, "key_file", in: t))
                if let key { tk["key_file"]?.checkSecretFile(key) }
                if let ca, let cert, let key { engine.tls = .init(caFile: ca, certFile: cert, keyFile: key) }
            }
            if let s = keys["ssh"], let sk = s.mapping(allowed: ["identity_file", "known_hosts_file"]) {
                let identity = path(ConfigLoader.required(sk, "identity_file", in: s))
                if let identity { sk["identity_file"]?.checkSecretFile(identity) }
                if let identity { engine.ssh = .init(identityFile: identity, knownHostsFile: path(sk["known_hosts_file"])) }
            }
            if let n = keys["max_concurrent"]?.int(min: 1, max: 256) { engine.maxConcurrent = n }
            engine.labels = keys["labels"]?.stringList() ?? []
            if let node = keys["disk_probe_image"], let image = node.nonEmptyString() {
                // An argument of `docker run`: a reference, never an option or several words.
                if image.hasPrefix("-") || image.contains(where: { $0.isWhitespace }) {
                    node.fail("must be an image reference like busybox:stable, got '\(image)'")
                } else {
                    engine.diskProbeImage = image
                }
            }
            engines.append(engine)
        }

        var ui: SlipwayConfig.UISettings?
        if let node = top["ui"], let keys = node.mapping(allowed: ["listen", "users_file"]) {
            if let l = ConfigLoader.required(keys, "listen", in: node), let text = l.nonEmptyString() {
                if let address = parseListen(text) {
                    ui = .init(listen: address, usersFile: path(keys["users_file"]))
                } else {
                    l.fail("expected host:port (like 127.0.0.1:8081), got '\(text)'")
                }
            }
        }

        var registries: [SlipwayConfig.RegistryCredential] = []
        for item in top["registries"]?.list() ?? [] {
            guard let keys = item.mapping(allowed: registryKeys) else { continue }
            let server = required(keys, "server", in: item)?.nonEmptyString()
            let username = required(keys, "username", in: item)?.nonEmptyString()
            let password = path(required(keys, "password_file", in: item))
            if let password { keys["password_file"]?.checkSecretFile(password) }
            if let server, let username, let password {
                registries.append(.init(server: server, username: username, passwordFile: password, insecure: keys["insecure"]?.bool ?? false))
            }
        }

        var tls: SlipwayConfig.TLSFiles?
        if let keys = top["tls"]?.mapping(allowed: ["cert_file", "key_file"]) {
            let cert = path(required(keys, "cert_file", in: top["tls"]!))
            let key = path(required(keys, "key_file", in: top["tls"]!))
            if let key { keys["key_file"]?.checkSecretFile(key) }
            if let cert, let key { tls = .init(certificate: cert, key: key) }
        }
        var publicURL: String?
        if let node = top["public_url"], let text = node.nonEmptyString() {
            if (text.hasPrefix("https://") || text.hasPrefix("http://")) && !text.contains(where: \.isWhitespace) {
                publicURL = text.hasSuffix("/") ? String(text.dropLast()) : text
            } else {
                node.fail("must be an http:// or https:// URL (how GitHub and people reach this host), got '\(text)'")
            }
        }

        var taskNodes = top["tasks"]?.list() ?? []
        for (taskFile, taskText) in taskFiles {
            if let node = compose(taskText, file: taskFile, problems: problems) { taskNodes.append(node) }
        }
        var tasks: [TaskDefinition] = []
        for node in taskNodes {
            guard let task = TaskReader.read(node, base: FileText.directory(of: node.file), keys: taskKeys) else { continue }
            if let first = tasks.first(where: { $0.name == task.name }) {
                node.child("name", node.node["name"] ?? node.node)
                    .fail("duplicate task name '\(task.name)' (first defined at \(first.definedIn):\(first.line))")
                continue
            }
            tasks.append(task)
        }

        if !problems.errors.isEmpty { throw ConfigErrors(errors: problems.errors) }
        var config = SlipwayConfig(
            sourceFile: file, listen: listen, dataDirectory: dataDirectory, adminSocket: adminSocket, runIDPrefix: prefix,
            webhook: webhook, builds: builds, registries: registries, tasks: tasks, tls: tls)
        config.pushes = pushes
        config.publicURL = publicURL
        config.retention = retention
        config.github = github
        config.ui = ui
        config.engines = engines
        return config
    }

    static func compose(_ text: String, file: String, problems: ProblemList) -> YAMLNode? {
        do {
            // `.basic`: every scalar stays a string (our keys parse their own values). The default
            // resolver compiles a dozen NSRegularExpressions at first use, which pulls ICU in:
            // 0.6–1 MB of the idle RSS for nothing.
            guard let node = try Yams.compose(yaml: text, .basic) else { return nil }
            return YAMLNode(node: node, file: file, path: "", problems: problems)
        } catch let error as YamlError {
            problems.add(yamlError(error, file: file))
        } catch {
            problems.add(ConfigError(file: file, line: 0, key: "", message: "invalid YAML: \(error)"))
        }
        return nil
    }

    static func yamlError(_ error: YamlError, file: String) -> ConfigError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ConfigError(file: file, line: mark.line, key: "", message: "invalid YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigError(
                file: file, line: context.mark.line, key: "", message: "duplicate key '\(duplicates.joined(separator: "', '"))'")
        default:
            return ConfigError(file: file, line: 0, key: "", message: "invalid YAML: \(error)")
        }
    }

    static func required(_ keys: [String: YAMLNode], _ key: String, in parent: YAMLNode) -> YAMLNode? {
        if let node = keys[key] { return node }
        parent.fail("missing required key '\(key)'")
        return nil
    }

    static func parseListen(_ text: String) -> SlipwayConfig.ListenAddress? {
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !host.isEmpty, let p = Int(port), (0...65535).contains(p) else { return nil }
        return .init(host: String(host), port: p)
    }

}
