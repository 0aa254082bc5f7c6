/// Reads one task mapping (from `tasks:` or a `tasks.d/NAME.yaml` file).
enum TaskReader {
    static func read(_ node: YAMLNode, base: String, keys allowed: [String]) -> TaskDefinition? {
        guard let keys = node.mapping(allowed: allowed) else { return nil }
        let before = node.problems.errors.count
        func path(_ n: YAMLNode?) -> String? { n?.nonEmptyString().map { FileText.resolve($0, against: base) } }

        var name: String?
        if let n = ConfigLoader.required(keys, "name", in: node), let s = n.nonEmptyString() {
            if isValidName(s) {
                name = s
            } else {
                n.fail("task name '\(s)' must be 1 to 63 of a-z, 0-9, '-', '_' and start with a letter or digit")
            }
        }
        var context: GitContext?
        if let n = ConfigLoader.required(keys, "context", in: node), let s = n.nonEmptyString() {
            do { context = try GitContext.parse(s) } catch { n.fail(error.description) }
        }
        var dockerfile = "Dockerfile"
        if let n = keys["dockerfile"], let s = n.nonEmptyString() {
            if s.hasPrefix("/") || s.split(separator: "/").contains("..") || s.hasPrefix("-") {
                n.fail("dockerfile '\(s)' must be a path inside the context folder (relative, without '..')")
            } else {
                dockerfile = s
            }
        }
        var tags: [String] = []
        if let n = ConfigLoader.required(keys, "tags", in: node), let items = n.list() {
            if items.isEmpty { n.fail("needs at least one tag") }
            for item in items {
                guard let s = item.nonEmptyString() else { continue }
                do {
                    _ = try Template(s)
                    tags.append(s)
                } catch { item.fail(error.description) }
            }
        }
        var buildArgs: [TaskDefinition.KeyValue] = []
        for entry in keys["build_args"]?.stringMap() ?? [] {
            do {
                _ = try Template(entry.value)
                buildArgs.append(.init(key: entry.key, value: entry.value))
            } catch { entry.node.fail(error.description) }
        }
        let secretArgs = (keys["secret_build_args"]?.stringMap() ?? []).map {
            TaskDefinition.KeyValue(key: $0.key, value: FileText.resolve($0.value, against: base))
        }
        for (entry, file) in zip(keys["secret_build_args"]?.stringMap() ?? [], secretArgs) {
            entry.node.checkSecretFile(file.value)
            // A secret build arg travels in docker's environment: it must not replace what docker itself reads.
            if let why = Self.reservedEnvironmentName(entry.key) { entry.node.fail("secret build arg '\(entry.key)' \(why)") }
        }
        if let n = keys["git_token_file"], let file = path(n) { n.checkSecretFile(file) }
        for entry in buildArgs where secretArgs.contains(where: { $0.key == entry.key }) {
            keys["secret_build_args"]?.fail("'\(entry.key)' is both a build arg and a secret build arg")
        }
        var filters = TaskDefinition.PathFilters(include: [], exclude: [])
        if let p = keys["paths"], let pk = p.mapping(allowed: ["include", "exclude"]) {
            filters.include = pk["include"]?.stringList() ?? []
            filters.exclude = pk["exclude"]?.stringList() ?? []
        }
        var trigger = TaskDefinition.TriggerSettings()
        if let t = keys["trigger"], let tk = t.mapping(allowed: ["branches", "tags", "pull_requests", "base_image", "schedule"]) {
            if let n = tk["branches"], let list = n.stringList() {
                if list.isEmpty { n.fail("needs at least one branch glob (leave trigger.branches out for the context's branch)") }
                trigger.branches = list
            }
            if let list = tk["tags"]?.stringList() { trigger.tags = list }
            if let pr = tk["pull_requests"], let pk = pr.mapping(allowed: ["branches"]) {
                trigger.pullRequestBranches = pk["branches"]?.stringList() ?? (context.map { [$0.branch] } ?? [])
            }
            if let b = tk["base_image"]?.bool { trigger.baseImage = b }
            for item in tk["schedule"]?.list() ?? [] {
                guard let text = item.nonEmptyString() else { continue }
                do { trigger.schedule.append(try CronExpression(text)) } catch { item.fail(error.description) }
            }
        }
        var task = TaskDefinition(
            name: name ?? "", context: context ?? GitContext(url: "", branch: "", folder: ""), dockerfile: dockerfile,
            tags: tags, gitTokenFile: path(keys["git_token_file"]), buildArgs: buildArgs, secretBuildArgs: secretArgs,
            paths: filters, push: keys["push"]?.bool ?? true, noCache: keys["no_cache"]?.bool ?? false,
            timeout: keys["timeout"]?.duration, enabled: keys["enabled"]?.bool ?? true,
            definedIn: node.file, line: node.line)
        task.trigger = trigger
        task.engineLabels = keys["engine_labels"]?.stringList() ?? []
        if let c = keys["cache"], let text = c.nonEmptyString() {
            if text == "registry" { task.cacheFromRegistry = true } else { c.fail("cache must be 'registry' (or left out), got '\(text)'") }
        }
        return node.problems.errors.count == before ? task : nil
    }

    /// Names the docker CLI's own environment uses (or the dynamic loader reads).
    static let reservedNames: Set<String> = ["PATH", "HOME", "LC_ALL", "LANG", "TMPDIR", "USER", "SHELL", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"]

    /// Why `name` cannot be a secret build arg, or nil when it can.
    static func reservedEnvironmentName(_ name: String) -> String? {
        let upper = name.uppercased()
        if reservedNames.contains(upper) || upper.hasPrefix("DOCKER_") || upper.hasPrefix("LD_") || upper.hasPrefix("BUILDKIT_")
            || upper.hasPrefix("GIT_") || upper.hasPrefix("SSH_")
        {
            return "would override the docker CLI's environment variable \(name); rename it"
        }
        guard let first = name.unicodeScalars.first, first == "_" || ("A"..."Z").contains(first) || ("a"..."z").contains(first),
            name.unicodeScalars.allSatisfy({ $0 == "_" || ("A"..."Z").contains($0) || ("a"..."z").contains($0) || ("0"..."9").contains($0) })
        else { return "must be a variable name (letters, digits, '_', not starting with a digit)" }
        return nil
    }

    static func isValidName(_ s: String) -> Bool {
        guard (1...63).contains(s.count), let first = s.unicodeScalars.first else { return false }
        let allowed = { (c: Unicode.Scalar) in ("a"..."z").contains(c) || ("0"..."9").contains(c) || c == "-" || c == "_" }
        return allowed(first) && first != "-" && first != "_" && s.unicodeScalars.allSatisfy(allowed)
    }
}
