import ArgumentParser
import Foundation
import Logging
import SwitchyardCore
import SwitchyardGateway

/// `switchyard serve`: run the gateway from a config file and/or quick-start flags.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the OpenAI-compatible gateway.",
        discussion: """
            Quick start in front of running servers:
              switchyard serve --port 8080 --upstream smollm2=http://127.0.0.1:8000/v1
            Flags override the file given with --config.
            """
    )

    @Option(name: .long, help: "YAML configuration file.")
    var config: String?

    @Option(name: .long, help: "Address to listen on.")
    var host: String?

    @Option(name: .long, help: "Port to listen on (0 picks a free port).")
    var port: Int?

    @Option(name: .long, help: ArgumentHelp("A model pool: MODEL=URL[,URL…] (repeatable). URL is the server's OpenAI base.", valueName: "MODEL=URL"))
    var upstream: [String] = []

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    func run() async throws {
        let config = try Self.effectiveConfig(file: config, host: host, port: port, upstream: upstream)
        guard !config.models.isEmpty else {
            throw ValidationError("no models configured: give --config FILE or --upstream MODEL=URL")
        }
        let logger = CLILogging.logger(label: "switchyard", level: logLevel)
        let gateway = Gateway(config: config, logger: logger)
        let host = config.server.host
        try await gateway.run { port in
            let base = "http://\(host.contains(":") ? "[\(host)]" : host):\(port)"
            logger.info("listening", metadata: ["url": "\(base)/v1", "models": "\(config.models.map(\.name).joined(separator: ","))"])
            let banner = """
                switchyard: serving \(config.models.map(\.name).joined(separator: ", ")) at \(base)/v1
                  try: curl \(base)/v1/chat/completions -H 'content-type: application/json' -d '{"model":"\(config.models[0].name)","messages":[{"role":"user","content":"Hello"}]}'

                """
            FileHandle.standardOutput.write(Data(banner.utf8))
        }
    }

    static func effectiveConfig(file: String?, host: String?, port: Int?, upstream: [String]) throws -> GatewayConfig {
        var config = GatewayConfig()
        if let file { config = try ConfigCommand.load(file) }
        if let host { config.server.host = host }
        if let port {
            guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535, got \(port)") }
            config.server.port = port
        }
        for flag in upstream {
            let model = try ConfigLoader.parseUpstreamFlag(flag)
            if let index = config.models.firstIndex(where: { $0.name == model.name }) {
                config.models[index].backends = model.backends
            } else {
                config.models.append(model)
            }
        }
        let issues = ConfigLoader.validate(config)
        if !issues.isEmpty { throw ConfigError(issues: issues) }
        return config
    }
}
