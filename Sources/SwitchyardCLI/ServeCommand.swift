import ArgumentParser
import AsyncHTTPClient
import Foundation
import Logging
import SwitchyardBackends
import SwitchyardBatch
import SwitchyardCore
import SwitchyardGateway
import Synchronization

/// `switchyard serve`: run the gateway from a config file and/or quick-start flags.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the OpenAI-compatible gateway.",
        discussion: """
            With no configuration it installs (first run) and serves the embedded default model,
            SmolLM2-135M-Instruct on llama.cpp, from the data folder.
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

    @Option(
        name: .long,
        help: ArgumentHelp(
            "After SIGTERM, keep accepting this long with /readyz at 503 (server.drain_delay; default 5s, 0 to stop accepting at once).",
            valueName: "DURATION"))
    var drainDelay: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: "Data folder for the managed model servers' venv and launcher (default: $SWITCHYARD_DATA_DIR or ./.switchyard).")
    var dataDir: String?

    func run() async throws {
        let started = ContinuousClock.now
        let text = try self.config.map(ConfigCommand.read) ?? ""
        let (host, port, upstream, drainDelay) = (host, port, upstream, drainDelay)
        // The same flags and defaults apply to every configuration read again on reload.
        let build: @Sendable (String) throws -> GatewayConfig = { text in
            var config = try Self.effectiveConfig(text: text, host: host, port: port, upstream: upstream, drainDelay: drainDelay)
            if config.models.isEmpty { config.models = [ManagedServers.embeddedDefault()] }
            return config
        }
        var config = try build(text)
        let logger = CLILogging.logger(label: "switchyard", level: logLevel)
        let directory = DataDirectory(flag: dataDir)
        let replicas = try ManagedServers.plan(&config)
        do {
            try await ManagedServers.prepare(replicas, directory: directory, logger: logger)
        } catch let error as PythonEnvironment.InstallError {
            throw ValidationError(error.description)
        }
        let batch: BatchService
        do {
            batch = try await BatchService.open(
                config: config.batch, dataDirectory: directory.url.path, models: Set(config.models.map(\.name)),
                environment: ProcessInfo.processInfo.environment, logger: logger)
        } catch {
            throw ValidationError("\(error)")
        }
        let source = ConfigSource(file: self.config, text: text) { text throws(ConfigError) in
            do {
                return try build(text)
            } catch let error as ConfigError {
                throw error
            } catch {
                throw ConfigError(issues: [ConfigIssue(path: "", message: "\(error)")])
            }
        }
        let gateway = Gateway(config: config, logger: logger, batch: batch, source: source)
        let worker = BatchWorker(service: batch, executor: gateway, logger: logger)
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        let announcer = ReadyAnnouncer(
            host: config.server.host, https: config.server.tls != nil, models: config.models.map(\.name), started: started,
            waiting: !replicas.isEmpty)
        let supervisors = ManagedServers.supervisors(replicas, gateway: gateway, directory: directory, client: client, logger: logger) {
            announcer.ready()
        }
        do {
            try await gateway.run(services: supervisors + [worker]) { port in
                logger.info("listening", metadata: ["port": "\(port)"])
                if !replicas.isEmpty {
                    logger.info("waiting for managed model servers to start and warm up", metadata: ["replicas": "\(replicas.count)"])
                } else if !gateway.isReady {
                    logger.info("waiting for every model's first health checks to pass")
                }
                // "ready" only once /readyz would say so (requests sent before then wait).
                Task {
                    await gateway.waitUntilReady()
                    announcer.listening(port: port)
                }
            }
        } catch {
            try? await client.shutdown()
            await batch.store.db.close()
            throw error
        }
        try await client.shutdown()
        await batch.store.db.close()
    }

    /// The configuration from the file's `text` (empty: none) with the flags over it.
    static func effectiveConfig(text: String, host: String?, port: Int?, upstream: [String], drainDelay: String? = nil) throws -> GatewayConfig {
        var config = GatewayConfig()
        if !text.isEmpty { config = try ConfigLoader.load(yaml: text) }
        if let host { config.server.host = host }
        if let drainDelay {
            guard let delay = Duration.parse(drainDelay), delay >= .zero else {
                throw ValidationError("--drain-delay must be a duration such as 5s or 0, got '\(drainDelay)'")
            }
            config.server.drainDelay = delay
        }
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

/// Prints the ready banner once: when the server listens and every managed replica is warm.
final class ReadyAnnouncer: Sendable {
    private let state: Mutex<(port: Int?, ready: Bool, printed: Bool)>
    let host: String
    let scheme: String
    let models: [String]
    let started: ContinuousClock.Instant

    init(host: String, https: Bool = false, models: [String], started: ContinuousClock.Instant, waiting: Bool) {
        self.host = host
        scheme = https ? "https" : "http"
        self.models = models
        self.started = started
        state = Mutex((nil, !waiting, false))
    }

    func listening(port: Int) { update { $0.port = port } }
    func ready() { update { $0.ready = true } }

    private func update(_ change: (inout (port: Int?, ready: Bool, printed: Bool)) -> Void) {
        let port = state.withLock { s -> Int? in
            change(&s)
            guard let port = s.port, s.ready, !s.printed else { return nil }
            s.printed = true
            return port
        }
        guard let port else { return }
        let base = "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)"
        let elapsed = String(format: "%.1f", (ContinuousClock.now - started).seconds)
        let text = """
            switchyard: ready in \(elapsed)s, serving \(models.joined(separator: ", ")) at \(base)/v1
              try: curl \(base)/v1/chat/completions -H 'content-type: application/json' -d '{"model":"\(models[0])","messages":[{"role":"user","content":"Hello"}]}'

            """
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}
