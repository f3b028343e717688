import Foundation
import Logging
import SwitchyardBatch
import Testing

/// The PostgreSQL that `scripts/test` starts for the tests (`SWITCHYARD_TEST_POSTGRES`).
package enum TestPostgres {
    package static var url: String? { ProcessInfo.processInfo.environment["SWITCHYARD_TEST_POSTGRES"] }

    package static let missing: Comment =
        "SWITCHYARD_TEST_POSTGRES is not set: run the tests through scripts/test (it starts a throwaway PostgreSQL), or export the URL of one"

    /// A new database on the server of `url`; its URL and how to drop it.
    package static func freshDatabase(_ url: String) async throws -> (String, @Sendable () async throws -> Void) {
        let admin = try PostgresDatabase(#require(PostgresDatabase.Target(url: url)), logger: Logger(label: "test-pg-admin"))
        let name = "sy_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try await admin.query("CREATE DATABASE \(name)", [])
        var components = try #require(URLComponents(string: url))
        components.path = "/\(name)"
        let fresh = try #require(components.string)
        return (
            fresh,
            {
                _ = try? await admin.query("DROP DATABASE IF EXISTS \(name) WITH (FORCE)", [])
                await admin.close()
            }
        )
    }
}
