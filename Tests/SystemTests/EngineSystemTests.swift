import Foundation
import SlipwayCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Builds spread over Docker engines: a TCP+TLS dockerd beside the local one.
@Suite(.serialized, .enabled(if: TestEnvironment.shouldRun, TestEnvironment.skipMessage))
struct EngineSystemTests {
    static var tlsDir: String { TestEnvironment.values["SLIPWAY_TEST_TLS_DIR"] ?? "missing" }

    static func engine(_ name: String, host: String, tls: Bool, labels: [String], max: Int = 1) -> String {
        var text = "  - name: \(name)\n    host: \"\(host)\"\n    max_concurrent: \(max)\n    labels: [\(labels.map { "\"\($0)\"" }.joined(separator: ", "))]\n"
        if tls {
            text += "    tls: { ca_file: \"\(tlsDir)/ca.pem\", cert_file: \"\(tlsDir)/client.pem\", key_file: \"\(tlsDir)/client-key.pem\" }\n"
        }
        return text
    }

    static func daemon(engines: [String], tasks: [String]) throws -> DaemonProcess {
        var config = try TestEnvironment.buildConfig()
        config += "\nengines:\n" + engines.joined() + "tasks:\n" + tasks.joined(separator: "\n")
        let daemon = try DaemonProcess(extraConfig: config)
        try daemon.start()
        return daemon
    }

    static func show(_ daemon: DaemonProcess, _ id: String) throws -> AdminAPI.Run {
        try AdminAPI.decoder.decode(AdminAPI.Run.self, from: Data(try cli(daemon, ["run", "show", id, "--output", "json"]).out.utf8))
    }

    static var local: String { TestEnvironment.values["SLIPWAY_TEST_DOCKER_HOST"] ?? "missing" }

    @Test func aLabelledTaskBuildsAndPushesOnTheTLSEngine() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("tlsengine"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        let task = PipelineSystemTests.task("web", repo: repo, image: repo.name, extra: "    engine_labels: [\"tls\"]\n")
        let daemon = try Self.daemon(
            engines: [
                Self.engine("local", host: Self.local, tls: false, labels: []),
                Self.engine("secure", host: try TestEnvironment.require("SLIPWAY_TEST_TLS_DOCKER_HOST"), tls: true, labels: ["tls"]),
            ], tasks: [task])
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        let run = try daemon.waitForRun("sw1")
        #expect(run.status == "Succeeded", "\(daemon.runLog("sw1"))")
        #expect(try Self.show(daemon, "sw1").engine == "secure")
        #expect(try StageSystemTests.registryTags(repo.name).contains("sw1"))
        let list = try cli(daemon, ["engine", "list", "--output", "json"])
        let engines = try AdminAPI.decoder.decode([AdminAPI.Engine].self, from: Data(list.out.utf8))
        #expect(engines.map(\.name) == ["local", "secure"] && engines.allSatisfy { $0.state == "up" }, "\(list.out)")
        #expect(!daemon.runLog("sw1").contains("client-key.pem") || !daemon.runLog("sw1").contains("BEGIN"), "no key material in the log")
    }

    @Test func theSSHEngineBuildsATask() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("sshengine"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile(), "app/hello.txt": "x"])
        let task = PipelineSystemTests.task("web", repo: repo, image: repo.name, extra: "    engine_labels: [\"arm\"]\n")
        let dir = try TestEnvironment.require("SLIPWAY_TEST_SSH_DIR")
        let engine = """
              - name: remote
                host: "\(try TestEnvironment.require("SLIPWAY_TEST_SSH_DOCKER_HOST"))"
                ssh: { identity_file: "\(dir)/client-key", known_hosts_file: "\(dir)/known_hosts" }
                labels: ["arm"]

            """
        let daemon = try Self.daemon(engines: [Self.engine("local", host: Self.local, tls: false, labels: []), engine], tasks: [task])
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        let run = try daemon.waitForRun("sw1")
        #expect(run.status == "Succeeded", "\(daemon.runLog("sw1"))")
        #expect(try Self.show(daemon, "sw1").engine == "remote")
        #expect(try StageSystemTests.registryTags(repo.name).contains("sw1"))
        // Its disk is measured over the same ssh settings (`df` of its DockerRootDir).
        try daemon.waitUntil("the ssh engine's disk measured", timeout: 30) {
            let engines = try daemon.engines()
            return (engines.first { $0.name == "remote" }?.diskFreeBytes ?? 0) > 0
        }
    }

    @Test func simultaneousRunsSpreadOverEngines() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("spread"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile("RUN sleep 2\n"), "app/hello.txt": "x"])
        let tasks = ["one", "two"].map { PipelineSystemTests.task($0, repo: repo, image: "\(repo.name)-\($0)") }
        let daemon = try Self.daemon(
            engines: [
                Self.engine("local", host: Self.local, tls: false, labels: []),
                Self.engine("secure", host: try TestEnvironment.require("SLIPWAY_TEST_TLS_DOCKER_HOST"), tls: true, labels: []),
            ], tasks: tasks)
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        #expect(try daemon.waitForRun("sw1").status == "Succeeded", "\(daemon.runLog("sw1"))")
        #expect(try daemon.waitForRun("sw2").status == "Succeeded", "\(daemon.runLog("sw2"))")
        #expect(Set([try Self.show(daemon, "sw1").engine, try Self.show(daemon, "sw2").engine]) == ["local", "secure"])
    }

    @Test func anEngineLostMidBuildFailsOverAndComesBack() throws {
        let port = try DaemonProcess.freePort()
        let host = "tcp://127.0.0.1:\(port)"
        let env = [
            "DOCKER_HOST": host, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "\(Self.tlsDir)/client-dir", "PATH": "/usr/bin:/bin",
        ]
        let docker = try TestEnvironment.require("SLIPWAY_TEST_DOCKER")
        func start() throws -> Background {
            let server = try Background(
                "/usr/sbin/dockerd",
                [
                    "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver=vfs", "--data-root", "/var/lib/slipway-test-docker-tls2",
                    "--exec-root", "/run/slipway-test/exec-tls2", "--host", host, "--tlsverify", "--tlscacert", "\(Self.tlsDir)/ca.pem",
                    "--tlscert", "\(Self.tlsDir)/server.pem", "--tlskey", "\(Self.tlsDir)/server-key.pem", "--pidfile", "/run/slipway-test/docker-tls2.pid",
                ], log: "/tmp/slipway-tls2-dockerd.log")
            try server.wait("the second TLS dockerd") { (try? run("/usr/bin/timeout", ["5", docker, "info"], environment: env))?.status == 0 }
            return server
        }
        var server = try start()
        if try run("/usr/bin/timeout", ["10", docker, "image", "inspect", TestEnvironment.baseImage], environment: env).status != 0 {
            let archive = "/tmp/slipway-base-\(UUID().uuidString.prefix(6)).tar"
            defer { try? FileManager.default.removeItem(atPath: archive) }
            let local = ["DOCKER_HOST": Self.local, "PATH": "/usr/bin:/bin"]
            #expect(try run(docker, ["save", "-o", archive, TestEnvironment.baseImage], environment: local).status == 0)
            #expect(try run(docker, ["load", "-q", "-i", archive], environment: env).status == 0)
        }
        let repo = try GitRepo(name: PipelineSystemTests.name("failover"))
        let sha = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile("RUN sleep 8\n"), "app/hello.txt": "x"])
        let task = PipelineSystemTests.task("web", repo: repo, image: repo.name, extra: "    engine_labels: [\"a\"]\n")
        let daemon = try Self.daemon(
            engines: [Self.engine("remote", host: host, tls: true, labels: ["a"]), Self.engine("local", host: Self.local, tls: false, labels: ["a"])],
            tasks: [task])
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        try daemon.waitUntil("sw1 building on remote") { daemon.runLog("sw1").contains("$ docker build") }
        #expect(try Self.show(daemon, "sw1").engine == "remote")
        server.stop()
        let lost = try daemon.waitForRun("sw1", timeout: 60)
        #expect(lost.status == "Error" && lost.reason.contains("engine remote became unreachable"), "\(lost.reason)")
        let retry = try daemon.waitForRun("sw2", timeout: 120)
        #expect(retry.status == "Succeeded" && retry.attempt == 2, "\(daemon.runLog("sw2"))")
        #expect(try Self.show(daemon, "sw2").engine == "local")
        #expect(daemon.runLog("sw1").contains("queued again as sw2") && daemon.runLog("sw2").contains("retry of sw1"))
        try daemon.waitUntil("remote shown down", timeout: 20) {
            let engines = try daemon.engines()
            return engines.first { $0.name == "remote" }.map { $0.state == "down" && $0.lastError != nil } ?? false
        }
        server = try start()
        defer { server.stop() }
        try daemon.waitUntil("remote up again", timeout: 25) {
            let engines = try daemon.engines()
            return engines.first { $0.name == "remote" }?.state == "up"
        }
    }
}
