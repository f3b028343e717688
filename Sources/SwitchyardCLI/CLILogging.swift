import Foundation
import Logging
import Synchronization

enum CLILogging {
    /// A stderr logger at the given level (unknown names fall back to info).
    static func logger(label: String, level: String) -> Logger {
        var logger = Logger(label: label) { label in LineLogHandler(label: label) }
        logger.logLevel = Logger.Level(rawValue: level.lowercased()) ?? .info
        return logger
    }
}

/// One line per event on stderr: `time level label: message key=value …`.
///
/// Unlike swift-log's `StreamLogHandler`, setting metadata does no formatting (the HTTP server
/// sets a request id on every request's logger); rendering happens only for lines written.
struct LineLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    private static let lock = Mutex(())

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var line = "\(Date.now.formatted(.iso8601)) \(event.level) \(label): \(event.message)"
        for key in merged.keys.sorted() {
            line += " \(key)=\(merged[key]!)"
        }
        line += "\n"
        let data = Data(line.utf8)
        Self.lock.withLock { _ in FileHandle.standardError.write(data) }
    }
}
