import Foundation
import SlipwayCore

/// libFuzzer entry points for everything Slipway parses from outside: one binary, the target
/// chosen by `SLIPWAY_FUZZ_TARGET`. Built by `Fuzz/run.sh` with `-sanitize=fuzzer,address` on
/// Slipway's own code. Each target checks a property, not just "no crash": an accepted signature
/// really is the HMAC, a parsed context prints back to itself, a rendered template has no `{{`.
enum FuzzTarget: String, CaseIterable {
    case signature, intake, form, payload, context, config, template

    static let selected: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["SLIPWAY_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(
                Data("set SLIPWAY_FUZZ_TARGET to one of: \(allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
            exit(2)
        }
        return target
    }()
}

let secret = Array("fuzz-secret".utf8)
let verifier = SignatureVerifier(secrets: [WebhookSecret(name: "fuzz", value: secret)], allowSHA1: true)
/// No secret: unsigned deliveries pass, so mutations reach content-type, form and JSON handling.
let openIntake = WebhookIntake(verifier: SignatureVerifier(secrets: [], allowSHA1: false), maxBodyBytes: 64 * 1024)
let values = [
    ".Run.ID": "sw7", ".Commit": String(repeating: "a", count: 40), ".Commit.Short": "aaaaaaa", ".Branch": "main", ".Tag": "",
    ".Task": "web", ".Date": "20261126-181500",
]

/// Splits at the first `\n`: (line, rest).
func firstLine(_ bytes: ArraySlice<UInt8>) -> (String, ArraySlice<UInt8>) {
    guard let nl = bytes.firstIndex(of: 10) else { return (String(decoding: bytes, as: UTF8.self), []) }
    return (String(decoding: bytes[..<nl], as: UTF8.self), bytes[(nl + 1)...])
}

func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        FileHandle.standardError.write(Data("property violated: \(message())\n".utf8))
        abort()
    }
}

func fuzzOne(_ input: [UInt8]) {
    switch FuzzTarget.selected {
    case .signature:
        // line 1: X-Hub-Signature-256, line 2: X-Hub-Signature, rest: body
        let (sha256, rest) = firstLine(input[...])
        let (sha1, body) = firstLine(rest)
        let bytes = Array(body)
        if let matched = try? verifier.verify(sha256: sha256.isEmpty ? nil : sha256, sha1: sha1.isEmpty ? nil : sha1, body: bytes) {
            let good256 = "sha256=" + HMAC.digest(.sha256, key: secret, message: bytes).hexString
            let good1 = "sha1=" + HMAC.digest(.sha1, key: secret, message: bytes).hexString
            // HTTP strips optional whitespace around header values; the verifier does the same.
            let given256 = sha256.trimmingCharacters(in: .whitespaces).lowercased()
            let given1 = sha1.trimmingCharacters(in: .whitespaces).lowercased()
            check(given256 == good256 || given1 == good1, "accepted a wrong signature (\(matched))")
        }
    case .intake:
        // "Name: value" lines up to an empty line, then the body.
        var headers: [(name: String, value: String)] = []
        var rest = input[...]
        while !rest.isEmpty {
            let (line, after) = firstLine(rest)
            rest = after
            if line.isEmpty { break }
            let parts = line.split(separator: ":", maxSplits: 1)
            headers.append((String(parts.first ?? ""), parts.count > 1 ? String(parts[1].drop { $0 == " " }) : ""))
        }
        switch openIntake.inspect(headers: headers, body: Array(rest)) {
        case .success(let accepted): check(!accepted.delivery.deliveryID.isEmpty, "accepted without a delivery id")
        case .failure(let rejection): check([400, 401, 413, 415].contains(rejection.status), "unexpected status \(rejection.status)")
        }
    case .form:
        if let field = FormDecoding.field("payload", in: input) { _ = try? JSONValidator.validate(field) }
        _ = FormDecoding.percentDecode(input[...])
    case .payload:
        _ = try? JSONValidator.validate(input)
        let form = StoredEvent(
            seq: 1, receivedAt: "", deliveryID: "", hookID: "", eventType: "push", signature: "", headersJSON: "{}", body: input,
            mediaType: "application/x-www-form-urlencoded")
        if let event = try? PushEvent.decode(form) {
            _ = (event.branch, event.tag, event.changedFiles.count)
        }
        _ = try? PushEvent.decode(payload: input)
        if let pr = try? PullRequestEvent.decode(payload: input) { _ = (pr.isFromFork, pr.repositoryURLs.count) }
    case .context:
        if let context = try? GitContext.parse(String(decoding: input, as: UTF8.self)) {
            check(
                !context.folder.hasPrefix("/") && !context.folder.split(separator: "/").contains(".."), "folder escapes: \(context.folder)")
            check(!context.url.hasPrefix("-") && !context.branch.hasPrefix("-"), "option-like url or branch: \(context)")
            check((try? GitContext.parse(context.description)) == context, "'\(context)' does not parse back to itself")
        }
    case .config:
        _ = try? ConfigLoader.parse(String(decoding: input, as: UTF8.self), file: "fuzz.yaml")
    case .template:
        if let template = try? Template(String(decoding: input, as: UTF8.self)) {
            let rendered = template.render(values)
            if !String(decoding: input, as: UTF8.self).contains("{{") { check(!rendered.contains("{{"), "render introduced '{{'") }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEntry(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzOne(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

// SwiftPM links an executable's entry point as `<product>_main`; hand control to libFuzzer's driver there.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

@_cdecl("slipway_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var vector = argv
    _ = FuzzTarget.selected  // fail fast on a missing target name
    return LLVMFuzzerRunDriver(&count, &vector, fuzzEntry)
}
