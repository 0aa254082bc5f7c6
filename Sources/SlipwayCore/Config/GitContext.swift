import Foundation

/// A task's source: `url#branch:folder`, as ACR writes build-task contexts.
public struct GitContext: Sendable, Equatable, CustomStringConvertible {
    public var url: String
    public var branch: String
    /// The folder inside the repository ("" for the root), never absolute, never with `..`.
    public var folder: String

    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    public var description: String { folder.isEmpty ? "\(url)#\(branch)" : "\(url)#\(branch):\(folder)" }

    /// The repository identity matching compares: scheme and user dropped, host lower-cased,
    /// trailing `.git` and `/` dropped (`github.com/octo-org/aci-helloworld`).
    public var repositoryKey: String { Self.normalize(url) }

    public static func parse(_ text: String) throws(Invalid) -> GitContext {
        guard let hash = text.lastIndex(of: "#") else {
            throw Invalid(description: "context '\(text)' has no branch: write it as url#branch or url#branch:folder")
        }
        let url = String(text[..<hash])
        let fragment = text[text.index(after: hash)...]
        let branch: Substring
        let folder: Substring
        if let colon = fragment.firstIndex(of: ":") {
            branch = fragment[..<colon]
            folder = fragment[fragment.index(after: colon)...]
        } else {
            branch = fragment
            folder = ""
        }
        guard !url.isEmpty else { throw Invalid(description: "context '\(text)' has no repository URL before '#'") }
        guard !branch.isEmpty else {
            throw Invalid(description: "context '\(text)' has no branch: write it as url#branch or url#branch:folder")
        }
        try checkURL(url)
        try checkBranch(String(branch))
        let cleanFolder = try checkFolder(String(folder))
        return GitContext(url: url, branch: String(branch), folder: cleanFolder)
    }

    static func checkURL(_ url: String) throws(Invalid) {
        if url.hasPrefix("-") { throw Invalid(description: "repository URL '\(url)' must not start with '-'") }
        if url.contains(where: { $0 == " " || $0 == "\n" || $0 == "\t" }) {
            throw Invalid(description: "repository URL '\(url)' contains whitespace")
        }
        if let scheme = url.range(of: "://") {
            let proto = url[..<scheme.lowerBound].lowercased()
            guard ["https", "http", "ssh", "git", "file"].contains(proto) else {
                throw Invalid(description: "repository URL scheme '\(proto)' is not supported (use https, http, ssh, git or file)")
            }
            let rest = url[scheme.upperBound...]
            let authority = rest.prefix { $0 != "/" }
            if proto.hasPrefix("http"), authority.contains("@") {
                // A token in the user part (https://ghp_…@github.com/…) would reach logs, argv and
                // the mirror's config: credentials only ever come from git_token_file.
                throw Invalid(description: "repository URL must not carry credentials (user or token before '@'); put the token in git_token_file")
            }
        } else if !url.contains(":") && !url.hasPrefix("/") {
            throw Invalid(description: "repository URL '\(url)' is neither a URL (https://…) nor an scp-style address (git@host:org/repo)")
        }
    }

    /// The rules of `git check-ref-format` that matter for a branch name we pass to git.
    public static func checkBranch(_ branch: String) throws(Invalid) {
        let bad: String? =
            if branch.hasPrefix("-") { "must not start with '-'" } else if branch.hasPrefix("/") || branch.hasSuffix("/") {
                "must not start or end with '/'"
            } else if branch.contains("..") { "must not contain '..'" } else if branch.contains("//") {
                "must not contain '//'"
            } else if branch.hasSuffix(".lock") || branch.hasSuffix(".") {
                "must not end with '.lock' or '.'"
            } else if branch.contains("@{") {
                "must not contain '@{'"
            } else if branch.unicodeScalars.contains(where: {
                $0.value < 0x20 || $0.value == 0x7f || " ~^:?*[\\".unicodeScalars.contains($0)
            }) {
                "must not contain spaces, control characters or any of ~^:?*[\\"
            } else { nil }
        if let bad { throw Invalid(description: "branch '\(branch)' \(bad)") }
    }

    static func checkFolder(_ folder: String) throws(Invalid) -> String {
        if folder.hasPrefix("/") { throw Invalid(description: "folder '\(folder)' must be relative to the repository root") }
        let parts = folder.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        if parts.contains("..") { throw Invalid(description: "folder '\(folder)' must not contain '..'") }
        if parts.first?.hasPrefix("-") == true { throw Invalid(description: "folder '\(folder)' must not start with '-'") }
        return parts.joined(separator: "/")
    }

    /// Normalises any of GitHub's clone, html or ssh URLs to one comparable key.
    ///
    /// The matcher runs this for every event and task: printable ASCII (every URL GitHub sends)
    /// is done on bytes; anything else takes the same steps on characters.
    public static func normalize(_ url: String) -> String {
        let bytes = Array(url.utf8)
        guard bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else { return normalizeCharacters(url) }
        let slash = UInt8(ascii: "/"), colon = UInt8(ascii: ":")
        var start = 0
        if let scheme = bytes.indices.dropLast(2).first(where: { bytes[$0] == colon && bytes[$0 + 1] == slash && bytes[$0 + 2] == slash }) {
            start = scheme + 3
        }
        if let at = bytes[start...].firstIndex(of: UInt8(ascii: "@")), !bytes[start..<at].contains(slash) { start = at + 1 }
        var hostEnd = bytes[start...].firstIndex { $0 == slash || $0 == colon } ?? bytes.count
        var path = Array(bytes[hostEnd...])
        if path.first == colon {
            let digits = path.dropFirst().prefix { (0x30...0x39).contains($0) }.count
            if digits > 0, path.count > 1 + digits, path[1 + digits] == slash {
                hostEnd += 1 + digits
                path.removeFirst(1 + digits)
            } else {
                path[0] = slash
            }
        }
        var out = bytes[start..<hostEnd].map { (0x41...0x5a).contains($0) ? $0 | 0x20 : $0 }
        while path.last == slash { path.removeLast() }
        if path.count >= 4 && path.suffix(4).elementsEqual(".git".utf8) { path.removeLast(4) }
        while path.last == slash { path.removeLast() }
        out += path
        return String(decoding: out, as: UTF8.self)
    }

    static func normalizeCharacters(_ url: String) -> String {
        var s = Substring(url)
        if let scheme = s.range(of: "://") { s = s[scheme.upperBound...] }
        if let at = s.firstIndex(of: "@"), s[..<at].firstIndex(of: "/") == nil { s = s[s.index(after: at)...] }
        // scp-style host:path becomes host/path; a numeric port followed by '/' stays part of the host.
        var host = s.prefix { $0 != "/" && $0 != ":" }
        var path = s.dropFirst(host.count)
        if path.first == ":" {
            let port = path.dropFirst().prefix { $0.isNumber }
            if !port.isEmpty, path.dropFirst(1 + port.count).first == "/" {
                host = s.prefix(host.count + 1 + port.count)
                path = path.dropFirst(1 + port.count)
            } else {
                path = "/" + path.dropFirst()
            }
        }
        host = Substring(host.lowercased())
        var p = String(path)
        while p.hasSuffix("/") { p.removeLast() }
        if p.hasSuffix(".git") { p.removeLast(4) }
        while p.hasSuffix("/") { p.removeLast() }
        return host + p
    }
}
