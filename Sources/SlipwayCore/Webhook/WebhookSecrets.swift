extension WebhookSecret {
    /// Reads every secret file.
    public static func load(files: [String]) throws(FileText.Failure) -> [WebhookSecret] {
        var secrets: [WebhookSecret] = []
        for file in files { secrets.append(WebhookSecret(name: file, value: try FileText.readSecret(file))) }
        return secrets
    }
}
