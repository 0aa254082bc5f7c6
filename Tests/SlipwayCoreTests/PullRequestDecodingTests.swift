import Foundation
import Testing

@testable import SlipwayCore

/// `PullRequestEvent.decode` reads only the fields the matcher needs from a 20–30 KB payload; it
/// must decide exactly as the `JSONDecoder` decoding it replaced (the reference below).
@Suite struct PullRequestDecodingTests {
    /// The decoder the matcher used before (`JSONDecoder` over these types).
    struct Reference: Decodable {
        var action: String
        var number: Int?
        var pull_request: PR
        var repository: Repository?

        struct PR: Decodable {
            var number: Int?
            var head: Branch
            var base: Branch
        }

        struct Branch: Decodable {
            var ref: String?
            var sha: String?
            var repo: Repository?
        }

        struct Repository: Decodable {
            var full_name: String?
            var clone_url: String?
            var html_url: String?
            var ssh_url: String?
        }

        static func decode(_ payload: [UInt8]) -> PullRequestEvent? {
            guard let wire = try? JSONDecoder().decode(Reference.self, from: Data(payload)) else { return nil }
            let base = wire.pull_request.base
            let baseRepo = base.repo ?? wire.repository
            return PullRequestEvent(
                action: wire.action, number: wire.number ?? wire.pull_request.number ?? 0, headSHA: wire.pull_request.head.sha ?? "",
                headRef: wire.pull_request.head.ref ?? "", headRepository: wire.pull_request.head.repo?.full_name ?? "",
                baseRef: base.ref ?? "", baseRepository: baseRepo?.full_name ?? "",
                repositoryURLs: [baseRepo?.clone_url, baseRepo?.html_url, baseRepo?.ssh_url, wire.repository?.clone_url, wire.repository?.html_url]
                    .compactMap { $0 })
        }
    }

    @Test(arguments: ["pull_request", "pull_request-fork", "push"])
    func fixturesDecodeAsBefore(name: String) throws {
        let payload = try Fixtures.bytes("github/\(name).json")
        let reference = Reference.decode(payload)
        #expect((try? PullRequestEvent.decode(payload: payload)) == reference)
        if name != "push" { #expect(reference != nil) }
    }

    @Test func theFixturesSayWhatTheMatcherNeeds() throws {
        let own = try PullRequestEvent.decode(payload: Fixtures.bytes("github/pull_request.json"))
        #expect(own.action == "synchronize" && own.number == 42 && own.headRef == "feature/arm64" && own.baseRef == "main")
        #expect(own.headSHA == "0123456789abcdef0123456789abcdef01234567")
        #expect(!own.isFromFork)
        let fork = try PullRequestEvent.decode(payload: Fixtures.bytes("github/pull_request-fork.json"))
        #expect(fork.isFromFork && fork.headRepository == "contributor/aci-helloworld" && fork.baseRepository == "octo-org/aci-helloworld")
        // The head is fetched from the base repository: its URLs, never the fork's.
        #expect(fork.repositoryURLs.allSatisfy { $0.contains("octo-org/aci-helloworld") })
    }

    @Test func oddPayloadsDecideAsBefore() {
        let head = #""head":{"ref":"f","sha":"1"}"#
        let base = #""base":{"ref":"main","repo":{"full_name":"o/r","clone_url":"https://h/o/r.git"}}"#
        let cases = [
            #"{"action":"opened","pull_request":{\#(head),\#(base)}}"#,
            #"{"action":"opened","number":7,"pull_request":{"number":8,\#(head),\#(base)}}"#,
            #"{"action":"opened","number":null,"pull_request":{"number":8,\#(head),\#(base)}}"#,
            #"{"action":"opened","number":7.0,"pull_request":{\#(head),\#(base)}}"#,
            #"{"action":"opened","number":7.5,"pull_request":{\#(head),\#(base)}}"#,
            #"{"action":"opened","number":7e1,"pull_request":{\#(head),\#(base)}}"#,
            #"{"action":"opened","number":-3,"pull_request":{\#(head),\#(base)}}"#,
            #"{"action":"opened","number":99999999999999999999,"pull_request":{\#(head),\#(base)}}"#,
            #"{"action":"opened","number":"7","pull_request":{\#(head),\#(base)}}"#,
            #"{"action":null,"pull_request":{\#(head),\#(base)}}"#, #"{"pull_request":{\#(head),\#(base)}}"#,
            #"{"action":"opened"}"#, #"{"action":"opened","pull_request":null}"#, #"{"action":"opened","pull_request":[]}"#,
            #"{"action":"opened","pull_request":{\#(base)}}"#, #"{"action":"opened","pull_request":{"head":null,\#(base)}}"#,
            #"{"action":"opened","pull_request":{\#(head),"base":{}}}"#,
            #"{"action":"opened","pull_request":{\#(head),"base":{"repo":null}},"repository":{"full_name":"o/r","html_url":"https://h/o/r"}}"#,
            #"{"action":"opened","pull_request":{"head":{"ref":1},\#(base)}}"#,
            #"{"action":"opened","pull_request":{"head":{"repo":{"full_name":"fork/r"}},\#(base)},"repository":null}"#,
            #"{"action":"opened","pull_request":{\#(head),\#(base),\#(head),"base":null}}"#,
            #"{"action":"first","action":"second","pull_request":{\#(head),\#(base)}}"#,
            #"{"action":"opened","pull_request":{\#(head),\#(base),"extra":[1,{"x":[true,null,-1.5e3]}]}} "#,
            #"{"action":"caf\u00e9 \ud83d\ude00","pull_request":{\#(head),\#(base)}}"#,
            #"{"action":"opened","pull_request":{\#(head),\#(base)}} x"#, #"[]"#, #"null"#, #"{}"#,
        ]
        for text in cases {
            let payload = Array(text.utf8)
            #expect((try? PullRequestEvent.decode(payload: payload)) == Reference.decode(payload), "\(text)")
        }
    }

    @Test func aBadPayloadSaysWhy() {
        do {
            _ = try PullRequestEvent.decode(payload: Array(#"{"action":"opened"}"#.utf8))
            Issue.record("a payload without pull_request decoded")
        } catch {
            #expect(error.description == "pull_request payload cannot be decoded: it has no 'pull_request'")
        }
    }
}
