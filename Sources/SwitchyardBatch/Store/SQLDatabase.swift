/// A value bound to or read from SQL: the store keeps only integers and text, so one schema
/// serves SQLite and PostgreSQL alike.
package enum SQLValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case int(Int64)
    case text(String)

    package var int: Int64? { if case .int(let v) = self { v } else { nil } }
    package var text: String? { if case .text(let v) = self { v } else { nil } }

    package var description: String {
        switch self {
        case .null: "NULL"
        case .int(let v): "\(v)"
        case .text(let v): "'\(v)'"
        }
    }
}

extension SQLValue: ExpressibleByIntegerLiteral, ExpressibleByStringLiteral {
    package init(integerLiteral value: Int64) { self = .int(value) }
    package init(stringLiteral value: String) { self = .text(value) }
    package init(_ value: Int) { self = .int(Int64(value)) }
    package init(_ value: String?) { self = value.map(SQLValue.text) ?? .null }
}

/// The few places where SQLite and PostgreSQL SQL differ.
package enum SQLDialect: Sendable {
    case sqlite, postgres

    /// Appended to the claim query's inner select: rows another gateway holds are skipped.
    var skipLocked: String { self == .postgres ? " FOR UPDATE OF i SKIP LOCKED" : "" }
    /// Bytes of a TEXT column.
    func octetLength(_ column: String) -> String { self == .postgres ? "octet_length(\(column))" : "length(CAST(\(column) AS BLOB))" }
}

/// Runs SQL with `?` placeholders; rows come back as arrays of values in select order.
package protocol SQLExecutor: Sendable {
    @discardableResult
    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [[SQLValue]]
}

/// A database the batch store runs on: statements on their own, or several in one transaction.
package protocol SQLDatabase: SQLExecutor {
    var dialect: SQLDialect { get }
    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    func transaction<T: Sendable>(_ body: @Sendable (any SQLExecutor) async throws -> T) async throws -> T
    func close() async
}

package struct SQLError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}
