/// A JSON value that keeps what a relay must not change: object key order and the exact text of
/// numbers. The gateway reads the few fields it needs and passes everything else through as-is,
/// so `{"temperature": 0.70}` reaches the backend as `0.70`, not as a re-rounded double.
package enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number as written in the source text.
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Key/value pairs in source order.
    case object([(String, JSONValue)])

    package static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b || Double(a) == Double(b)
        case (.string(let a), .string(let b)): return a == b
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    package subscript(key: String) -> JSONValue? {
        guard case .object(let pairs) = self else { return nil }
        return pairs.first(where: { $0.0 == key })?.1
    }

    package var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    package var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    package var intValue: Int? {
        if case .number(let n) = self { return Int(n) ?? Double(n).flatMap { $0.rounded() == $0 ? Int(exactly: $0) : nil } }
        return nil
    }

    package var doubleValue: Double? {
        if case .number(let n) = self { return Double(n) }
        return nil
    }

    package var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    package var isObject: Bool {
        if case .object = self { return true }
        return false
    }

    /// Sets `key` (replacing it in place when present, else appending). No-op on non-objects.
    package mutating func set(_ key: String, _ value: JSONValue) {
        guard case .object(var pairs) = self else { return }
        if let index = pairs.firstIndex(where: { $0.0 == key }) {
            pairs[index].1 = value
        } else {
            pairs.append((key, value))
        }
        self = .object(pairs)
    }

    package mutating func remove(_ key: String) {
        guard case .object(var pairs) = self else { return }
        pairs.removeAll { $0.0 == key }
        self = .object(pairs)
    }

    package static func number(_ value: Int) -> JSONValue { .number(String(value)) }
}
