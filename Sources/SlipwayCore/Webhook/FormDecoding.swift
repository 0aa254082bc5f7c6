/// `application/x-www-form-urlencoded` decoding, as GitHub sends `payload=<url-encoded JSON>`.
public enum FormDecoding {
    /// The decoded value of `name` in a form body, or nil when absent or badly escaped.
    public static func field(_ name: String, in body: [UInt8]) -> [UInt8]? {
        let key = Array(name.utf8)
        for pair in body.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let eq = pair.firstIndex(of: UInt8(ascii: "=")) ?? pair.endIndex
            guard let k = percentDecode(pair[pair.startIndex..<eq]), k == key else { continue }
            return eq == pair.endIndex ? [] : percentDecode(pair[(eq + 1)...])
        }
        return nil
    }

    /// Decodes `+` and `%XX`; nil on a malformed escape.
    public static func percentDecode(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let c = bytes[i]
            if c == UInt8(ascii: "+") {
                out.append(0x20)
            } else if c == UInt8(ascii: "%") {
                guard i + 2 < bytes.endIndex,
                    let v = [UInt8](hexString: String(decoding: bytes[(i + 1)...(i + 2)], as: UTF8.self))
                else { return nil }
                out.append(v[0])
                i += 2
            } else {
                out.append(c)
            }
            i += 1
        }
        return out
    }
}
