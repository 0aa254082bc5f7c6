#if canImport(Glibc)
    import Glibc
#endif
import Logging
import Testing

@testable import SlipwayCore

/// stderr lines split unambiguously: a value that could break the line or the key=value split is quoted.
@Suite struct LineLogHandlerTests {
    @Test func valuesAreQuotedOnlyWhenTheyMustBe() {
        #expect(LineLogHandler.format("d-1") == "d-1")
        #expect(LineLogHandler.format("sha256:/etc/slipway/secrets/webhook") == "sha256:/etc/slipway/secrets/webhook")
        #expect(LineLogHandler.format("two words") == #""two words""#)
        #expect(LineLogHandler.format("") == #""""#)
        #expect(LineLogHandler.format("a=b") == #""a=b""#)
        #expect(LineLogHandler.format(#"say "hi""#) == #""say \"hi\"""#)
        // A CRLF is one Character: it is still found, and the line stays one line.
        let crlf = LineLogHandler.format("x\r\ny")
        #expect(crlf.hasPrefix("\"") && !crlf.contains("\n") && !crlf.contains("\r"))
        #expect(!LineLogHandler.format("tab\there").contains("\t"))
    }

    /// A list value repeats its key, one `key=value` per element (as the journal repeats a field),
    /// so `grep delivery.id=d-2` finds a group commit's line.
    @Test func aListRepeatsItsKey() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let handler = LineLogHandler(label: "t", level: .info, fd: fds[1])
        let logger = Logger(label: "t") { _ in handler }
        logger.info(
            "deliveries stored",
            metadata: ["count": "2", "delivery.id": .array(["d-1", "d 2"]), "event.seq": .array(["7", "8"]), "event.type": "push"])
        close(fds[1])
        var bytes = [UInt8](repeating: 0, count: 4096)
        let n = read(fds[0], &bytes, bytes.count)
        let line = String(decoding: bytes.prefix(max(n, 0)), as: UTF8.self)
        #expect(
            line.hasSuffix(#" info deliveries stored count=2 delivery.id=d-1 delivery.id="d 2" event.seq=7 event.seq=8 event.type=push"# + "\n"),
            "\(line)")
    }
}
