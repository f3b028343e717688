import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore
import Synchronization

/// Runs one managed replica: start → health → warmup → ready, and again after a crash, with
/// exponential backoff. The gateway routes to it only while `onGate(true)` is in force.
package final class ReplicaSupervisor: Service, ManagedReplicaControl, Sendable {
    package let name: String
    package let port: Int
    let config: ManagedConfig
    let directory: DataDirectory
    let logger: Logger
    let client: HTTPClient
    let onGate: @Sendable (Bool) -> Void
    let onEvent: @Sendable (ReplicaStatus) -> Void
    private let state: Mutex<ReplicaStatus>
    private let process = Mutex<Process?>(nil)
    private let exitSignal = Mutex<CheckedContinuation<Int32, Never>?>(nil)
    private let restartRequested = Atomic<Bool>(false)
    private let paused = Atomic<Bool>(false)

    static let maxBackoff: Duration = .seconds(30)
    static let stopGrace: Duration = .seconds(10)

    package init(
        name: String, port: Int, config: ManagedConfig, directory: DataDirectory, client: HTTPClient, logger: Logger,
        onGate: @escaping @Sendable (Bool) -> Void, onEvent: @escaping @Sendable (ReplicaStatus) -> Void = { _ in }
    ) {
        self.name = name
        self.port = port
        self.config = config
        self.directory = directory
        self.client = client
        self.logger = logger
        self.onGate = onGate
        self.onEvent = onEvent
        state = Mutex(ReplicaStatus(name: name, url: "http://127.0.0.1:\(port)/v1"))
    }

    package var status: ReplicaStatus { state.withLock { $0 } }
    package var baseURL: String { "http://127.0.0.1:\(port)" }

    private func update(_ change: (inout ReplicaStatus) -> Void) {
        let snapshot = state.withLock { s -> ReplicaStatus in
            change(&s)
            return s
        }
        onEvent(snapshot)
    }

    /// The command line: the launcher around llama.cpp or around the configured command.
    func commandLine() -> [String] {
        // llama.cpp runs on the venv's Python; other commands only need the launcher on any python3.
        var python = directory.python.path
        if case .command = config.server, !FileManager.default.isExecutableFile(atPath: python) {
            python = PythonEnvironment.systemPython() ?? "python3"
        }
        var args = [python, directory.launcher.path]
        switch config.server {
        case .llamacpp(let s):
            args += [
                "llamacpp", "--port", String(port), "--model", s.modelPath, "--parallel", String(s.parallel),
                "--ctx", String(s.ctxSize), "--threads", String(s.threads),
            ]
            if s.embeddings { args.append("--embeddings") }
        case .command(let command):
            args += ["exec", "--"] + command.map { $0.replacingOccurrences(of: "{port}", with: String(port)) }
        }
        return args
    }

    package func run() async throws {
        await cancelWhenGracefulShutdown {
            var backoff: Duration = .seconds(1)
            while !Task.isCancelled {
                let started = ContinuousClock.now
                let exit = await self.runOnce()
                self.onGate(false)
                guard !Task.isCancelled else { break }
                if self.paused.load(ordering: .relaxed) {
                    self.update {
                        $0.phase = .stopped
                        $0.pid = nil
                    }
                    while self.paused.load(ordering: .relaxed), !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(100))
                    }
                    backoff = .seconds(1)
                    continue
                }
                if self.restartRequested.exchange(false, ordering: .relaxed) {
                    backoff = .seconds(1)
                    continue
                }
                if ContinuousClock.now - started > .seconds(60) { backoff = .seconds(1) }
                self.update {
                    $0.phase = .backoff
                    $0.restarts += 1
                    $0.lastExit = exit
                }
                self.logger.warning(
                    "managed replica exited; restarting", metadata: ["replica": "\(self.name)", "exit": "\(exit)", "backoff": "\(backoff.formatted)"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, Self.maxBackoff)
            }
        }
        await stopProcess()
        update {
            $0.phase = .stopped
            $0.pid = nil
        }
    }

    /// One life of the process; returns why it ended.
    func runOnce() async -> String {
        let start = ContinuousClock.now
        update {
            $0.phase = .starting
            $0.loadSeconds = nil
            $0.warmupSeconds = nil
            $0.readySeconds = nil
        }
        let process = Process()
        let args = commandLine()
        process.executableURL = URL(fileURLWithPath: args[0])
        process.arguments = Array(args.dropFirst())
        var environment = ProcessInfo.processInfo.environment
        for (k, v) in config.env { environment[k] = v }
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        let tail = LogTail(replica: name, logger: logger)
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty { handle.readabilityHandler = nil } else { tail.append(data) }
        }
        let (exits, continuation) = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { p in
            continuation.yield(p.terminationStatus)
            continuation.finish()
        }
        do {
            try process.run()
        } catch {
            return "could not start \(args[0]): \(error.localizedDescription)"
        }
        self.process.withLock { $0 = process }
        update { $0.pid = process.processIdentifier }
        logger.info("managed replica starting", metadata: ["replica": "\(name)", "pid": "\(process.processIdentifier)", "port": "\(port)"])
        defer { self.process.withLock { $0 = nil } }

        // Health: the server answers /health before ready_timeout, or the start failed.
        let deadline = start + config.readyTimeout
        var healthy = false
        while ContinuousClock.now < deadline, process.isRunning, !Task.isCancelled {
            if await probe() {
                healthy = true
                break
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        guard healthy else {
            if Task.isCancelled {
                await stopProcess()
                return "stopped"
            }
            let reason = process.isRunning ? "not healthy within \(config.readyTimeout.formatted)" : "exited during start: \(tail.last(5))"
            await stopProcess()
            return reason
        }
        let loaded = ContinuousClock.now
        update {
            $0.phase = .warming
            $0.loadSeconds = (loaded - start).seconds
        }
        // Warmup: every request must succeed before the replica takes traffic.
        for item in config.warmup {
            for _ in 0..<item.count {
                if let problem = await warmup(item) {
                    await stopProcess()
                    return "warmup failed: \(problem)"
                }
            }
        }
        let ready = ContinuousClock.now
        update {
            $0.phase = .ready
            $0.warmupSeconds = (ready - loaded).seconds
            $0.readySeconds = (ready - start).seconds
        }
        logger.info(
            "managed replica ready",
            metadata: [
                "replica": "\(name)", "load_s": "\(String(format: "%.2f", (loaded - start).seconds))",
                "warmup_s": "\(String(format: "%.2f", (ready - loaded).seconds))", "ready_s": "\(String(format: "%.2f", (ready - start).seconds))",
            ])
        onGate(true)
        var code: Int32 = -1
        for await status in exits {  // ends early when the supervisor is cancelled (shutdown)
            code = status
        }
        if Task.isCancelled {
            await stopProcess()
            return "stopped"
        }
        return Self.describe(code, reason: process.terminationReason) + (tail.last(3).isEmpty ? "" : "; last output: \(tail.last(3))")
    }

    static func describe(_ code: Int32, reason: Process.TerminationReason) -> String {
        if reason == .uncaughtSignal { return "killed by signal \(code)" }
        if code > 128 { return "exit \(code) (signal \(code - 128))" }
        return "exit \(code)"
    }

    func probe() async -> Bool {
        guard let response = try? await client.execute(HTTPClientRequest(url: "\(baseURL)/health"), timeout: .seconds(2)) else { return false }
        _ = try? await response.body.collect(upTo: 1 << 16)
        return response.status == .ok
    }

    func warmup(_ item: ManagedConfig.Warmup) async -> String? {
        var request = HTTPClientRequest(url: "\(baseURL)/v1/completions")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        let body = JSONValue.object([("prompt", .string(item.prompt)), ("max_tokens", .number(item.maxTokens))])
        request.body = .bytes(ByteBuffer(bytes: body.serialized()))
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(Int64(config.readyTimeout.seconds * 1e9)))
            let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
            return response.status == .ok ? nil : "HTTP \(response.status.code): \(text.prefix(200))"
        } catch {
            return "\(error)"
        }
    }

    /// SIGTERM, then SIGKILL after the grace period.
    func stopProcess() async {
        guard let process = self.process.withLock({ $0 }), process.isRunning else { return }
        process.terminate()
        let deadline = ContinuousClock.now + Self.stopGrace
        while process.isRunning, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// Drain-and-restart for rollouts: closes the gate, waits for in-flight requests through
    /// `waitIdle`, stops the process; the run loop starts it again at once (no backoff). Returns
    /// when the new process is ready, or false after `timeout`.
    package func rollingRestart(waitIdle: @escaping @Sendable () async -> Void, timeout: Duration) async -> Bool {
        onGate(false)
        update { $0.phase = .draining }
        await waitIdle()
        let previous = status.pid
        restartRequested.store(true, ordering: .relaxed)
        await stopProcess()
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let s = status
            if s.phase == .ready, s.pid != previous { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    package func pause() async {
        paused.store(true, ordering: .relaxed)
        onGate(false)
        await stopProcess()
    }

    package func resume() -> Bool {
        paused.exchange(false, ordering: .relaxed)
    }
}

/// Child output: logged at debug with the replica's name; the last lines are kept for errors.
final class LogTail: Sendable {
    private let lines = Mutex<(partial: String, recent: [String])>(("", []))
    let replica: String
    let logger: Logger

    init(replica: String, logger: Logger) {
        self.replica = replica
        self.logger = logger
    }

    func append(_ data: Data) {
        let complete = lines.withLock { s -> [String] in
            s.partial += String(decoding: data, as: UTF8.self)
            var parts = s.partial.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            s.partial = parts.removeLast()
            s.recent = Array((s.recent + parts).suffix(50))
            return parts
        }
        for line in complete where !line.isEmpty {
            logger.debug("\(line)", metadata: ["replica": "\(replica)"])
        }
    }

    func last(_ n: Int) -> String {
        lines.withLock { $0.recent.suffix(n).joined(separator: " | ") }
    }
}
