import Foundation

/// The parts of a GitHub `push` payload the matcher needs.
public struct PushEvent: Sendable, Equatable {
    public var ref: String
    public var before: String
    public var after: String
    public var deleted: Bool
    public var headCommitMessage: String
    /// Added, modified and removed paths of every commit in the push.
    public var changedFiles: [String]
    public var repositoryURLs: [String]
    public var repositoryName: String

    /// `main` for `refs/heads/main`, nil for other refs.
    public var branch: String? { ref.hasPrefix("refs/heads/") ? String(ref.dropFirst(11)) : nil }
    /// `v1.2` for `refs/tags/v1.2`, nil for other refs.
    public var tag: String? { ref.hasPrefix("refs/tags/") ? String(ref.dropFirst(10)) : nil }

    public struct Invalid: Error, CustomStringConvertible {
        public var description: String
    }

    /// Decodes a stored event's payload (JSON, or a form body's `payload=` as the intake decided).
    public static func decode(_ event: StoredEvent) throws(Invalid) -> PushEvent {
        try decode(payload: event.payload)
    }

    /// Decodes a push payload's JSON.
    public static func decode(payload: [UInt8]) throws(Invalid) -> PushEvent {
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: Data(payload))
        } catch {
            throw Invalid(description: "push payload cannot be decoded: \(error)")
        }
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

    private struct Wire: Decodable {
        var ref: String
        var before: String?
        var after: String?
        var deleted: Bool?
        var head_commit: Commit?
        var commits: [Commit]?
        var repository: Repository?
    }

    private struct Commit: Decodable {
        var message: String?
        var added: [String]?
        var modified: [String]?
        var removed: [String]?
    }

    private struct Repository: Decodable {
        var full_name: String?
        var clone_url: String?
        var html_url: String?
        var ssh_url: String?
        var git_url: String?
        var url: String?
    }
}
