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
}
