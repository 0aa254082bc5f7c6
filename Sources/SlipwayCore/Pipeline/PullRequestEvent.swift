import Foundation

/// The parts of a GitHub `pull_request` payload the matcher needs.
public struct PullRequestEvent: Sendable, Equatable {
    public var action: String
    public var number: Int
    public var headSHA: String
    public var headRef: String
    /// `owner/name` of the repository the head branch lives in (a fork's, for a PR from a fork).
    public var headRepository: String
    public var baseRef: String
    public var baseRepository: String
    /// URLs of the base repository (the task's own): the only place the head is fetched from.
    public var repositoryURLs: [String]

    /// A PR whose head lives in another repository than its base.
    public var isFromFork: Bool { headRepository.lowercased() != baseRepository.lowercased() }

    public static func decode(_ event: StoredEvent) throws(PushEvent.Invalid) -> PullRequestEvent {
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: Data(event.payload))
        } catch {
            throw PushEvent.Invalid(description: "pull_request payload cannot be decoded: \(error)")
        }
        let base = wire.pull_request.base
        let baseRepo = base.repo ?? wire.repository
        return PullRequestEvent(
            action: wire.action, number: wire.number ?? wire.pull_request.number ?? 0, headSHA: wire.pull_request.head.sha ?? "",
            headRef: wire.pull_request.head.ref ?? "", headRepository: wire.pull_request.head.repo?.full_name ?? "",
            baseRef: base.ref ?? "", baseRepository: baseRepo?.full_name ?? "",
            repositoryURLs: [baseRepo?.clone_url, baseRepo?.html_url, baseRepo?.ssh_url, wire.repository?.clone_url, wire.repository?.html_url]
                .compactMap { $0 })
    }

    private struct Wire: Decodable {
        var action: String
        var number: Int?
        var pull_request: PR
        var repository: Repository?
    }

    private struct PR: Decodable {
        var number: Int?
        var head: Branch
        var base: Branch
    }

    private struct Branch: Decodable {
        var ref: String?
        var sha: String?
        var repo: Repository?
    }

    private struct Repository: Decodable {
        var full_name: String?
        var clone_url: String?
        var html_url: String?
        var ssh_url: String?
    }
}
