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
        let data = try daemon.mountDataOnTmpfs(size: "64m")
        defer { daemon.unmountData() }
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
        _ = try daemon.mountDataOnTmpfs(size: "\(minimum / 1_000_000_000 + 50)g")
        defer { daemon.unmountData() }
        try daemon.start()
        // The first probe has measured the engine's disk (engine list shows it).
        try daemon.waitUntil("the engine's disk measured", timeout: 20) {
            let engines = try daemon.engines()
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

    /// min_free_disk on a `tcp://` engine through its `disk_probe_image`: Slipway runs the
    /// image's `df` in a container on that engine with the DockerRootDir mounted (how an engine on
    /// another machine is measured; the TLS engine here is on the same machine, so the figure can
    /// be compared with statvfs). Under the threshold its builds wait with its reason; a probe
    /// image the engine cannot run is reported once as "not measured" and holds nothing.
    @Test func aTCPEngineIsMeasuredWithItsProbeImage() throws {
        let docker = try TestEnvironment.require("SLIPWAY_TEST_DOCKER")
        let tlsDir = try TestEnvironment.require("SLIPWAY_TEST_TLS_DIR")
        let host = try TestEnvironment.require("SLIPWAY_TEST_TLS_DOCKER_HOST")
        let env = ["DOCKER_HOST": host, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": tlsDir + "/client-dir", "PATH": "/usr/bin:/bin"]
        // A probe image on the engine: busybox with `df` (docker import of a two-file rootfs).
        let image = "slipway-test/df-probe:latest"
        let rootfs = "/tmp/slipway-df-probe-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: rootfs) }
        try FileManager.default.createDirectory(atPath: rootfs + "/bin", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: rootfs + "/bin/busybox")
        try FileManager.default.createSymbolicLink(atPath: rootfs + "/bin/df", withDestinationPath: "busybox")
        #expect(try run("/bin/tar", ["-C", rootfs, "-cf", rootfs + ".tar", "."]).status == 0)
        defer { try? FileManager.default.removeItem(atPath: rootfs + ".tar") }
        let imported = try run(docker, ["import", rootfs + ".tar", image], environment: env)
        #expect(imported.status == 0, "\(imported.err)")

        let root = try run(docker, ["info", "--format", "{{.DockerRootDir}}"], environment: env).out.trimmingCharacters(in: .whitespacesAndNewlines)
        let engineFree = try #require(DiskGuard.freeBytes(root), "statvfs \(root)")
        let minimum = (engineFree / 1_000_000_000 + 1) * 1_000_000_000
        let repo = try GitRepo(name: PipelineSystemTests.name("probedisk"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        var config = try TestEnvironment.buildConfig()
        config += """

            retention: { min_free_disk: "\(minimum / 1_000_000_000)GB" }
            engines:
              - name: secure
                host: "\(host)"
                tls: { ca_file: "\(tlsDir)/ca.pem", cert_file: "\(tlsDir)/client.pem", key_file: "\(tlsDir)/client-key.pem" }
                disk_probe_image: "\(image)"
            tasks:

            """ + PipelineSystemTests.task("web", repo: repo, image: repo.name)
        let daemon = try DaemonProcess(extraConfig: config)
        _ = try daemon.mountDataOnTmpfs(size: "\(minimum / 1_000_000_000 + 50)g")
        defer { daemon.unmountData() }
        let since = Int(Date().timeIntervalSince1970) - 1
        try daemon.start()
        func engine() throws -> AdminAPI.Engine? {
            try daemon.engines().first
        }
        try daemon.waitUntil("the engine's disk measured", timeout: 40) { (try engine()?.diskFreeBytes ?? 0) > 0 }
        let measured = try #require(try engine()?.diskFreeBytes)
        // The same filesystem seen from the container and from here (other tests write meanwhile).
        #expect(abs(measured - engineFree) < max(engineFree / 20, 500_000_000), "container df \(measured), statvfs \(engineFree)")
        // It was the probe container that measured it (the engine's own event log says so).
        let events = try run(
            docker,
            ["events", "--since", "\(since)", "--until", "\(Int(Date().timeIntervalSince1970) + 2)", "--filter", "label=slipway.probe=disk",
             "--filter", "event=start", "--format", "{{.Actor.Attributes.image}}"], environment: env)
        #expect(events.out.contains(image), "probe containers started on the engine: \(events.out) \(events.err)")

        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        try daemon.waitUntil("the engine's reason recorded", timeout: 30) { try daemon.runs().first?.reason.contains("engine secure") == true }
        let waiting = try #require(try daemon.runs().first)
        #expect(waiting.status == "Queued" && waiting.reason.contains(root) && waiting.reason.contains("min_free_disk"), "\(waiting.reason)")
        #expect(try RawHTTPClient(port: daemon.port).request("GET", "/healthz").json["disk"] as? String == "low")

        // A probe image the engine cannot run: said once, and the disk no longer holds builds.
        try daemon.rewriteConfig("disk_probe_image: \"\(image)\"", "disk_probe_image: \"slipway-test/no-such-probe:1\"")
        daemon.signal(SIGHUP)
        let done = try daemon.waitForRun("sw1", timeout: 90)
        #expect(done.status == "Succeeded", "\(daemon.runLog("sw1"))")
        #expect(daemon.log.contains("free space of engine secure is not measured: df in slipway-test/no-such-probe:1 failed"), "\(daemon.log)")
        let unmeasured = try #require(try engine())
        #expect(unmeasured.diskFreeBytes == nil && unmeasured.diskUnmeasured?.contains("no-such-probe") == true, "\(unmeasured)")
        #expect(try RawHTTPClient(port: daemon.port).request("GET", "/healthz").json["disk"] as? String != "low")
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
