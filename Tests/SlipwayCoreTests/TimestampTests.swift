import Testing

@testable import SlipwayCore

/// `received_at`, run times and every log line's time: ISO-8601 UTC with milliseconds.
@Suite struct TimestampTests {
    @Test func formatsUTCWithMilliseconds() {
        #expect(Timestamp(milliseconds: 0).iso8601 == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp(milliseconds: 1_795_795_200_123).iso8601 == "2026-11-27T16:00:00.123Z")
        #expect(Timestamp(milliseconds: 951_782_400_005).iso8601 == "2000-02-29T00:00:00.005Z")
        #expect(Timestamp(milliseconds: 253_402_300_799_999).iso8601 == "9999-12-31T23:59:59.999Z")
    }

    @Test func yearsBeyondFourDigitsStillFormat() {
        // Outside 0...9999 the fast writer steps aside; the text keeps every digit of the year.
        #expect(Timestamp(milliseconds: 253_402_300_800_000).iso8601 == "10000-01-01T00:00:00.000Z")
    }
}
