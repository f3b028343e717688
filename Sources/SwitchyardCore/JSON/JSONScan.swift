/// Finds values inside a JSON document without building it: the proxy reads `model` and `usage`
/// of every answer (and the token fields of every stream chunk) and rewrites only the model's
/// bytes, so the rest reaches the client byte for byte.
///
/// The scan validates the whole document with JSON's grammar (strings and their escapes,
/// numbers, literals, nesting up to ``maxDepth``) but allocates nothing per value. Callers fall
/// back to ``JSONParser`` when it returns nil, which also yields the parser's error message.
package enum JSONScan {
    package static let maxDepth = 256

    /// The byte ranges of the values of `keys` (plain ASCII names) at the top level of the object
    /// in `bytes`, in the order of `keys` (nil where absent); nil when `bytes` is not exactly one
    /// valid JSON object, or when a key is written with escapes.
    package static func topLevelValues(_ bytes: UnsafeRawBufferPointer, keys: [StaticString]) -> [Range<Int>?]? {
        let start = skipSpace(bytes, 0)
        guard let (found, end) = members(bytes, object: start, keys: keys), skipSpace(bytes, end) == bytes.count else { return nil }
        return found
    }

    /// The values of `keys` in the object at `range` (a range a scan returned); nil when it is
    /// not an object.
    package static func values(_ bytes: UnsafeRawBufferPointer, of range: Range<Int>, keys: [StaticString]) -> [Range<Int>?]? {
        guard let (found, end) = members(UnsafeRawBufferPointer(rebasing: bytes[..<range.upperBound]), object: range.lowerBound, keys: keys),
            end == range.upperBound
        else { return nil }
        return found
    }

    /// The value at `range` (a range a scan returned) as ``JSONValue/intValue`` reads it: an
    /// integer, or a number with an integral value; nil for anything else.
    package static func intValue(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard let first = range.first.map({ bytes[$0] }), first == UInt8(ascii: "-") || (0x30...0x39).contains(first) else { return nil }
        // The common case, plain digits, without a String.
        let negative = first == UInt8(ascii: "-")
        let digits = (negative ? range.lowerBound + 1 : range.lowerBound)..<range.upperBound
        if !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ (0x30...0x39).contains(bytes[$0]) }) {
            let magnitude = digits.reduce(0) { $0 * 10 + Int(bytes[$1] - 0x30) }
            return negative ? -magnitude : magnitude
        }
        return JSONValue.number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)).intValue
    }

    /// The element ranges of the array at `range`; nil when it is not an array.
    package static func elements(_ bytes: UnsafeRawBufferPointer, of range: Range<Int>) -> [Range<Int>]? {
        var out: [Range<Int>]? = []
        guard items(UnsafeRawBufferPointer(rebasing: bytes[..<range.upperBound]), array: range.lowerBound, depth: 1, into: &out) == range.upperBound
        else { return nil }
        return out
    }

    /// Scans the array at `start` (collecting element ranges into `out` unless it is nil) and
    /// returns the index after it.
    static func items(_ bytes: UnsafeRawBufferPointer, array start: Int, depth: Int, into out: inout [Range<Int>]?) -> Int? {
        guard start < bytes.count, bytes[start] == UInt8(ascii: "[") else { return nil }
        var i = skipSpace(bytes, start + 1)
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { return i + 1 }
        while true {
            guard let end = skipValue(bytes, i, depth: depth + 1) else { return nil }
            out?.append(i..<end)
            i = skipSpace(bytes, end)
            guard i < bytes.count else { return nil }
            if bytes[i] == UInt8(ascii: "]") { return i + 1 }
            guard bytes[i] == UInt8(ascii: ",") else { return nil }
            i = skipSpace(bytes, i + 1)
        }
    }

    /// Scans the object at `start`: the values of `keys`, and the index after the object.
    static func members(_ bytes: UnsafeRawBufferPointer, object start: Int, keys: [StaticString], depth: Int = 1) -> ([Range<Int>?], Int)? {
        guard start < bytes.count, bytes[start] == UInt8(ascii: "{") else { return nil }
        var found = [Range<Int>?](repeating: nil, count: keys.count)
        var i = skipSpace(bytes, start + 1)
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { return (found, i + 1) }
        while true {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\""), let (keyEnd, escaped) = skipString(bytes, i) else { return nil }
            // An escaped key might spell a wanted one: only a real parser can tell.
            if escaped, !keys.isEmpty { return nil }
            let key = (i + 1)..<(keyEnd - 1)
            i = skipSpace(bytes, keyEnd)
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
            let valueStart = skipSpace(bytes, i + 1)
            guard let valueEnd = skipValue(bytes, valueStart, depth: depth + 1) else { return nil }
            for (n, name) in keys.enumerated() where name.utf8CodeUnitCount == key.count {
                let same = name.withUTF8Buffer { $0.elementsEqual(bytes[key]) }
                if same { found[n] = valueStart..<valueEnd }
            }
            i = skipSpace(bytes, valueEnd)
            guard i < bytes.count else { return nil }
            if bytes[i] == UInt8(ascii: "}") { return (found, i + 1) }
            guard bytes[i] == UInt8(ascii: ",") else { return nil }
            i = skipSpace(bytes, i + 1)
        }
    }

    /// Whether the key at `key` (a string's contents, without escapes) is `name`.
    @inline(__always)
    static func key(_ bytes: UnsafeRawBufferPointer, _ key: Range<Int>, is name: StaticString) -> Bool {
        let n = name.utf8CodeUnitCount
        guard key.count == n else { return false }
        let expected = name.utf8Start
        for k in 0..<n where bytes[key.lowerBound + k] != expected[k] { return false }
        return true
    }

    @inline(__always)
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
    @inline(__always)
    static func skipString(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> (Int, Bool)? {
        var i = start + 1
        var escaped = false
        while i < bytes.count {
            // Eight plain bytes at a time: none a quote, a backslash or a control character.
            while i + 8 <= bytes.count, !mayEndString(bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) { i += 8 }
            guard i < bytes.count else { break }
            let byte = bytes[i]
            if byte == UInt8(ascii: "\"") { return (i + 1, escaped) }
            if byte < 0x20 { return nil }
            if byte == UInt8(ascii: "\\") {
                escaped = true
                guard i + 1 < bytes.count else { return nil }
                switch bytes[i + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    i += 2
                case UInt8(ascii: "u"):
                    // As the parser: a high surrogate only with a low one after it.
                    guard let code = hex4(bytes, i + 2) else { return nil }
                    i += 6
                    if (0xD800..<0xDC00).contains(code) {
                        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u"),
                            let low = hex4(bytes, i + 2), (0xDC00..<0xE000).contains(low)
                        else { return nil }
                        i += 6
                    } else if (0xDC00..<0xE000).contains(code) {
                        return nil
                    }
                default:
                    return nil
                }
                continue
            }
            if byte >= 0x80 {
                guard let n = utf8Length(bytes, i) else { return nil }
                i += n
                continue
            }
            i += 1
        }
        return nil
    }

    /// The four hex digits at `i` as a number.
    static func hex4(_ bytes: UnsafeRawBufferPointer, _ i: Int) -> Int? {
        guard i + 3 < bytes.count else { return nil }
        var code = 0
        for k in 0..<4 {
            let b = bytes[i + k]
            guard isHex(b) else { return nil }
            code = code << 4 | Int(b <= 0x39 ? b - 0x30 : (b | 0x20) - 0x61 + 10)
        }
        return code
    }

    /// The length of the well-formed UTF-8 sequence at `i` (Unicode's table 3-7: no overlong
    /// forms, no surrogates, nothing past U+10FFFF); nil when it is not one.
    static func utf8Length(_ bytes: UnsafeRawBufferPointer, _ i: Int) -> Int? {
        let lead = bytes[i]
        let (n, second): (Int, ClosedRange<UInt8>) =
            switch lead {
            case 0xC2...0xDF: (2, 0x80...0xBF)
            case 0xE0: (3, 0xA0...0xBF)
            case 0xE1...0xEC, 0xEE...0xEF: (3, 0x80...0xBF)
            case 0xED: (3, 0x80...0x9F)
            case 0xF0: (4, 0x90...0xBF)
            case 0xF1...0xF3: (4, 0x80...0xBF)
            case 0xF4: (4, 0x80...0x8F)
            default: (0, 0...0)
            }
        guard n > 0, i + n <= bytes.count, second.contains(bytes[i + 1]) else { return nil }
        for k in 2..<max(2, n) where !(0x80...0xBF).contains(bytes[i + k]) { return nil }
        return n
    }

    /// Whether any of eight bytes is `"`, `\\`, below 0x20 or above 0x7F (non-ASCII: its UTF-8
    /// is checked) (SWAR: a zero byte after XOR means equal, and a borrow into the high bit
    /// means below).
    @inline(__always)
    static func mayEndString(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func hasZero(_ x: UInt64) -> Bool { (x &- ones) & ~x & highs != 0 }
        return word & highs != 0 || hasZero(word ^ (ones &* 0x22)) || hasZero(word ^ (ones &* 0x5C))
            || (word &- ones &* 0x20) & ~word & highs != 0
    }

    static func isHex(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
    }

    static func isDigit(_ bytes: UnsafeRawBufferPointer, _ i: Int) -> Bool {
        i < bytes.count && (0x30...0x39).contains(bytes[i])
    }

    /// The index after the valid JSON value starting at `start`.
    static func skipValue(_ bytes: UnsafeRawBufferPointer, _ start: Int, depth: Int) -> Int? {
        guard start < bytes.count, depth <= maxDepth else { return nil }
        switch bytes[start] {
        case UInt8(ascii: "\""):
            return skipString(bytes, start)?.0
        case UInt8(ascii: "{"):
            return members(bytes, object: start, keys: [], depth: depth)?.1
        case UInt8(ascii: "["):
            var ignored: [Range<Int>]?
            return items(bytes, array: start, depth: depth, into: &ignored)
        case UInt8(ascii: "t"):
            return literal(bytes, start, "true")
        case UInt8(ascii: "f"):
            return literal(bytes, start, "false")
        case UInt8(ascii: "n"):
            return literal(bytes, start, "null")
        default:
            return number(bytes, start)
        }
    }

    static func literal(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ word: StaticString) -> Int? {
        let n = word.utf8CodeUnitCount
        guard start + n <= bytes.count, word.withUTF8Buffer({ $0.elementsEqual(bytes[start..<(start + n)]) }) else { return nil }
        return start + n
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    static func number(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> Int? {
        var i = start
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard isDigit(bytes, i) else { return nil }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while isDigit(bytes, i) { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard isDigit(bytes, i) else { return nil }
            while isDigit(bytes, i) { i += 1 }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard isDigit(bytes, i) else { return nil }
            while isDigit(bytes, i) { i += 1 }
        }
        return i
    }
}
