import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
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
    @Option(name: .customLong("admin-token"), help: "The gateway's admin token, when it has one.") var adminToken: String?
    @Option(help: "mermaid, svg or html.") var format: Format = .mermaid
    @Option(help: "Write here instead of standard output.") var out: String?

    func validate() throws {
        guard (config == nil) != (url == nil) else { throw ValidationError("give either --config FILE or --url GATEWAY") }
    }

    func run() async throws {
        let text: String
        if let config {
            let loaded: GatewayConfig
            do {
                loaded = try ConfigCommand.load(config)
            } catch let error as ConfigError {
                FileHandle.standardError.write(Data("\(config): \(error)\n".utf8))
                throw ExitCode(1)
            }
            let path = ServingPath(config: loaded)
            switch format {
            case .mermaid: text = path.mermaid
            case .svg: text = path.svg
            case .html: text = path.html(title: "Switchyard serving path (\(config))")
            }
        } else {
            let base = (url ?? "").hasSuffix("/") ? String((url ?? "").dropLast()) : (url ?? "")
            var request = HTTPClientRequest(url: base + "/admin/describe?format=\(format.rawValue)")
            if let adminToken { request.headers.add(name: "authorization", value: "Bearer \(adminToken)") }
            let response: HTTPClientResponse
            do {
                response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            } catch {
                throw ValidationError("GET \(base)/admin/describe: \(error)")
            }
            let body = String(buffer: try await response.body.collect(upTo: 16 << 20))
            guard response.status.code == 200 else {
                throw ValidationError("GET \(base)/admin/describe answered \(response.status.code): \(body.prefix(300))")
            }
            text = body
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
