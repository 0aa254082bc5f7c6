/// Removes terminal escape sequences (colours, cursor moves, OSC titles) and other control
/// characters but tab from build output, for the web page and `slipway logs`.
public enum TerminalText {
    public static func strip(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var scalars = text.unicodeScalars.makeIterator()
        while let c = scalars.next() {
            if c == "\u{1B}" {
                guard let kind = scalars.next() else { break }
                switch kind {
                case "[":  // CSI: parameters, intermediates, one final byte 0x40–0x7E
                    while let p = scalars.next(), !(0x40...0x7E).contains(p.value) {}
                case "]", "P", "X", "^", "_":  // OSC/DCS/…: until BEL or ESC \
                    var previous: Unicode.Scalar = " "
                    while let p = scalars.next() {
                        if p == "\u{07}" || (previous == "\u{1B}" && p == "\\") { break }
                        previous = p
                    }
                default: break  // two-character sequences
                }
                continue
            }
            if c.value < 0x20 && c != "\t" && c != "\n" { continue }
            if c.value == 0x7F || (0x80...0x9F).contains(c.value) { continue }
            out.append(c)
        }
        return String(out)
    }
}
