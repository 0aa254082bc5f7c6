import Testing

@testable import SlipwayCore

@Suite struct SignatureTests {
    /// GitHub's published example ("Validating webhook deliveries").
    @Test func githubPublishedVector() {
        let digest = HMAC.digest(.sha256, key: Array("It's a Secret to Everybody".utf8), message: Array("Hello, World!".utf8))
        #expect(digest.hexString == "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
        let verifier = SignatureVerifier(
            secrets: [WebhookSecret(name: "/etc/slipway/secrets/webhook", value: Array("It's a Secret to Everybody".utf8))],
            allowSHA1: false)
        let label = try? verifier.verify(
            sha256: "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", sha1: nil, body: Array("Hello, World!".utf8))
        #expect(label == "sha256:/etc/slipway/secrets/webhook")
    }

    @Test func oneFlippedBitIsRefused() {
        let verifier = SignatureVerifier(
            secrets: [WebhookSecret(name: "s", value: Array("It's a Secret to Everybody".utf8))], allowSHA1: false)
        #expect(throws: SignatureVerifier.Failure.mismatch) {
            try verifier.verify(
                sha256: "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e16", sha1: nil,
                body: Array("Hello, World!".utf8))
        }
        #expect(throws: SignatureVerifier.Failure.mismatch) {
            try verifier.verify(
                sha256: "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", sha1: nil,
                body: Array("Hello, World?".utf8))
        }
    }

    @Test func rotationRecordsWhichSecretMatched() throws {
        let body = Array("{\"zen\":\"x\"}".utf8)
        let old = WebhookSecret(name: "/s/old", value: Array("old-secret".utf8))
        let new = WebhookSecret(name: "/s/new", value: Array("new-secret".utf8))
        let verifier = SignatureVerifier(secrets: [old, new], allowSHA1: false)
        let signedByNew = "sha256=" + HMAC.digest(.sha256, key: Array("new-secret".utf8), message: body).hexString
        let signedByOld = "sha256=" + HMAC.digest(.sha256, key: Array("old-secret".utf8), message: body).hexString
        #expect(try verifier.verify(sha256: signedByNew, sha1: nil, body: body) == "sha256:/s/new")
        #expect(try verifier.verify(sha256: signedByOld, sha1: nil, body: body) == "sha256:/s/old")
        // Upper-case hex is the same digest.
        #expect(try verifier.verify(sha256: "sha256=" + signedByNew.dropFirst(7).uppercased(), sha1: nil, body: body) == "sha256:/s/new")
    }

    @Test func legacySHA1OnlyWhenAllowed() throws {
        let body = Array("payload".utf8)
        let secret = WebhookSecret(name: "s", value: Array("k".utf8))
        let sha1 = "sha1=" + HMAC.digest(.sha1, key: Array("k".utf8), message: body).hexString
        #expect(throws: SignatureVerifier.Failure.sha1NotAllowed) {
            try SignatureVerifier(secrets: [secret], allowSHA1: false).verify(sha256: nil, sha1: sha1, body: body)
        }
        #expect(try SignatureVerifier(secrets: [secret], allowSHA1: true).verify(sha256: nil, sha1: sha1, body: body) == "sha1:s")
    }

    @Test(arguments: [
        ("757107ea", "malformed signature header: expected sha256=<hex>"),
        ("sha256=abc", "malformed signature header: expected 64 hex digits, got 3"),
        ("sha256=" + String(repeating: "zz", count: 32), "malformed signature header: not hexadecimal"),
        ("sha1=" + String(repeating: "00", count: 32), "malformed signature header: expected sha256=<hex>"),
    ])
    func malformedHeaders(header: String, reason: String) {
        let verifier = SignatureVerifier(secrets: [WebhookSecret(name: "s", value: [1])], allowSHA1: false)
        do {
            _ = try verifier.verify(sha256: header, sha1: nil, body: [])
            Issue.record("accepted \(header)")
        } catch {
            #expect(error.reason == reason)
        }
    }

    @Test func missingHeaderIsRefused() {
        let verifier = SignatureVerifier(secrets: [WebhookSecret(name: "s", value: [1])], allowSHA1: true)
        #expect(throws: SignatureVerifier.Failure.missing) { try verifier.verify(sha256: nil, sha1: nil, body: []) }
    }

    @Test func constantTimeCompare() {
        #expect(HMAC.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!HMAC.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!HMAC.constantTimeEqual([1, 2, 3], [1, 2]))
    }
}
