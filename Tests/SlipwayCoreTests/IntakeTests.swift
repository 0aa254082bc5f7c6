import Foundation
import Testing

@testable import SlipwayCore

@Suite struct IntakeTests {
    let secret = Array("topsecret".utf8)
    var intake: WebhookIntake {
        WebhookIntake(
            verifier: SignatureVerifier(secrets: [WebhookSecret(name: "/s/webhook", value: secret)], allowSHA1: false), maxBodyBytes: 4096)
    }

    func headers(_ body: [UInt8], event: String? = "push", delivery: String? = "d-1", type: String = "application/json") -> [(
        name: String, value: String
    )] {
        var h: [(name: String, value: String)] = [("Content-Type", type)]
        if let event { h.append(("X-GitHub-Event", event)) }
        if let delivery { h.append(("X-GitHub-Delivery", delivery)) }
        h.append(("X-GitHub-Hook-ID", "42"))
        h.append(("X-Hub-Signature-256", "sha256=" + HMAC.digest(.sha256, key: secret, message: body).hexString))
        return h
    }

    func rejection(_ result: Result<WebhookIntake.Accepted, WebhookIntake.Rejection>) -> WebhookIntake.Rejection? {
        if case .failure(let r) = result { return r }
        return nil
    }

    @Test func acceptsASignedPush() throws {
        let body = Array(#"{"ref":"refs/heads/main"}"#.utf8)
        let accepted = try intake.inspect(headers: headers(body), body: body).get()
        #expect(accepted.delivery.deliveryID == "d-1")
        #expect(accepted.delivery.hookID == "42")
        #expect(accepted.delivery.signature == "sha256:/s/webhook")
        #expect(accepted.delivery.body == body)
        #expect(accepted.delivery.headersJSON.contains(#""x-github-event":"push""#))
        #expect(accepted.zen == nil)
    }

    @Test func formEncodedPayload() throws {
        let json = #"{"zen":"Speak like a human.","hook_id":7}"#
        let encoded =
            "payload="
            + json.utf8.map { c -> String in
                let ch = Character(Unicode.Scalar(c))
                return ch.isLetter || ch.isNumber ? String(ch) : "%" + [c].hexString.uppercased()
            }.joined()
        let body = Array(encoded.utf8)
        let accepted = try intake.inspect(headers: headers(body, event: "ping", type: "application/x-www-form-urlencoded"), body: body)
            .get()
        #expect(accepted.zen == "Speak like a human.")
        #expect(accepted.delivery.body == body, "the exact bytes received are stored")
    }

    @Test func answersOfTheTable() {
        let body = Array(#"{"a":1}"#.utf8)
        #expect(
            rejection(intake.inspect(headers: headers(body, type: "text/plain"), body: body))
                == .init(status: 415, reason: "content type 'text/plain' is not application/json or application/x-www-form-urlencoded"))
        #expect(
            rejection(intake.inspect(headers: headers(body, event: nil), body: body))
                == .init(status: 400, reason: "missing X-GitHub-Event header"))
        #expect(
            rejection(intake.inspect(headers: headers(body, delivery: nil), body: body))
                == .init(status: 400, reason: "missing X-GitHub-Delivery header"))
        let broken = Array(#"{"a":1"#.utf8)
        #expect(
            rejection(intake.inspect(headers: headers(broken), body: broken))
                == .init(status: 400, reason: "payload is not valid JSON: invalid JSON at byte 6: expected '}'"))
        var unsigned = headers(body)
        unsigned.removeLast()
        #expect(rejection(intake.inspect(headers: unsigned, body: body))?.status == 401)
        let big = [UInt8](repeating: 32, count: 5000)
        #expect(rejection(intake.inspect(headers: headers(big), body: big))?.status == 413)
        // A signature made with another secret is refused before anything else is looked at.
        var forged = headers(body, type: "text/plain")
        forged[forged.count - 1].value = "sha256=" + HMAC.digest(.sha256, key: Array("guess".utf8), message: body).hexString
        #expect(
            rejection(intake.inspect(headers: forged, body: body))
                == .init(status: 401, reason: "signature does not match any configured secret"))
    }

    @Test(arguments: [
        ("", "unexpected end of input"), ("{\"a\":}", "unexpected character"), ("[1,2", "expected ']'"),
        ("{\"a\":1} x", "unexpected data after the JSON value"), ("\"\u{01}\"", "control character in string"),
        ("01", "unexpected data after the JSON value"), ("[tru]", "invalid literal"),
    ])
    func jsonValidatorRejects(text: String, problem: String) {
        do {
            try JSONValidator.validate(Array(text.utf8))
            Issue.record("accepted \(text)")
        } catch {
            #expect(error.problem == problem)
        }
    }

    @Test func jsonValidatorAcceptsRealPayloadsAndCapsDepth() throws {
        for name in ["push", "ping", "push-tag", "push-branch-deleted"] {
            try JSONValidator.validate(try Fixtures.bytes("github/\(name).json"))
        }
        try JSONValidator.validate(Array(#"{"u":"\u00e9 é 😀","n":-1.5e+3,"a":[true,false,null,{}]}"#.utf8))
        let deep = String(repeating: "[", count: 600) + String(repeating: "]", count: 600)
        #expect(throws: JSONValidator.Invalid.self) { try JSONValidator.validate(Array(deep.utf8)) }
        #expect(throws: JSONValidator.Invalid.self) { try JSONValidator.validate([0x22, 0xc3, 0x28, 0x22]) }
    }
}

enum Fixtures {
    static var root: String {
        let file = #filePath
        return String(file[..<file.range(of: "/Tests/")!.lowerBound]) + "/Tests/Fixtures/"
    }

    static func bytes(_ name: String) throws -> [UInt8] { try FileText.readBytes(root + name) }
}

/// The stored headers JSON must be valid JSON holding exactly what was received.
@Suite struct HeadersJSONTests {
    @Test func escapesAndRoundTrips() throws {
        let tricky = "quote\" back\\slash\nnew\rret\ttab \u{01}\u{1f}\u{7f} café 🚢 ünï"
        let quoted = JSONText.quote(tricky)
        let decoded = try JSONSerialization.jsonObject(with: Data(quoted.utf8), options: .fragmentsAllowed) as? String
        #expect(decoded == tricky)
        #expect(quoted.contains("\\u0001") && quoted.contains("\\u007f"))
    }

    @Test func lowerCasesNamesAndJoinsRepeats() throws {
        let json = WebhookIntake.headersJSON([
            (name: "X-GitHub-Event", value: "push"), (name: "Accept", value: "*/*"), (name: "accept", value: "text/plain"),
            (name: "X-Note", value: "a \"b\" ü"),
        ])
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: String]
        #expect(object == ["x-github-event": "push", "accept": "*/*, text/plain", "x-note": "a \"b\" ü"])
        #expect(json.hasPrefix(#"{"x-github-event":"push","accept":"#), "order kept: \(json)")
    }
}
