import Foundation
import Synchronization

/// The GitHub client for the live configuration: made again when `github:` changes on reload
/// (its cached installation token goes with it), nil without `github:`.
public final class GitHubClients: Sendable {
    private let current = Mutex<(settings: SlipwayConfig.GitHubSettings, client: GitHubClient)?>(nil)
    let config: @Sendable () -> SlipwayConfig

    public init(config: @escaping @Sendable () -> SlipwayConfig) { self.config = config }

    public var client: GitHubClient? {
        guard let settings = config().github else { return nil }
        return current.withLock { current in
            if let current, current.settings == settings { return current.client }
            let made = GitHubClient(settings: settings)
            current = (settings, made)
            return made
        }
    }

    /// The hook manager: needs `public_url` (the hook's URL) and sends the first webhook secret.
    public var hooks: HookManager? {
        let config = config()
        guard let client, let publicURL = config.publicURL else { return nil }
        let secret = config.webhook.secretFiles.first.flatMap { try? FileText.readSecret($0) }.map {
            String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return HookManager(client: client, url: publicURL + "/webhooks/github", secret: secret)
    }
}
