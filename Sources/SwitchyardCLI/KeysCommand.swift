import ArgumentParser
import Foundation
import SwitchyardCore

/// `switchyard keys create --tenant T`: a new API key, shown once, and the line for the config.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Make API keys for tenants.",
        subcommands: [Create.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a new API key once (stdout) and the tenants: entry that admits it (stderr).",
            discussion: """
                Only the key's SHA-256 goes into the configuration; the key is not stored anywhere
                and cannot be shown again. Give it to the tenant now.
                  switchyard keys create --tenant team-a > team-a.key
                """
        )

        @Option(help: "The tenant's name (letters, digits, '-', '_', '.').")
        var tenant: String

        @Option(help: "The tenant's share of capacity under contention.")
        var weight: Double = 1

        func validate() throws {
            guard !tenant.isEmpty, tenant.count <= 64,
                tenant.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
            else {
                throw ValidationError("--tenant must be 1–64 letters, digits, '-', '_' or '.', got '\(tenant)'")
            }
            guard weight > 0, weight <= 1000 else { throw ValidationError("--weight must be in (0, 1000], got \(weight)") }
        }

        func run() async throws {
            let key = TenantKeys.generate()
            let weightText = weight == weight.rounded() ? String(Int(weight)) : String(weight)
            let line = "  - { name: \(tenant), api_key_sha256: \(Digest.sha256Hex(key)), weight: \(weightText) }"
            // The key alone on stdout (redirect it to a file or a secret store); the rest is for the operator.
            print(key)
            FileHandle.standardError.write(
                Data(
                    """
                    A new key for tenant '\(tenant)' is on stdout: it is shown only this once.
                    Add this entry under tenants: in the gateway's configuration (a reload applies it):
                    \(line)

                    """.utf8))
        }
    }
}
