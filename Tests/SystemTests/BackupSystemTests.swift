import Foundation
import SlipwayCore
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `slipway backup` while deliveries keep coming, and `--verify`.
@Suite(.serialized, .enabled(if: TestEnvironment.shouldRun, TestEnvironment.skipMessage))
struct BackupSystemTests {
    @Test func backupDuringABurstHoldsEveryEarlierDelivery() throws {
        let daemon = try DaemonProcess()
        try daemon.start()
        let total = 5000
        let acked = Mutex<[String]>([])
        let finished = Mutex(false)
        // The blocking HTTP client on a thread of its own, off the cooperative pool.
        let port = daemon.port
        let sender = Thread {
            defer { finished.withLock { $0 = true } }
            let client = try? RawHTTPClient(port: port)
            for n in 0..<total {
                let body = Data(#"{"ref":"refs/heads/main","n":\#(n)}"#.utf8)
                if let r = try? client?.request(
                    "POST", "/webhooks/github", headers: DaemonProcess.headers(for: body, delivery: "burst-\(n)"), body: body), r.status == 202
                {
                    acked.withLock { $0.append("burst-\(n)") }
                }
            }
        }
        sender.start()
        try daemon.waitUntil("a part of the burst", timeout: 60) { acked.withLock { $0.count } >= 1000 }
        let before = Set(acked.withLock { $0 })
        let file = daemon.dir + "/copy.sqlite"
        let backup = try cli(daemon, ["backup", file])
        #expect(backup.status == 0, "\(backup.err)")
        var info = stat()
        #expect(stat(file, &info) == 0 && info.st_mode & 0o777 == 0o600, "written 0600")
        let verify = try run(DaemonProcess.binary, ["backup", "--verify", file])
        #expect(verify.status == 0 && verify.out.contains("integrity ok"), "\(verify.out) \(verify.err)")
        let db = try SQLiteConnection(path: file, readOnly: true)
        let stored = Set(try db.prepare("SELECT delivery_id FROM events").rows { $0.text(0) })
        #expect(before.isSubset(of: stored), "missing \(before.subtracting(stored).count) acknowledged before the backup")
        try daemon.waitUntil("the burst", timeout: 120) { finished.withLock { $0 } }
        #expect(acked.withLock { $0.count } == total)

        // A damaged copy is not sound.
        let broken = daemon.dir + "/broken.sqlite"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: file))
        for i in stride(from: 4096, to: min(bytes.count, 40960), by: 7) { bytes[i] ^= 0xff }
        try bytes.write(to: URL(fileURLWithPath: broken))
        #expect(try run(DaemonProcess.binary, ["backup", "--verify", broken]).status == 1)
        #expect(try run(DaemonProcess.binary, ["backup", "--verify", daemon.dir + "/nothing.sqlite"]).status == 1)
    }
}

