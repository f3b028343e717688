import ArgumentParser
import Foundation
import SwitchyardCore

/// `switchyard describe`: the serving path as a diagram, from a configuration file or live from a
/// running gateway (`GET /admin/describe`).
struct DescribeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "Draw the serving path: listener → lanes → model pools → replicas → fallbacks → telemetry.",
        discussion: """
            With --config, the path as configured; with --url, the path a running gateway serves now
            (its configuration in force and its replicas' live state: serving, draining, unhealthy …).
            Mermaid text by default; --format svg or html for a self-contained picture.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable { case mermaid, svg, html }

    @Option(help: "A gateway configuration file.") var config: String?
    @Option(help: "A running gateway's base URL (e.g. http://127.0.0.1:8080).") var url: String?
    @Option(name: .customLong("admin-token"), help: "The gateway's admin token, when it has one (default: $SWITCHYARD_ADMIN_TOKEN).") var adminToken:
        String?
    @Option(help: "mermaid, svg or html.") var format: Format = .mermaid
    @Option(help: "Write here instead of standard output.") var out: String?

    func validate() throws {
        guard (config == nil) != (url == nil) else { throw ValidationError("give either --config FILE or --url GATEWAY") }
    }

    func run() async throws {
        let text: String
        if let config {
            let path = ServingPath(config: try ConfigCommand.loadOrExit(config))
            switch format {
            case .mermaid: text = path.mermaid
            case .svg: text = path.svg
            case .html: text = path.html(title: "Switchyard serving path (\(config))")
            }
        } else {
            text = String(buffer: try await AdminGet.fetch(url ?? "", "/admin/describe?format=\(format.rawValue)", token: adminToken))
        }
        if let out {
            do {
                try text.write(toFile: out, atomically: true, encoding: .utf8)
            } catch {
                throw ValidationError("--out: cannot write \(out): \(error.localizedDescription)")
            }
        } else {
            print(text, terminator: "")
        }
    }
}
