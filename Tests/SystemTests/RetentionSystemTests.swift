import Foundation
import SlipwayCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `retention:` on the real parts: images, run logs, the disk guard.
@Suite(.serialized, .enabled(if: TestEnvironment.shouldRun, TestEnvironment.skipMessage))
struct RetentionSystemTests {
    static func localTags(_ repository: String) throws -> Set<String> {
        let docker = try TestEnvironment.require("SLIPWAY_TEST_DOCKER")
        let r = try run(
            docker, ["image", "ls", "--format", "{{.Tag}}", repository],
            environment: ["DOCKER_HOST": try TestEnvironment.require("SLIPWAY_TEST_DOCKER_HOST"), "PATH": "/usr/bin:/bin"])
        return Set(r.out.split(separator: "\n").map(String.init))
    }

    @Test func keepImagesKeepsTheNewestRunsOnly() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("keep"))
        _ = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        var config = try TestEnvironment.buildConfig()
        config += "\nretention: { keep_images: 2 }\ntasks:\n" + PipelineSystemTests.task("web", repo: repo, image: repo.name)
        let daemon = try DaemonProcess(extraConfig: config)
        try daemon.start()
        for n in 1...6 {
            let r = try cli(daemon, ["task", "run", "web", "--no-logs"])
            #expect(r.status == 0, "\(r.err)")
            #expect(try daemon.waitForRun("sw\(n)").status == "Succeeded", "\(daemon.runLog("sw\(n)"))")
        }
        let repository = "\(TestEnvironment.registry)/\(repo.name)"
        try daemon.waitUntil("old images removed", timeout: 60) { try Self.localTags(repository) == ["sw5", "sw6", "latest"] }
        #expect(daemon.log.contains("retention: removed old runs' images"))
        #expect(!(try Self.localTags(TestEnvironment.baseImage.components(separatedBy: ":")[0])).isEmpty, "the base image stays")
        _ = try cli(daemon, ["task", "run", "web", "--no-logs"])
        #expect(try daemon.waitForRun("sw7").status == "Succeeded")
    }

    @Test func oldRunLogsAreRemovedAndLogsSaysWhy() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("logs"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        var config = try TestEnvironment.buildConfig()
        config += "\nretention: { run_logs: \"1s\" }\ntasks:\n" + PipelineSystemTests.task("web", repo: repo, image: repo.name)
        let daemon = try DaemonProcess(extraConfig: config)
        try daemon.start()
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        #expect(try daemon.waitForRun("sw1").status == "Succeeded")
        try daemon.waitUntil("the log removed", timeout: 30) { !FileManager.default.fileExists(atPath: daemon.dir + "/data/runs/sw1.log") }
        let logs = try cli(daemon, ["logs", "--run-id", "sw1"])
        #expect(logs.status == 0 && logs.out.contains("removed by retention"), "\(logs.out) \(logs.err)")
        #expect(try cli(daemon, ["run", "show", "sw1"]).out.contains("Succeeded"), "the run row stays")
    }

    @Test func lowDiskHoldsBuildsUntilSpaceReturns() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("disk"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        var config = try TestEnvironment.buildConfig()
        config += "\nretention: { min_free_disk: \"40MB\" }\ntasks:\n" + PipelineSystemTests.task("web", repo: repo, image: repo.name)
        let daemon = try DaemonProcess(extraConfig: config)
        let data = daemon.dir + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let mounted = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", data])
        #expect(mounted.status == 0, "\(mounted.err)")
        defer { _ = try? run("/bin/umount", ["-l", data]) }
        let filler = data + "/filler"
        FileManager.default.createFile(atPath: filler, contents: Data(count: 40 * 1024 * 1024))
        try daemon.start()
        let health = try RawHTTPClient(port: daemon.port).request("GET", "/healthz")
        #expect(health.status == 200 && health.json["disk"] as? String == "low", "\(String(decoding: health.body, as: UTF8.self))")
        let seq = try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        #expect(seq > 0, "the delivery is accepted although builds wait")
        try daemon.waitUntil("the reason recorded", timeout: 30) { try daemon.runs().first?.reason.contains("min_free_disk") == true }
        #expect(try daemon.runs().first?.status == "Queued")
        #expect(try daemon.runs().first?.reason.contains(data) == true, "the reason names the disk")
        try FileManager.default.removeItem(atPath: filler)
        let done = try daemon.waitForRun("sw1", timeout: 60)
        #expect(done.status == "Succeeded", "\(daemon.runLog("sw1"))")
        #expect(daemon.log.contains("disk space is back"))
        #expect(try daemon.storedDeliveries().count == 1, "every acknowledged delivery is in the log")
    }

    /// min_free_disk on an engine: with room on data_dir but not where the engine keeps its
    /// images, builds wait with a reason naming the engine, /healthz says so, and they start when
    /// the engine has room again (here: the threshold lowered by a reload).
    @Test func anEngineUnderMinFreeDiskHoldsBuilds() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("enginedisk"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        let docker = try TestEnvironment.require("SLIPWAY_TEST_DOCKER")
        let info = try run(
            docker, ["info", "--format", "{{.DockerRootDir}}"],
            environment: ["DOCKER_HOST": try TestEnvironment.require("SLIPWAY_TEST_DOCKER_HOST"), "PATH": "/usr/bin:/bin"])
        let root = info.out.trimmingCharacters(in: .whitespacesAndNewlines)
        let engineFree = try #require(DiskGuard.freeBytes(root), "statvfs \(root)")
        // One GB above what the engine's filesystem has; data_dir gets a roomy tmpfs of its own.
        let minimum = (engineFree / 1_000_000_000 + 1) * 1_000_000_000
        var config = try TestEnvironment.buildConfig()
        config += "\nretention: { min_free_disk: \"\(minimum / 1_000_000_000)GB\" }\ntasks:\n"
            + PipelineSystemTests.task("web", repo: repo, image: repo.name)
        let daemon = try DaemonProcess(extraConfig: config)
        let data = daemon.dir + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let mounted = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(minimum / 1_000_000_000 + 50)g", "tmpfs", data])
        #expect(mounted.status == 0, "\(mounted.err)")
        defer { _ = try? run("/bin/umount", ["-l", data]) }
        try daemon.start()
        // The first probe has measured the engine's disk (engine list shows it).
        try daemon.waitUntil("the engine's disk measured", timeout: 20) {
            let engines = try AdminAPI.decoder.decode(
                [AdminAPI.Engine].self, from: Data(try cli(daemon, ["engine", "list", "--output", "json"]).out.utf8))
            return (engines.first?.diskFreeBytes ?? 0) > 0
        }
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        try daemon.waitUntil("the engine's reason recorded", timeout: 30) {
            try daemon.runs().first?.reason.contains("engine local") == true
        }
        let waiting = try #require(try daemon.runs().first)
        #expect(waiting.status == "Queued")
        #expect(waiting.reason.contains(root) && waiting.reason.contains("min_free_disk"), "\(waiting.reason)")
        let health = try RawHTTPClient(port: daemon.port).request("GET", "/healthz")
        #expect(health.json["disk"] as? String == "low", "\(String(decoding: health.body, as: UTF8.self))")
        #expect(daemon.log.contains("no new build starts on engine local"))

        try daemon.rewriteConfig("min_free_disk: \"\(minimum / 1_000_000_000)GB\"", "min_free_disk: \"1MB\"")
        daemon.signal(SIGHUP)
        let done = try daemon.waitForRun("sw1", timeout: 60)
        #expect(done.status == "Succeeded", "\(daemon.runLog("sw1"))")
        #expect(daemon.log.contains("disk space is back on engine local"))
    }

    /// `build_cache` on the real BuildKit: after a build the engine's cache is pruned to the size
    /// (1 MB here). A failed build leaves a 5 MB step in the cache that no image holds: the prune
    /// frees it, so the same commit built again runs that step again instead of reusing it.
    @Test func theBuildCacheIsPrunedDownToItsSize() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("cache"))
        let nonce = "cache-step-\(UUID().uuidString.prefix(8))"
        let dockerfile = """
            FROM \(TestEnvironment.baseImage)
            RUN echo \(nonce) && busybox head -c 5000000 /dev/urandom > /blob
            RUN echo failing on purpose && exit 3

            """
        _ = try repo.commit(["app/Dockerfile": dockerfile, "app/hello.txt": "x"])
        var config = try TestEnvironment.buildConfig()
        config += "\nretention: { build_cache: \"1MB\" }\ntasks:\n" + PipelineSystemTests.task("web", repo: repo, image: repo.name)
        let daemon = try DaemonProcess(extraConfig: config)
        try daemon.start()
        // The step's own output (a line that is not the RUN command echoed by BuildKit).
        func ranTheStep(_ runID: String) -> Bool {
            daemon.runLog(runID).split(separator: "\n").contains { $0.contains(nonce) && !$0.contains("RUN echo") }
        }
        _ = try cli(daemon, ["task", "run", "web", "--no-logs"])
        #expect(try daemon.waitForRun("sw1").status == "Failed", "\(daemon.runLog("sw1"))")
        #expect(ranTheStep("sw1"), "the 5 MB step ran: \(daemon.runLog("sw1"))")
        try daemon.waitUntil("the cache pruned", timeout: 150) { daemon.log.contains("retention: build cache pruned") }
        let line = daemon.log.split(separator: "\n").first { $0.contains("retention: build cache pruned") }.map(String.init) ?? ""
        #expect(line.contains("engine=local") && line.contains("kept=\"1.0 MB\""), "\(line)")
        #expect(line.contains("reclaimed space:") && !line.contains("reclaimed space: 0B"), "the failed build's layers were freed: \(line)")
        let metrics = String(decoding: try RawHTTPClient(port: daemon.port).request("GET", "/metrics").body, as: UTF8.self)
        let freed = metrics.split(separator: "\n").first { $0.hasPrefix("slipway_retention_freed_bytes_total{what=\"build_cache\"}") }
        #expect((freed?.split(separator: " ").last.flatMap { Double($0) } ?? 0) >= 4_000_000, "\(freed ?? "no metric")")
        // Built again: the 5 MB step is not in the cache any more, so it runs (and prints) again.
        _ = try cli(daemon, ["task", "run", "web", "--no-logs"])
        #expect(try daemon.waitForRun("sw2").status == "Failed")
        #expect(ranTheStep("sw2"), "the pruned step ran again: \(daemon.runLog("sw2"))")
    }
}
