import Foundation

/// A streaming `multipart/form-data` parser (RFC 7578): bytes go in as they arrive, parts come
/// out as events, and no more than a part's headers and a boundary's length are held.
package struct MultipartParser {
    package enum Event: Equatable {
        /// A part begins: its headers, names lowercased.
        case part([String: String])
        case data([UInt8])
        case partEnd
        case end
    }

    package struct Failure: Error, Equatable, CustomStringConvertible {
        package let description: String
    }

    private enum State { case preamble, headers, body, afterBoundary, done }

    private let delimiter: [UInt8]  // "\r\n--boundary"
    private var state = State.preamble
    private var pending: [UInt8] = []

    package init(boundary: String) {
        delimiter = Array("\r\n--\(boundary)".utf8)
        // The first boundary may open the body without a preceding CRLF.
        pending = Array("\r\n".utf8)
    }

    /// The boundary of a `multipart/form-data; boundary=…` content type.
    package static func boundary(contentType: String) -> String? {
        guard contentType.lowercased().hasPrefix("multipart/form-data") else { return nil }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "boundary" else { continue }
            var value = pair[1].trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return value.isEmpty || value.count > 70 ? nil : value
        }
        return nil
    }

    /// Feeds bytes; `emit` gets the events they complete.
    package mutating func feed(_ bytes: some Collection<UInt8>, _ emit: (Event) throws -> Void) throws {
        pending.append(contentsOf: bytes)
        var start = 0
        defer { pending.removeFirst(start) }
        while true {
            switch state {
            case .preamble, .body:
                if let hit = find(delimiter, from: start) {
                    if state == .body {
                        if hit > start { try emit(.data(Array(pending[start..<hit]))) }
                        try emit(.partEnd)
                    }
                    start = hit + delimiter.count
                    state = .afterBoundary
                } else {
                    // Keep what could be the start of a delimiter.
                    let keep = max(start, pending.count - (delimiter.count - 1))
                    if state == .body, keep > start { try emit(.data(Array(pending[start..<keep]))) }
                    start = keep
                    return
                }
            case .afterBoundary:
                guard pending.count - start >= 2 else { return }
                if pending[start] == UInt8(ascii: "-"), pending[start + 1] == UInt8(ascii: "-") {
                    state = .done
                    try emit(.end)
                    start = pending.count
                    return
                }
                // Transport padding, then CRLF.
                guard let crlf = find([13, 10], from: start) else { return }
                start = crlf + 2
                state = .headers
            case .headers:
                guard let end = find([13, 10, 13, 10], from: start) else {
                    if pending.count - start > 16 * 1024 { throw Failure(description: "multipart part headers longer than 16 KiB") }
                    return
                }
                var headers: [String: String] = [:]
                for line in String(decoding: pending[start..<end], as: UTF8.self).split(separator: "\r\n") {
                    guard let colon = line.firstIndex(of: ":") else { throw Failure(description: "malformed multipart header '\(line)'") }
                    headers[line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()] =
                        line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                try emit(.part(headers))
                start = end + 4
                state = .body
            case .done:
                start = pending.count
                return
            }
        }
    }

    /// Whether the closing boundary was seen.
    package var isComplete: Bool { state == .done }

    private func find(_ needle: [UInt8], from: Int) -> Int? {
        guard pending.count - from >= needle.count else { return nil }
        let first = needle[0]
        var i = from
        let last = pending.count - needle.count
        while i <= last {
            if pending[i] == first {
                var j = 1
                while j < needle.count, pending[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    /// `name` and `filename` of a `Content-Disposition: form-data; name="…"; filename="…"`.
    package static func disposition(_ value: String?) -> (name: String?, filename: String?) {
        guard let value else { return (nil, nil) }
        var name: String?
        var filename: String?
        for parameter in value.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { continue }
            var v = pair[1].trimmingCharacters(in: .whitespaces)
            if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = String(v.dropFirst().dropLast()) }
            switch pair[0].trimmingCharacters(in: .whitespaces).lowercased() {
            case "name": name = v
            case "filename": filename = v
            default: break
            }
        }
        return (name, filename)
    }
}
