import Logging

enum CLILogging {
    /// A stderr logger at the given level (unknown names fall back to info).
    static func logger(label: String, level: String) -> Logger {
        var logger = Logger(label: label) { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = Logger.Level(rawValue: level.lowercased()) ?? .info
        return logger
    }
}
