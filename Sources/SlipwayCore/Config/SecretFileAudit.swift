/// Secret files that group or others may read: each deserves a warning at start and on reload.
public enum SecretFileAudit {
    /// Every secret file the configuration names (webhook secrets, registry passwords, git tokens, secret build args).
    public static func secretFiles(in config: SlipwayConfig) -> [String] {
        var files = config.webhook.secretFiles + config.registries.map(\.passwordFile)
        for task in config.tasks {
            if let token = task.gitTokenFile { files.append(token) }
            files += task.secretBuildArgs.map(\.value)
        }
        var seen = Set<String>()
        return files.filter { seen.insert($0).inserted }
    }

    /// The secret files readable by group or others.
    public static func exposed(in config: SlipwayConfig) -> [String] {
        secretFiles(in: config).filter(FileText.isGroupOrWorldReadable)
    }
}
