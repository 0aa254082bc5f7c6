import Foundation
@testable import SlipwayCore
import Testing

/// Where a run builds: labels, load, the warm engine, health and free disk.
@Suite struct EnginePoolTests {
    let dir = TempDirectory()

    func pool(minFreeDisk: String = "2GB") throws -> EnginePool {
        let config = try ConfigLoader.parse(
            """
            data_dir: "\(dir.path)/data"
            retention: { min_free_disk: "\(minFreeDisk)" }
            engines:
              - { name: a, host: "unix:///run/a.sock", max_concurrent: 1, labels: [fast] }
              - { name: b, host: "tcp://127.0.0.1:2376", max_concurrent: 2 }
            tasks:
              - name: web
                context: "https://example.com/o/web.git#main"
                tags: ["r.example/web:{{.Run.ID}}"]
            """, file: dir.path + "/slipway.yaml")
        return EnginePool(config: { config }, defaultHost: nil)
    }

    @Test func labelsLoadAndTheWarmEngine() throws {
        let pool = try pool()
        #expect(pool.choose(task: "web", labels: ["fast"]) == .engine("a"))
        #expect(pool.choose(task: "web", labels: ["gpu"]) == .wait("no engine has the labels [\"gpu\"]"))
        pool.acquire("b", task: "web")
        pool.release("b")
        #expect(pool.choose(task: "web", labels: []) == .engine("b"), "the engine that built the task last, while it has a slot")
        pool.acquire("a", task: "api")
        #expect(pool.choose(task: "web", labels: ["fast"]) == .wait("every engine with labels [\"fast\"] is busy"))
    }

    @Test func anEngineUnderMinFreeDiskTakesNoBuildAndSaysWhy() throws {
        let pool = try pool()
        #expect(pool.diskLow == nil)
        #expect(pool.reportDisk("a", bytes: 500_000_000, path: "/var/lib/docker") == true, "became low")
        #expect(pool.reportDisk("a", bytes: 400_000_000, path: "/var/lib/docker") == nil, "still low: no second warning")
        #expect(pool.choose(task: "web", labels: []) == .engine("b"), "the other engine builds")
        guard case .wait(let why) = pool.choose(task: "web", labels: ["fast"]) else {
            Issue.record("an engine under min_free_disk took a build")
            return
        }
        #expect(why == "waiting for disk space: engine a has 400 MB free in /var/lib/docker, under retention.min_free_disk (2.0 GB)")
        #expect(pool.diskLow?.contains("engine a") == true)
        #expect(pool.list().first { $0.name == "a" }?.diskFreeBytes == 400_000_000)
        #expect(pool.reportDisk("a", bytes: 9_000_000_000, path: "/var/lib/docker") == false, "recovered")
        #expect(pool.choose(task: "web", labels: ["fast"]) == .engine("a"))
        #expect(pool.diskLow == nil)
    }

    @Test func onlyAnEngineOnThisHostHasItsDiskMeasured() {
        #expect(EnginePool.isOnThisHost("unix:///var/run/docker.sock"))
        #expect(EnginePool.isOnThisHost("tcp://127.0.0.1:2376"))
        #expect(EnginePool.isOnThisHost("tcp://localhost:2376"))
        #expect(!EnginePool.isOnThisHost("tcp://10.0.0.5:2376"))
        #expect(!EnginePool.isOnThisHost("ssh://builder@10.0.0.5"))
    }

    @Test func anEngineWhoseDiskCannotBeMeasuredSaysWhyAndHoldsNothing() async throws {
        let pool = try pool()
        #expect(pool.reportDisk("a", bytes: 500_000_000, path: "/var/lib/docker") == true)
        #expect(pool.reportDiskUnmeasured("a", reason: "df in busybox failed: no such image") == true, "a new reason is logged")
        #expect(pool.reportDiskUnmeasured("a", reason: "df in busybox failed: no such image") == false, "once")
        #expect(pool.choose(task: "web", labels: ["fast"]) == .engine("a"), "an unknown disk holds no build")
        #expect(pool.diskLow == nil)
        let listed = pool.list().first { $0.name == "a" }
        #expect(listed?.diskFreeBytes == nil && listed?.diskUnmeasured == "df in busybox failed: no such image")
        #expect(pool.reportDisk("a", bytes: 9_000_000_000, path: "/var/lib/docker") == nil)
        #expect(pool.list().first { $0.name == "a" }?.diskUnmeasured == nil, "measured again")

        // A tcp:// engine on another machine, without a probe image: nothing to run, the reason names the key.
        let remote = SlipwayConfig.EngineSettings(name: "far", host: "tcp://10.0.0.5:2376")
        let reading = await EngineHealthService.measureDisk(remote, root: "/var/lib/docker", cli: "/nonexistent/docker", path: "/usr/bin", scratch: dir.path)
        guard case .unmeasured(let why) = reading else {
            Issue.record("measured a remote engine without a probe: \(reading)")
            return
        }
        #expect(why.contains("disk_probe_image"))
        // A DockerRootDir that could add mount options is never put into `--volume`.
        var probed = remote
        probed.diskProbeImage = "busybox:stable"
        let odd = await EngineHealthService.measureDisk(probed, root: "/var/lib/docker:/etc", cli: "/nonexistent/docker", path: "/usr/bin", scratch: dir.path)
        #expect(odd == .unmeasured("the engine's DockerRootDir '/var/lib/docker:/etc' is not a plain absolute path"))
        // On this host the path is only measured (statvfs), never put into a command: any path will do.
        let spaced = dir.path + "/docker root"
        try FileManager.default.createDirectory(atPath: spaced, withIntermediateDirectories: true)
        let local = SlipwayConfig.EngineSettings(name: "local", host: "unix:///run/docker.sock")
        let here = await EngineHealthService.measureDisk(local, root: spaced, cli: "/nonexistent/docker", path: "/usr/bin", scratch: dir.path)
        guard case .free(let bytes) = here, let now = DiskGuard.freeBytes(spaced) else {
            Issue.record("an engine on this host was not measured: \(here)")
            return
        }
        #expect(abs(bytes - now) < 1_000_000_000, "statvfs of the same filesystem: \(bytes) vs \(now)")
    }

    @Test func dfOutputGivesTheFreeBytes() {
        let ok = EnginePool.DockerResult(
            ok: true, output: ["Filesystem           1024-blocks    Used Available Capacity Mounted on", "overlay  41152736  9000000  30000000  24% /slipway-disk"],
            error: nil)
        #expect(EnginePool.dfReading(ok, command: "df") == .free(30_000_000 * 1024))
        let failed = EnginePool.DockerResult(ok: false, output: [], error: "Unable to find image 'x:1' locally")
        #expect(EnginePool.dfReading(failed, command: "df in x:1") == .unmeasured("df in x:1 failed: Unable to find image 'x:1' locally"))
        let garbled = EnginePool.DockerResult(ok: true, output: ["hello"], error: nil)
        #expect(EnginePool.dfReading(garbled, command: "df") == .unmeasured("df printed no free space: hello"))
    }

    @Test func theProbeImageIsAReference() throws {
        func parse(_ image: String) throws -> SlipwayConfig {
            try ConfigLoader.parse(
                """
                data_dir: "\(dir.path)/data"
                engines:
                  - { name: far, host: "tcp://10.0.0.5:2376", disk_probe_image: "\(image)" }
                tasks: []
                """, file: dir.path + "/slipway.yaml")
        }
        #expect(try parse("busybox:stable").engines.first?.diskProbeImage == "busybox:stable")
        #expect(throws: (any Error).self) { try parse("--privileged") }
        #expect(throws: (any Error).self) { try parse("busybox sh") }
    }

    @Test func sshEnginesAreReachedAsTheirURLSays() {
        let withPort = EnginePool.SSHTarget("ssh://builder@10.0.0.5:2222")
        #expect(withPort?.destination == "builder@10.0.0.5" && withPort?.port == 2222)
        let plain = EnginePool.SSHTarget("ssh://builder@host")
        #expect(plain?.destination == "builder@host" && plain?.port == nil)
        #expect(EnginePool.SSHTarget("ssh://-oProxyCommand=x") == nil, "never an option")
        #expect(EnginePool.SSHTarget("tcp://10.0.0.5:2376") == nil)
    }
}
