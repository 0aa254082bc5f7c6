import Testing

@testable import SlipwayCore

/// The daemon pages out its read-only file mappings once ready: here, this test process's own.
@Suite struct StartupPagesTests {
    /// Resident kB of file-backed pages (`RssFile` in /proc/self/status).
    static func residentFileKB() throws -> Int {
        let status = try FileText.read("/proc/self/status")
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("RssFile:") })
        return try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }

    @Test func releasingPagesOutTheCodeMappings() throws {
        // Touch the code first so there is something resident to give back.
        _ = try Self.residentFileKB()
        let before = try Self.residentFileKB()
        let released = StartupPages.release(environment: [:])
        let after = try Self.residentFileKB()
        #expect(released > 1_000_000, "the kernel accepted MADV_PAGEOUT on the executable's read-only mappings")
        #expect(after < before - 1024, "resident file-backed memory went from \(before) kB to \(after) kB")
    }

    @Test func slipwayTrimZeroLeavesEverythingResident() {
        #expect(StartupPages.release(environment: ["SLIPWAY_TRIM": "0"]) == 0)
    }
}
