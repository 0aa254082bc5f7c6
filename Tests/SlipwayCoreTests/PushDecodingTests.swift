import Foundation
import Testing

@testable import SlipwayCore

/// `PushEvent.decode` reads only the fields the matcher needs; it must decide exactly as
/// `JSONDecoder` with the same optional fields did (the reference below), on GitHub's payloads
/// and on the odd ones: nulls, missing keys, wrong types, repeated keys, escapes.
@Suite struct PushDecodingTests {
    /// The decoder the matcher used before (`JSONDecoder` over these types).
    struct Reference: Decodable {
        var ref: String
        var before: String?
        var after: String?
        var deleted: Bool?
        var head_commit: Commit?
        var commits: [Commit]?
        var repository: Repository?

        struct Commit: Decodable {
            var message: String?
            var added: [String]?
            var modified: [String]?
            var removed: [String]?
        }

        struct Repository: Decodable {
            var full_name: String?
            var clone_url: String?
            var html_url: String?
            var ssh_url: String?
            var git_url: String?
            var url: String?
        }

        static func decode(_ payload: [UInt8]) -> PushEvent? {
            guard let wire = try? JSONDecoder().decode(Reference.self, from: Data(payload)) else { return nil }
            var files: [String] = []
            var seen = Set<String>()
            for commit in wire.commits ?? [] {
                for file in (commit.added ?? []) + (commit.modified ?? []) + (commit.removed ?? []) where seen.insert(file).inserted {
                    files.append(file)
                }
            }
            let repo = wire.repository
            return PushEvent(
                ref: wire.ref, before: wire.before ?? "", after: wire.after ?? "", deleted: wire.deleted ?? false,
                headCommitMessage: wire.head_commit?.message ?? "", changedFiles: files,
                repositoryURLs: [repo?.clone_url, repo?.html_url, repo?.ssh_url, repo?.git_url, repo?.url].compactMap { $0 },
                repositoryName: repo?.full_name ?? "")
        }
    }

    static func agree(_ text: String, _ comment: Comment? = nil) {
        let payload = Array(text.utf8)
        let reference = Reference.decode(payload)
        let decoded = try? PushEvent.decode(payload: payload)
        #expect(decoded == reference, comment ?? "\(text)")
    }

    @Test(arguments: ["push", "push-branch-deleted", "push-docs-only", "push-other-branch", "push-skip-ci", "push-tag", "ping"])
    func fixturesDecodeAsBefore(name: String) throws {
        let payload = try Fixtures.bytes("github/\(name).json")
        let reference = Reference.decode(payload)
        #expect((try? PushEvent.decode(payload: payload)) == reference)
        if name != "ping" { #expect(reference != nil) }
    }

    @Test func oddPayloadsDecideAsBefore() {
        let cases = [
            #"{"ref":"refs/heads/main"}"#,
            #"{"ref":"refs/heads/main","before":null,"after":null,"deleted":null,"head_commit":null,"commits":null,"repository":null}"#,
            #"{"ref":null}"#, #"{}"#, #"[]"#, #"null"#, #""ref""#, #"{"ref":5}"#, #"{"ref":"a","deleted":"yes"}"#,
            #"{"ref":"a","deleted":true}"#, #"{"ref":"a","deleted":false}"#, #"{"ref":"a","after":7}"#,
            #"{"ref":"a","commits":[null]}"#, #"{"ref":"a","commits":[5]}"#, #"{"ref":"a","commits":{}}"#,
            #"{"ref":"a","commits":[{"added":["x",null]}]}"#, #"{"ref":"a","commits":[{"added":"x"}]}"#,
            #"{"ref":"a","commits":[{},{"added":[],"removed":null}]}"#,
            #"{"ref":"a","commits":[{"added":["a","b"],"modified":["b","c"],"removed":["a","d"]},{"added":["d","e"]}]}"#,
            #"{"ref":"a","head_commit":{"message":"fix [skip ci]","id":"x"}}"#, #"{"ref":"a","head_commit":{"message":null}}"#,
            #"{"ref":"a","head_commit":"msg"}"#, #"{"ref":"a","head_commit":{"message":3}}"#,
            #"{"ref":"a","repository":{"full_name":"o/r","clone_url":"https://h/o/r.git","url":null,"owner":{"url":"x"}}}"#,
            #"{"ref":"a","repository":{"clone_url":1}}"#, #"{"ref":"a","repository":[]}"#,
            #"{"ref":"refs/heads/caf\u00e9","after":"\ud83d\ude00 \"q\" \\ \/ \b\f\n\r\t"}"#,
            #"{"ref":"a","after":"\ud83d"}"#, #"{"ref":"a","after":"\ude00x"}"#, #"{"r\u0065f":"escaped key"}"#,
            #"{"ref":"first","ref":"last"}"#, #"{"ref":"a","after":"x","after":null}"#,
            #"{"ref":"a","repository":{"full_name":"one"},"repository":{"html_url":"two"}}"#,
            #"{"ref":"a","commits":[{"added":["x"]}],"commits":[{"added":["y"]}]}"#,
            " \n\t{ \"ref\" : \"a\" , \"commits\" : [ { \"added\" : [ \"x\" ] } ] } \n",
            #"{"ref":"a"} x"#, #"{"ref":"a","extra":[1,2,{"deep":[true,false,null,-1.5e3]}]}"#, #"{"ref":"a","extra":[1,}"#,
            #"{"ref":"a""#,
        ]
        for text in cases { Self.agree(text) }
    }

    /// `JSONDecoder` lets a trailing comma in an object or array pass; the intake's
    /// `JSONValidator` does not, so no stored payload has one, and the matcher's reader refuses it too.
    @Test(arguments: [#"{"ref":"a",}"#, #"{"ref":"a","commits":[{"added":["x"]},]}"#])
    func aTrailingCommaIsRefused(text: String) {
        #expect(throws: PushEvent.Invalid.self) { try PushEvent.decode(payload: Array(text.utf8)) }
        #expect(throws: JSONValidator.Invalid.self) { try JSONValidator.validate(Array(text.utf8)) }
    }

    @Test func aBadPayloadSaysWhy() {
        #expect(throws: PushEvent.Invalid.self) { try PushEvent.decode(payload: Array(#"{"ref":"a","deleted":"yes"}"#.utf8)) }
        do {
            _ = try PushEvent.decode(payload: Array(#"{"before":"x"}"#.utf8))
            Issue.record("a payload without ref decoded")
        } catch {
            #expect(error.description == "push payload cannot be decoded: it has no 'ref'")
        }
    }
}
