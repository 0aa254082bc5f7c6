import Foundation
import Logging
import Testing

@testable import SlipwayCore

@Suite struct SystemdEncodingTests {
    @Test func notifyDatagramBytes() {
        let bytes = SystemdNotifier.encode([("READY", "1"), ("STATUS", "queue 2, running 1\nsecond line")])
        #expect(bytes == Array("READY=1\nSTATUS=queue 2, running 1 second line\n".utf8))
    }

    @Test func notifyReachesARealDatagramSocket() throws {
        let path = "/tmp/slipway-notify-\(UUID().uuidString.prefix(8)).sock"
        let fd = Self.boundDatagramSocket(path)
        try #require(fd >= 0)
        defer { close(fd); unlink(path) }
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path])
        notifier.ready(status: "Listening on 127.0.0.1:8080")
        #expect(Self.receive(fd) == "READY=1\nSTATUS=Listening on 127.0.0.1:8080\n")
        #expect(!SystemdNotifier(environment: [:]).notify([("READY", "1")]), "no NOTIFY_SOCKET: nothing sent")
    }

    @Test func watchdogIntervalHonoursPid() {
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000"]) == .seconds(30))
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"]) == nil)
        #expect(SystemdNotifier.watchdogInterval(environment: [:]) == nil)
    }

    @Test func journalFieldsAndBinarySafeValues() {
        let simple = JournalLogHandler.encode([("MESSAGE", "run started"), ("PRIORITY", "5")])
        #expect(simple == Array("MESSAGE=run started\nPRIORITY=5\n".utf8))
        let multiline = JournalLogHandler.encode([("MESSAGE", "a\nb")])
        #expect(multiline == Array("MESSAGE\n".utf8) + [3, 0, 0, 0, 0, 0, 0, 0] + Array("a\nb\n".utf8))
    }

    @Test func journalFieldNamesFollowDesign() {
        let handler = JournalLogHandler(level: .info, socketPath: "/nonexistent")
        let event = LogEvent(
            level: .notice, message: "run started",
            metadata: [
                "run.id": "sw7", "task": "web", "event.seq": "42", "delivery.id": "d-1", "repo": "octo/web", "commit": "0d1a26e",
                "http.peer": "1.2.3.4",
            ],
            source: "t", file: #fileID, function: #function, line: #line)
        let fields = Dictionary(uniqueKeysWithValues: handler.fields(for: event))
        #expect(fields["MESSAGE"] == "run started")
        #expect(fields["PRIORITY"] == "5")
        #expect(fields["SYSLOG_IDENTIFIER"] == "slipway")
        #expect(fields["RUN_ID"] == "sw7" && fields["TASK"] == "web" && fields["EVENT_SEQ"] == "42")
        #expect(fields["DELIVERY_ID"] == "d-1" && fields["REPO"] == "octo/web" && fields["COMMIT"] == "0d1a26e")
        #expect(fields["HTTP_PEER"] == "1.2.3.4")
        #expect(JournalLogHandler.fieldName("_secret") == "SECRET", "no trusted-field names")
        #expect(JournalLogHandler.priority(.error) == 3 && JournalLogHandler.priority(.debug) == 7)
    }

    /// A datagram socket bound at `path`, as journald's is.
    static func boundDatagramSocket(_ path: String) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if bound == 0 { return fd }
        close(fd)
        return -1
    }

    static func receive(_ fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        return String(decoding: buffer.prefix(max(n, 0)), as: UTF8.self)
    }

    /// Every line is a datagram to the journal's socket, sent from one socket the process keeps;
    /// a journal restarted at the same path gets the next line.
    @Test func journalLinesReachARealSocketAcrossARestart() throws {
        let path = "/tmp/slipway-journal-\(UUID().uuidString.prefix(8)).sock"
        var journal = Self.boundDatagramSocket(path)
        try #require(journal >= 0)
        defer { unlink(path) }
        let logger = Logger(label: "t") { _ in JournalLogHandler(level: .info, socketPath: path) }
        for n in 1...3 { logger.info("delivery stored", metadata: ["delivery.id": "d-\(n)"]) }
        for n in 1...3 {
            let datagram = Self.receive(journal)
            #expect(datagram.contains("MESSAGE=delivery stored\n") && datagram.contains("DELIVERY_ID=d-\(n)\n"), "\(datagram)")
        }
        close(journal)
        unlink(path)
        journal = Self.boundDatagramSocket(path)
        try #require(journal >= 0)
        defer { close(journal) }
        logger.notice("after the restart")
        #expect(Self.receive(journal).contains("MESSAGE=after the restart\n"))
    }

    /// A list value is its field repeated: journald keeps every value, and `journalctl
    /// DELIVERY_ID=d-2` matches the entry of a group commit that stored d-1 and d-2.
    @Test func aListIsTheFieldRepeated() throws {
        let path = "/tmp/slipway-journal-\(UUID().uuidString.prefix(8)).sock"
        let journal = Self.boundDatagramSocket(path)
        try #require(journal >= 0)
        defer {
            close(journal)
            unlink(path)
        }
        let logger = Logger(label: "t") { _ in JournalLogHandler(level: .info, socketPath: path) }
        logger.info("deliveries stored", metadata: ["delivery.id": .array(["d-1", "d-2"]), "event.seq": .array(["7", "8"])])
        let datagram = Self.receive(journal)
        #expect(datagram.contains("MESSAGE=deliveries stored\n"))
        #expect(datagram.contains("DELIVERY_ID=d-1\nDELIVERY_ID=d-2\nEVENT_SEQ=7\nEVENT_SEQ=8\n"), "\(datagram)")
    }

    @Test func journalStreamMustMatchStderr() {
        #expect(!JournalLogHandler.stderrIsJournal(environment: [:]))
        #expect(!JournalLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": "1:2"]))
        var st = stat()
        fstat(2, &st)
        #expect(JournalLogHandler.stderrIsJournal(environment: ["JOURNAL_STREAM": "\(st.st_dev):\(st.st_ino)"]))
    }
}
