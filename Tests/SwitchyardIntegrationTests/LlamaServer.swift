import AsyncHTTPClient
import Dispatch
import Foundation
import NIOCore

/// The real llama.cpp server (xllamacpp + SmolLM2-135M), started once per test process from the
/// project's venv (`scripts/bootstrap.sh`). It dies with the test process (parent-death signal).
actor LlamaServer {
    static let shared = LlamaServer()

    static let repoRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var python: String { repoRoot.appendingPathComponent(".venv/bin/python").path }

    struct NotAvailable: Error, CustomStringConvertible {
        let description: String
    }

    private var baseURL: String?

    /// The server's OpenAI base URL, starting it on first use.
    func url() async throws -> String {
        if let baseURL { return baseURL }
        let port = try await Self.start(arguments: ["--parallel", "4", "--ctx", "4096", "--embedding"])
        let url = "http://127.0.0.1:\(port)/v1"
        baseURL = url
        return url
    }

    /// Starts `scripts/llama_server.py` and waits until `/health` answers 200.
    /// The child needs no handle: it exits on SIGTERM, or with the test process (PR_SET_PDEATHSIG).
    static func start(arguments: [String]) async throws -> Int {
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw NotAvailable(description: "no venv at \(python): run scripts/bootstrap.sh (the README's test command does)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [repoRoot.appendingPathComponent("scripts/llama_server.py").path] + arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        let port = try await readPort(stdout.fileHandleForReading)
        try await waitHealthy(port: port, deadline: .now + .seconds(120))
        return port
    }

    static func readPort(_ handle: FileHandle) async throws -> Int {
        // Blocking reads run on a Dispatch queue, off the cooperative pool.
        let line: String = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var bytes: [UInt8] = []
                while true {
                    let data = handle.readData(ofLength: 1)
                    if data.isEmpty || data.first == UInt8(ascii: "\n") { break }
                    bytes.append(contentsOf: data)
                }
                continuation.resume(returning: String(decoding: bytes, as: UTF8.self))
            }
        }
        guard line.hasPrefix("PORT "), let port = Int(line.dropFirst(5)) else {
            throw NotAvailable(description: "llama_server.py exited without printing its port (got '\(line)')")
        }
        return port
    }

    static func waitHealthy(port: Int, deadline: ContinuousClock.Instant) async throws {
        while ContinuousClock.now < deadline {
            if let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/health"), timeout: .seconds(2)),
                response.status == .ok
            {
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw NotAvailable(description: "llama.cpp server on port \(port) did not become healthy")
    }
}
