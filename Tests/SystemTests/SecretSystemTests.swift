import Foundation
import SlipwayCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Where secrets may and may not appear while a real build runs and after it.
@Suite(.serialized, .enabled(if: TestEnvironment.shouldRun, TestEnvironment.skipMessage))
struct SecretSystemTests {
    /// Files under `dir` whose bytes contain `secret`.
    static func filesHolding(_ secret: String, under dir: String) -> [String] {
        let needle = Data(secret.utf8)
        var found: [String] = []
        let walker = FileManager.default.enumerator(atPath: dir)
        while let relative = walker?.nextObject() as? String {
            let path = dir + "/" + relative
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
                let data = FileManager.default.contents(atPath: path)
            else { continue }
            if data.range(of: needle) != nil { found.append(relative) }
        }
        return found
    }

    /// The git token, the registry password and a secret build arg during a real build that clones a
    /// private repository and pushes with credentials: none is in any process's argv; only `docker
    /// build` (which hands the arg to BuildKit) has the build arg in its environment; none is in any
    /// file the run leaves behind, the database, the run log or the daemon's log.
    @Test func secretsReachOnlyTheProcessThatNeedsThem() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("environ"))
        let secretFile = "/tmp/slipway-npm-\(repo.name)"
        let buildArg = "npm_\(UUID().uuidString.prefix(12))"
        try "\(buildArg)\n".write(toFile: secretFile, atomically: true, encoding: .utf8)
        chmod(secretFile, 0o600)
        defer { try? FileManager.default.removeItem(atPath: secretFile) }
        let dockerfile = """
            FROM \(TestEnvironment.baseImage)
            ENV SLIPWAY_TEST_NONCE=\(UUID().uuidString)
            RUN --mount=type=secret,id=NPM_TOKEN wc -c /run/secrets/NPM_TOKEN && sleep 3
            COPY hello.txt /hello.txt

            """
        let sha = try repo.commit(["app/Dockerfile": dockerfile, "app/hello.txt": "x"])
        let extra = "    secret_build_args: { NPM_TOKEN: \"\(secretFile)\" }\n"
        let daemon = try PipelineSystemTests.daemon(tasks: [PipelineSystemTests.task("web", repo: repo, image: repo.name, extra: extra)])
        let secrets = ["git token": TestEnvironment.token, "registry password": TestEnvironment.registryPassword, "build arg": buildArg]
        #expect(secrets.values.allSatisfy { $0.count >= 16 }, "real secrets to look for")

        for value in secrets.values { try expectProcScanFinds(value) }
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        try daemon.waitUntil("sw1 running") { try daemon.runs().first?.status == "Running" }
        var seen: [String: Set<String>] = [:]
        var samples = 0
        while try daemon.runs().first?.status == "Running" {
            for (name, value) in secrets {
                for holder in processesHolding(value, environment: true) {
                    seen[name, default: []].insert((holder.inArgs ? "argv of " : "environ of ") + holder.cmdline)
                }
            }
            samples += 1
            usleep(20_000)
        }
        let run = try daemon.waitForRun("sw1")
        #expect(run.status == "Succeeded", "\(run.reason)\n\(daemon.runLog("sw1"))")
        #expect(samples > 20, "sampled the build's processes \(samples) times")
        #expect(seen["git token"] == nil, "\(seen["git token"] ?? [])")
        #expect(seen["registry password"] == nil, "\(seen["registry password"] ?? [])")
        let holders = seen["build arg"] ?? []
        #expect(!holders.isEmpty, "docker build had the arg in its environment while it ran (the sampler works)")
        #expect(
            holders.allSatisfy { $0.hasPrefix("environ of ") && $0.contains("docker build ") },
            "only docker build holds it, in its environment: \(holders)")

        // After the run: no file the daemon keeps holds any of them.
        for (name, value) in secrets {
            #expect(
                Self.filesHolding(value, under: daemon.dir + "/data").isEmpty,
                "\(name) left in \(Self.filesHolding(value, under: daemon.dir + "/data"))")
            #expect(!daemon.log.contains(value), "\(name) in the daemon's log")
        }
        #expect(daemon.runLog("sw1").contains("$ docker build"), "the run log is among the files checked")
        #expect(
            !FileManager.default.fileExists(atPath: daemon.dir + "/data/tmp/sw1"), "the per-run scratch (askpass, DOCKER_CONFIG) is gone")
    }
}
