import Foundation
import SlipwayCore
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The web page: HTTP answers, escaping, and a real headless Chromium following a live log.
@Suite(.serialized, .enabled(if: TestEnvironment.shouldRun, TestEnvironment.skipMessage))
struct UISystemTests {
    static func daemon(repo: GitRepo, users: Bool, dockerfileSteps: String = "") throws -> (DaemonProcess, Int) {
        let port = try DaemonProcess.freePort()
        var config = try TestEnvironment.buildConfig()
        config += "\ntasks:\n" + PipelineSystemTests.task("web", repo: repo, image: repo.name)
        let daemon = try DaemonProcess(extraConfig: config)
        if users {
            let line = try run("/usr/bin/htpasswd", ["-nbB", "alice", "s3cret-pass"]).out.trimmingCharacters(in: .whitespacesAndNewlines)
            FileManager.default.createFile(atPath: daemon.dir + "/ui-users", contents: Data((line + "\n").utf8), attributes: [.posixPermissions: 0o600])
            try daemon.appendConfig("ui: { listen: \"127.0.0.1:\(port)\", users_file: \"ui-users\" }\n")
        } else {
            try daemon.appendConfig("ui: { listen: \"127.0.0.1:\(port)\" }\n")
        }
        try daemon.start()
        try daemon.waitUntil("the web page") { (try? RawHTTPClient(port: port, timeoutSeconds: 1).request("GET", "/engines")) != nil }
        return (daemon, port)
    }

    static let auth = ("Authorization", "Basic " + Data("alice:s3cret-pass".utf8).base64EncodedString())

    static func get(_ port: Int, _ path: String, auth: Bool = true) throws -> (status: Int, body: String, headers: [String: String]) {
        let r = try RawHTTPClient(port: port).request("GET", path, headers: auth ? [Self.auth] : [])
        return (r.status, String(decoding: r.body, as: UTF8.self), r.headers)
    }

    @Test func pagesAuthenticateEscapeAndRefuse() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("ui"))
        let sha = try repo.commit([
            "app/Dockerfile": PipelineSystemTests.dockerfile("RUN printf '\\033[31mcoloured-output\\033[0m\\n'\n"), "app/hello.txt": "x",
        ])
        let (daemon, port) = try Self.daemon(repo: repo, users: true)
        // Without credentials: 401 with the realm.
        let anonymous = try Self.get(port, "/", auth: false)
        #expect(anonymous.status == 401 && anonymous.headers["www-authenticate"] == "Basic realm=\"slipway\"")
        let wrong = try RawHTTPClient(port: port).request(
            "GET", "/", headers: [("Authorization", "Basic " + Data("alice:nope".utf8).base64EncodedString())])
        #expect(wrong.status == 401)
        // A push whose commit message is markup: escaped on the event page.
        let seq = try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"], message: "<img src=x onerror=alert(1)>"))
        #expect(try daemon.waitForRun("sw1").status == "Succeeded", "\(daemon.runLog("sw1"))")
        let event = try Self.get(port, "/events/\(seq)")
        #expect(event.status == 200)
        #expect(event.body.contains("&lt;img src=x onerror=alert(1)&gt;") && !event.body.contains("<img src=x"), "\(event.body)")
        // Build output's terminal escapes never reach the HTML.
        let page = try Self.get(port, "/runs/sw1")
        #expect(page.status == 200 && page.body.contains("coloured-output") && !page.body.contains("\u{1B}"))
        #expect(page.body.contains("class=\"Succeeded\">Succeeded"), "statuses appear as their words")
        // The event stream resumes after the last line a browser got: none lost, none doubled.
        let stream = try Self.get(port, "/runs/sw1/stream")
        #expect(stream.headers["content-type"] == "text/event-stream" && stream.body.hasSuffix("event: status\ndata: Succeeded\n\n"))
        let events = stream.body.components(separatedBy: "\n\n").filter { $0.hasPrefix("id: ") }
        #expect(events.count > 5)
        if events.count > 5 {
            let thirdID = String(events[2].split(separator: "\n")[0].dropFirst(4))
            let resumed = try RawHTTPClient(port: port).request(
                "GET", "/runs/sw1/stream", headers: [Self.auth, ("Last-Event-ID", thirdID)])
            let again = String(decoding: resumed.body, as: UTF8.self).components(separatedBy: "\n\n").filter { $0.hasPrefix("id: ") }
            #expect(again == Array(events.dropFirst(3)), "resumed exactly after the third line")
        }
        let full = try Self.get(port, "/runs/sw1/log")
        #expect(full.status == 200 && full.body.contains("coloured-output") && !full.body.contains("\u{1B}"))
        let tasks = try Self.get(port, "/")
        #expect(tasks.body.contains("sw1") && tasks.body.contains("Succeeded"))
        // Bad input and unknown things.
        let bad = try Self.get(port, "/runs?status=Nope")
        #expect(bad.status == 400 && bad.body.contains("unknown status &#39;Nope&#39;") || bad.body.contains("unknown status 'Nope'"), "\(bad.body)")
        #expect(try Self.get(port, "/runs/sw999").status == 404)
        #expect(try Self.get(port, "/runs/sw999/log").status == 404)
        #expect(try Self.get(port, "/events/999").status == 404)
        // A POST without the CSRF token is refused and changes nothing; with it, it runs.
        let forged = try RawHTTPClient(port: port).request(
            "POST", "/tasks/web/run", headers: [Self.auth, ("Content-Type", "application/x-www-form-urlencoded")], body: Data("csrf=0000".utf8))
        #expect(forged.status == 403)
        #expect(try daemon.runs().count == 1)
        let token = try #require(tasks.body.range(of: "name=\"csrf\" value=\"").map { tasks.body[$0.upperBound...].prefix(64) })
        let posted = try RawHTTPClient(port: port).request(
            "POST", "/tasks/web/run", headers: [Self.auth, ("Content-Type", "application/x-www-form-urlencoded")], body: Data("csrf=\(token)".utf8))
        #expect(posted.status == 303 && posted.headers["location"] == "/runs/sw2", "\(posted.status) \(posted.headers)")
        #expect(try daemon.waitForRun("sw2").status == "Succeeded")
        #expect(try cli(daemon, ["run", "show", "sw2", "--output", "json"]).out.contains("\"requested_by\" : \"alice\""))
    }

    @Test func aBrowserFollowsTheLiveLogAndACancelButtonCancels() throws {
        let repo = try GitRepo(name: PipelineSystemTests.name("live"))
        let sha = try repo.commit([
            "app/Dockerfile": PipelineSystemTests.dockerfile("RUN for i in 1 2 3 4; do echo tick-$i; sleep 1; done\n"), "app/hello.txt": "x",
        ])
        let (daemon, port) = try Self.daemon(repo: repo, users: false)
        try daemon.push(repo.pushPayload(after: sha, files: ["app/Dockerfile"]))
        try daemon.waitUntil("the build printing") { daemon.runLog("sw1").contains("tick-1") }
        // Chromium loads the page while the build runs and keeps it open: the DOM it ends with has
        // the lines that came later and the final status, without a reload.
        let chromium = try run(
            "/usr/bin/chromium",
            // Virtual time does not advance while the event stream is open: the DOM is dumped once
            // the stream ends with the run's status (or at the real 60 s cap).
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000", "--timeout=60000", "--dump-dom",
                "http://127.0.0.1:\(port)/runs/sw1",
            ])
        let dom = chromium.out
        #expect(dom.contains("tick-4"), "lines after the page was loaded: \(dom.suffix(1500)) \(chromium.err.suffix(500))")
        #expect(dom.contains("id=\"status\" class=\"Succeeded\">Succeeded"), "the final status: \(dom.prefix(1500))")
        #expect(try daemon.waitForRun("sw1").status == "Succeeded")
        let shot = Fixtures.root + "/.build/run-page.png"
        _ = try run(
            "/usr/bin/chromium",
            ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900", "--screenshot=\(shot)", "http://127.0.0.1:\(port)/runs/sw1"])
        #expect(FileManager.default.fileExists(atPath: shot), "a screenshot for people to look at")
        // The task list shows the latest status.
        let list = try run("/usr/bin/chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "http://127.0.0.1:\(port)/"])
        #expect(list.out.contains("sw1") && list.out.contains("Succeeded"))
        // A click on the cancel button in the browser (mouse events over DevTools) cancels a
        // running build; the page it lands on ends showing the status.
        let slow = try repo.commit(["app/Dockerfile": PipelineSystemTests.dockerfile("RUN sleep 60\n")])
        try daemon.push(repo.pushPayload(after: slow, files: ["app/Dockerfile"]))
        try daemon.waitUntil("sw2 building") { daemon.runLog("sw2").contains("$ docker build") }
        let clicked = try run(
            "/usr/bin/python3",
            [Fixtures.root + "/scripts/browser-click.py", "http://127.0.0.1:\(port)/runs/sw2", "cancel", "--wait-text", "Canceled", "--timeout", "45"])
        #expect(clicked.status == 0, "\(clicked.err)")
        #expect(clicked.out.hasPrefix("http://127.0.0.1:\(port)/runs/sw2\n"), "back on the run page: \(clicked.out.prefix(200))")
        #expect(clicked.out.contains("class=\"Canceled\">Canceled"), "the page shows the end: \(clicked.out.suffix(1500))")
        let canceled = try daemon.waitForRun("sw2", timeout: 30)
        #expect(canceled.status == "Canceled" && canceled.reason.hasPrefix("canceled by"), "\(canceled.reason)")
    }

    @Test func aPublicPageNeedsUsers() throws {
        let dir = "/tmp/slipway-uipublic-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let daemon = try DaemonProcess()
        try daemon.appendConfig("ui: { listen: \"0.0.0.0:\(try DaemonProcess.freePort())\" }\n")
        let r = try run("/usr/bin/timeout", ["20", DaemonProcess.binary, "serve", "--config", daemon.configPath])
        #expect(r.status != 0 && r.err.contains("ui.users_file"), "\(r.err)")
    }
}
