import SwitchyardCore

/// Checks a batch input file line by line as it streams in: valid JSON, a unique `custom_id`,
/// `method` POST, a supported `url`, a `body` object whose `model` is served here. Keeps the
/// first problems with their line numbers; the file is refused if there is any.
package struct UploadValidator {
    package static let endpoints = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings"]
    /// Problems listed in the error at most.
    package static let shownProblems = 10

    let models: Set<String>
    let maxLines: Int
    private var customIDs = Set<String>()
    package private(set) var problems: [(line: Int, message: String)] = []
    package private(set) var problemCount = 0
    package private(set) var lines = 0
    package private(set) var endpoints = Set<String>()

    package init(models: Set<String>, maxLines: Int) {
        self.models = models
        self.maxLines = maxLines
    }

    private mutating func problem(_ line: Int, _ message: String) {
        problemCount += 1
        if problems.count < Self.shownProblems { problems.append((line, message)) }
    }

    /// Checks line `number` (1-based); the line to store when it is valid. Blank lines are
    /// skipped.
    package mutating func check(_ number: Int, _ bytes: [UInt8]) -> FileLine? {
        guard bytes.contains(where: { $0 != 32 && $0 != 9 && $0 != 13 }) else { return nil }
        lines += 1
        if lines == maxLines + 1 { problem(number, "the file has more than \(maxLines) requests (batch.max_file_lines)") }
        let json: JSONValue
        do {
            json = try JSONParser.parse(bytes)
        } catch {
            problem(number, "not valid JSON: \(error)")
            return nil
        }
        guard case .object = json else {
            problem(number, "expected a JSON object with custom_id, method, url and body")
            return nil
        }
        var ok = true
        let customID = json["custom_id"]?.stringValue
        if let customID, !customID.isEmpty {
            if !customIDs.insert(customID).inserted {
                problem(number, "custom_id '\(customID)' is used by an earlier line; each must be unique")
                ok = false
            }
        } else {
            problem(number, "custom_id is missing (a non-empty string)")
            ok = false
        }
        if json["method"]?.stringValue != "POST" {
            problem(number, "method must be POST, got \(json["method"]?.stringValue ?? "nothing")")
            ok = false
        }
        let url = json["url"]?.stringValue ?? ""
        if Self.endpoints.contains(url) {
            endpoints.insert(url)
        } else {
            problem(number, "url must be one of \(Self.endpoints.joined(separator: ", ")), got '\(url)'")
            ok = false
        }
        if let body = json["body"], case .object = body {
            if let model = body["model"]?.stringValue {
                if !models.contains(model) {
                    problem(number, "body.model '\(model)' is not served here; models: \(models.sorted().joined(separator: ", "))")
                    ok = false
                }
            } else {
                problem(number, "body.model is missing")
                ok = false
            }
            if body["stream"]?.boolValue == true {
                problem(number, "body.stream must not be true: batch answers are written whole")
                ok = false
            }
        } else {
            problem(number, "body is missing (the request's JSON object)")
            ok = false
        }
        guard ok, let customID, lines <= maxLines else { return nil }
        return FileLine(number: number, customID: customID, data: String(decoding: bytes, as: UTF8.self))
    }

    /// The 400's message: the first problems with their lines.
    package var message: String {
        let listed = problems.map { "line \($0.line): \($0.message)" }.joined(separator: "; ")
        let more = problemCount > problems.count ? " (and \(problemCount - problems.count) more)" : ""
        return "The file is not a valid batch input: \(listed)\(more). Nothing of it was stored."
    }
}

/// Splits a byte stream into lines (LF, with an optional CR before it), holding at most one
/// line, which may not exceed `maxLineBytes`.
package struct LineSplitter {
    let maxLineBytes: Int
    private var partial: [UInt8] = []
    package private(set) var lineNumber = 0

    package struct TooLong: Error, CustomStringConvertible {
        package let line: Int
        package let limit: Int
        package var description: String { "line \(line) is longer than \(limit) bytes" }
    }

    package init(maxLineBytes: Int) {
        self.maxLineBytes = maxLineBytes
    }

    package mutating func feed(_ bytes: some Collection<UInt8>, _ emit: (Int, [UInt8]) throws -> Void) throws {
        var start = bytes.startIndex
        while let newline = bytes[start...].firstIndex(of: 10) {
            partial.append(contentsOf: bytes[start..<newline])
            try finishLine(emit)
            start = bytes.index(after: newline)
        }
        partial.append(contentsOf: bytes[start...])
        if partial.count > maxLineBytes { throw TooLong(line: lineNumber + 1, limit: maxLineBytes) }
    }

    /// The last line, when the stream did not end with a newline.
    package mutating func finish(_ emit: (Int, [UInt8]) throws -> Void) throws {
        if !partial.isEmpty { try finishLine(emit) }
    }

    private mutating func finishLine(_ emit: (Int, [UInt8]) throws -> Void) throws {
        lineNumber += 1
        if partial.last == 13 { partial.removeLast() }
        if partial.count > maxLineBytes { throw TooLong(line: lineNumber, limit: maxLineBytes) }
        try emit(lineNumber, partial)
        partial.removeAll(keepingCapacity: true)
    }
}
