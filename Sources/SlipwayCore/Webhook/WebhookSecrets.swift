import Logging

extension WebhookSecret {
    /// Reads every secret file; warns when a file is readable by group or others.
    public static func load(files: [String], logger: Logger) throws(FileText.Failure) -> [WebhookSecret] {
        var secrets: [WebhookSecret] = []
        for file in files {
            let value = try FileText.readSecret(file)
            if FileText.isGroupOrWorldReadable(file) {
                logger.warning("secret file is readable by group or others; run chmod 600", metadata: ["file": "\(file)"])
            }
            secrets.append(WebhookSecret(name: file, value: value))
        }
        return secrets
    }
}
