import Foundation

/// What a Dockerfile pulls: the image of every `FROM` (after the `ARG` defaults before it) and of
/// every `COPY --from=<image>`, without the stages it defines itself or `scratch`.
public enum DockerfileScan {
    /// Image references in order of first use, build-arg values overriding `ARG` defaults.
    public static func baseImages(_ text: String, buildArgs: [String: String] = [:]) -> [String] {
        var args = buildArgs
        var stages: Set<String> = []
        var images: [String] = []
        func add(_ image: String) {
            let lower = image.lowercased()
            guard !image.isEmpty, lower != "scratch", !stages.contains(lower), !images.contains(image) else { return }
            images.append(image)
        }
        var seenFrom = false
        for line in instructions(text) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let keyword = words.first?.uppercased() else { continue }
            let rest = Array(words.dropFirst())
            switch keyword {
            case "ARG" where !seenFrom:
                // Global ARGs (before the first FROM) are the only ones FROM can use.
                for word in rest {
                    let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
                    if parts.count == 2, buildArgs[parts[0]] == nil { args[parts[0]] = unquote(parts[1]) }
                    if parts.count == 1, args[parts[0]] == nil { args[parts[0]] = "" }
                }
            case "FROM":
                seenFrom = true
                let operands = rest.filter { !$0.hasPrefix("--") }
                guard let image = operands.first else { continue }
                add(substitute(image, args))
                if operands.count >= 3, operands[1].uppercased() == "AS" { stages.insert(operands[2].lowercased()) }
            case "COPY", "ADD":
                for word in rest where word.lowercased().hasPrefix("--from=") {
                    let source = substitute(String(word.dropFirst(7)), args)
                    if Int(source) == nil { add(source) }
                }
            default: continue
            }
        }
        return images
    }

    /// Logical lines: comments and parser directives dropped, `\` continuations joined.
    static func instructions(_ text: String) -> [String] {
        var out: [String] = []
        var current = ""
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = raw.trimmingCharacters(in: [" ", "\t", "\r"])
            if line.hasPrefix("#") { continue }
            if line.hasSuffix("\\") {
                line.removeLast()
                current += line + " "
                continue
            }
            current += line
            if !current.trimmingCharacters(in: [" ", "\t"]).isEmpty { out.append(current) }
            current = ""
        }
        if !current.isEmpty { out.append(current) }
        return out
    }

    /// `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alt}` as Docker expands them in FROM.
    static func substitute(_ text: String, _ args: [String: String]) -> String {
        var out = ""
        var chars = Array(text)[...]
        while let c = chars.first {
            chars = chars.dropFirst()
            guard c == "$", let next = chars.first else {
                out.append(c)
                continue
            }
            if next == "{", let close = chars.firstIndex(of: "}") {
                let inner = String(chars[chars.index(after: chars.startIndex)..<close])
                chars = chars[chars.index(after: close)...]
                if let r = inner.range(of: ":-") {
                    let value = args[String(inner[..<r.lowerBound])] ?? ""
                    out += value.isEmpty ? String(inner[r.upperBound...]) : value
                } else if let r = inner.range(of: ":+") {
                    let value = args[String(inner[..<r.lowerBound])] ?? ""
                    out += value.isEmpty ? "" : String(inner[r.upperBound...])
                } else {
                    out += args[inner] ?? ""
                }
            } else {
                let name = chars.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
                chars = chars.dropFirst(name.count)
                out += args[String(name)] ?? ""
            }
        }
        return out
    }

    static func unquote(_ s: String) -> String {
        if s.count >= 2, let f = s.first, f == s.last, f == "\"" || f == "'" { return String(s.dropFirst().dropLast()) }
        return s
    }

    /// The registry host an image reference names (`docker.io` when it names none).
    public static func registryHost(of image: String) -> String {
        let first = image.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        if image.contains("/"), first.contains(".") || first.contains(":") || first == "localhost" { return first.lowercased() }
        return "docker.io"
    }

    /// The configured registry server written as a host (`https://index.docker.io/v1/` → `docker.io`).
    public static func serverHost(_ server: String) -> String {
        var host = server.lowercased()
        for scheme in ["https://", "http://"] where host.hasPrefix(scheme) { host = String(host.dropFirst(scheme.count)) }
        host = String(host.split(separator: "/").first ?? "")
        return ["index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"].contains(host) ? "docker.io" : host
    }
}
