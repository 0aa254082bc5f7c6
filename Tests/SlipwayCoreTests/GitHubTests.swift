import Foundation
import Testing

@testable import SlipwayCore

@Suite struct GitHubTests {
    @Test func repositoryIsTheLastTwoPathSegments() {
        #expect(GitHubClient.repository(of: "https://github.com/octo-org/web.git") == "octo-org/web")
        #expect(GitHubClient.repository(of: "https://ghe.example.com/octo-org/web") == "octo-org/web")
        #expect(GitHubClient.repository(of: "git@github.com:octo-org/web.git") == "octo-org/web")
        #expect(GitHubClient.repository(of: "http://127.0.0.1:5078/private/app.git") == "private/app")
        #expect(GitHubClient.repository(of: "https://github.com/web") == nil)
    }

    @Test func rateLimitsSayWhenToRetry() {
        let now = Date(timeIntervalSince1970: 1_000)
        let retryAfter = GitHubClient.Response(status: 403, headers: ["retry-after": "30"], body: Data())
        #expect(GitHubClient.retryAt(retryAfter, now: now) == Date(timeIntervalSince1970: 1_030))
        let reset = GitHubClient.Response(status: 403, headers: ["x-ratelimit-remaining": "0", "x-ratelimit-reset": "5000"], body: Data())
        #expect(GitHubClient.retryAt(reset, now: now) == Date(timeIntervalSince1970: 5_000))
        let forbidden = GitHubClient.Response(status: 403, headers: [:], body: Data())
        #expect(GitHubClient.retryAt(forbidden, now: now) == nil, "a plain 403 is a permission problem, not a wait")
        #expect(GitHubClient.retryAt(GitHubClient.Response(status: 500, headers: [:], body: Data()), now: now) == nil)
    }

    @Test func statusesFollowTheRunsLife() {
        #expect(StatusOutbox.status(for: ("sw7", .queued, .queued, "", "", "{}"))! == ("pending", "sw7 queued"))
        #expect(StatusOutbox.status(for: ("sw7", .running, .building, "fetch", "", "{}"))! == ("pending", "sw7 is running"))
        #expect(StatusOutbox.status(for: ("sw7", .running, .building, "build", "", "{}")) == nil, "one pending when it starts")
        #expect(StatusOutbox.status(for: ("sw7", .succeeded, .ended, "push", "", #"{"build":40.2,"push":10.9}"#))! == ("success", "sw7 succeeded in 51s"))
        #expect(StatusOutbox.status(for: ("sw7", .failed, .ended, "build", "exit 1", "{}"))!.state == "failure")
        #expect(StatusOutbox.status(for: ("sw7", .timeout, .ended, "build", "", "{}"))!.state == "failure")
        #expect(StatusOutbox.status(for: ("sw7", .canceled, .ended, "", "superseded by sw8", "{}"))!.state == "error")
        #expect(StatusOutbox.status(for: ("sw7", .error, .ended, "", String(repeating: "x", count: 500), "{}"))!.description.count <= 140)
    }

    @Test func appJWTIsRS256WithTheRightClaims() throws {
        let dir = TempDirectory()
        let key = dir.path + "/app.pem"
        let gen = Process()
        gen.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        gen.arguments = ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key]
        gen.standardError = FileHandle.nullDevice
        try gen.run()
        gen.waitUntilExit()
        let jwt = try AppJWT.make(appID: 4242, privateKeyPEM: Array(try Data(contentsOf: URL(fileURLWithPath: key))), now: 1_000_000)
        let parts = jwt.split(separator: ".").map(String.init)
        #expect(parts.count == 3)
        func decode(_ s: String) -> Data {
            var b = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            while b.count % 4 != 0 { b += "=" }
            return Data(base64Encoded: b)!
        }
        let claims = try JSONSerialization.jsonObject(with: decode(parts[1])) as! [String: Any]
        #expect(claims["iss"] as? String == "4242" && claims["iat"] as? Int == 999_940 && claims["exp"] as? Int == 1_000_540)
        #expect(decode(parts[2]).count == 256, "an RSA-2048 signature")
        #expect(throws: AppJWT.Failure.self) { try AppJWT.make(appID: 1, privateKeyPEM: Array("not a key".utf8)) }
    }
}
