import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import SwitchyardCore

/// PostgreSQL through postgres-nio's connection pool. `?` placeholders become `$1…`.
package final class PostgresDatabase: SQLDatabase {
    package let dialect = SQLDialect.postgres
    private let client: PostgresClient
    private let runTask: Task<Void, Never>
    private let logger: Logger

    /// Where to connect, from `postgres://user[:password]@host[:port]/database[?sslmode=…]`.
    package struct Target: Sendable, Equatable {
        package var host: String
        package var port = 5432
        package var user: String
        package var password: String?
        package var database: String
        /// disable, prefer (default) or require.
        package var sslMode = "prefer"

        /// A configured URL (`field`): `${ENV}` references filled in, the password from
        /// `passwordFile` when given.
        package init(url: String, field: String, passwordFile: String?, passwordField: String, environment: [String: String]) throws {
            let (expanded, missing) = BatchConfig.expand(url, environment: environment)
            guard missing.isEmpty else {
                throw SQLError("\(field) names environment variables that are not set: \(missing.joined(separator: ", "))")
            }
            guard let target = Target(url: expanded) else { throw SQLError("\(field) is not a postgres:// URL") }
            self = target
            if let file = passwordFile {
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw SQLError("\(passwordField) \(file) cannot be read")
                }
                password = text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }

        package init?(url: String) {
            guard let components = URLComponents(string: url), ["postgres", "postgresql"].contains(components.scheme ?? ""),
                let host = components.host, !host.isEmpty
            else { return nil }
            self.host = host
            port = components.port ?? 5432
            user = components.user ?? "postgres"
            password = components.password
            database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
            if database.isEmpty { database = user }
            if let mode = components.queryItems?.first(where: { $0.name == "sslmode" })?.value {
                guard ["disable", "prefer", "require"].contains(mode) else { return nil }
                sslMode = mode
            }
        }
    }

    package init(_ target: Target, logger: Logger) throws {
        let tls: PostgresClient.Configuration.TLS
        switch target.sslMode {
        case "disable": tls = .disable
        case "require": tls = .require(.makeClientConfiguration())
        default: tls = .prefer(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(
            host: target.host, port: target.port, username: target.user, password: target.password, database: target.database, tls: tls)
        configuration.options.maximumConnections = 8
        client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        let client = self.client
        runTask = Task { await client.run() }
        self.logger = logger
    }

    package func query(_ sql: String, _ binds: [SQLValue]) async throws -> [[SQLValue]] {
        try await Self.collect(try await client.query(Self.postgresQuery(sql, binds), logger: logger))
    }

    package func transaction<T: Sendable>(_ body: @Sendable (any SQLExecutor) async throws -> T) async throws -> T {
        try await client.withConnection { connection in
            _ = try await connection.query("BEGIN", logger: self.logger)
            do {
                let result = try await body(Connection(connection: connection, logger: self.logger))
                _ = try await connection.query("COMMIT", logger: self.logger)
                return result
            } catch {
                _ = try? await connection.query("ROLLBACK", logger: self.logger)
                throw error
            }
        }
    }

    package func close() async {
        runTask.cancel()
        _ = await runTask.value
    }

    private struct Connection: SQLExecutor {
        let connection: PostgresConnection
        let logger: Logger
        func query(_ sql: String, _ binds: [SQLValue]) async throws -> [[SQLValue]] {
            try await PostgresDatabase.collect(try await connection.query(PostgresDatabase.postgresQuery(sql, binds), logger: logger))
        }
    }

    static func postgresQuery(_ sql: String, _ binds: [SQLValue]) throws -> PostgresQuery {
        var text = ""
        text.reserveCapacity(sql.utf8.count + 16)
        var n = 0
        var quoted = false
        for ch in sql {
            if ch == "'" { quoted.toggle() }
            if ch == "?", !quoted {
                n += 1
                text += "$\(n)"
            } else {
                text.append(ch)
            }
        }
        var bindings = PostgresBindings(capacity: binds.count)
        for value in binds {
            switch value {
            case .null: bindings.appendNull()
            case .int(let v): bindings.append(v)
            case .text(let v): bindings.append(v)
            }
        }
        return PostgresQuery(unsafeSQL: text, binds: bindings)
    }

    static func collect(_ rows: PostgresRowSequence) async throws -> [[SQLValue]] {
        var out: [[SQLValue]] = []
        for try await row in rows {
            var values: [SQLValue] = []
            for cell in row {
                guard cell.bytes != nil else {
                    values.append(.null)
                    continue
                }
                switch cell.dataType {
                case .int8, .int4, .int2: values.append(.int(try cell.decode(Int64.self)))
                case .bool: values.append(.int(try cell.decode(Bool.self) ? 1 : 0))
                default: values.append(.text(try cell.decode(String.self)))
                }
            }
            out.append(values)
        }
        return out
    }
}
