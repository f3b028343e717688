/// Finds the values of top-level keys of a JSON object without building the object: the proxy
/// reads `model` and `usage` of every answer and rewrites only the model's bytes, so the rest of
/// the answer goes to the client byte for byte.
///
/// The scan checks structure (strings, nesting, separators), not every literal: callers use it
/// on answers they relay anyway, and fall back to ``JSONParser`` when it returns nil.
public enum JSONScan {
    /// The byte ranges of the values of `keys` (plain ASCII names) at the top level of the object
    /// in `bytes`, in the order of `keys` (nil where absent); nil when `bytes` is not an object
    /// or a key is written with escapes.
    public static func topLevelValues(_ bytes: UnsafeRawBufferPointer, keys: [String]) -> [Range<Int>?]? {
        var found = [Range<Int>?](repeating: nil, count: keys.count)
        let wanted = keys.map { Array($0.utf8) }
        var i = skipSpace(bytes, 0)
        guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else { return nil }
        i = skipSpace(bytes, i + 1)
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { return skipSpace(bytes, i + 1) == bytes.count ? found : nil }
        while true {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
            guard let (keyEnd, escaped) = skipString(bytes, i) else { return nil }
            let key = (i + 1)..<(keyEnd - 1)
            i = skipSpace(bytes, keyEnd)
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
            let valueStart = skipSpace(bytes, i + 1)
            guard let valueEnd = skipValue(bytes, valueStart) else { return nil }
            for (n, name) in wanted.enumerated() where name.count == key.count && name.elementsEqual(bytes[key]) {
                found[n] = valueStart..<valueEnd
            }
            // An escaped key might spell a wanted one: only a real parser can tell.
            if escaped { return nil }
            i = skipSpace(bytes, valueEnd)
            guard i < bytes.count else { return nil }
            if bytes[i] == UInt8(ascii: ",") {
                i = skipSpace(bytes, i + 1)
                continue
            }
            guard bytes[i] == UInt8(ascii: "}") else { return nil }
            return skipSpace(bytes, i + 1) == bytes.count ? found : nil
        }
    }

    static func skipSpace(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> Int {
        var i = start
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return i
            }
        }
        return i
    }

    /// The index after the string starting at `start` (a quote), and whether it has escapes.
    static func skipString(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> (Int, Bool)? {
        var i = start + 1
        var escaped = false
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "\""): return (i + 1, escaped)
            case UInt8(ascii: "\\"):
                escaped = true
                i += 2
            case 0x00..<0x20: return nil
            default: i += 1
            }
        }
        return nil
    }

    /// The index after the value starting at `start`.
    static func skipValue(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> Int? {
        guard start < bytes.count else { return nil }
        switch bytes[start] {
        case UInt8(ascii: "\""):
            return skipString(bytes, start)?.0
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            var i = start
            while i < bytes.count {
                switch bytes[i] {
                case UInt8(ascii: "\""):
                    guard let (end, _) = skipString(bytes, i) else { return nil }
                    i = end
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 { return i + 1 }
                default:
                    break
                }
                i += 1
            }
            return nil
        default:
            var i = start
            while i < bytes.count {
                switch bytes[i] {
                case UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]"), 0x20, 0x09, 0x0A, 0x0D:
                    return i > start ? i : nil
                default:
                    i += 1
                }
            }
            return i > start ? i : nil
        }
    }
}
