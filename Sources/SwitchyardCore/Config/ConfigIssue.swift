/// One problem in a configuration, named by its path (`models[1].backends[0].url`).
package struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    package var path: String
    package var message: String
    package var line: Int?

    package init(path: String, message: String, line: Int? = nil) {
        self.path = path
        self.message = message
        self.line = line
    }

    package var description: String {
        let location = line.map { " (line \($0))" } ?? ""
        return "\(path.isEmpty ? "<root>" : path): \(message)\(location)"
    }
}

/// Thrown when a configuration has one or more problems; lists all of them.
package struct ConfigError: Error, Sendable, CustomStringConvertible {
    package var issues: [ConfigIssue]
    package init(issues: [ConfigIssue]) { self.issues = issues }
    package var description: String {
        "invalid configuration (\(issues.count) problem\(issues.count == 1 ? "" : "s")):\n"
            + issues.map { "  - \($0)" }.joined(separator: "\n")
    }
}
