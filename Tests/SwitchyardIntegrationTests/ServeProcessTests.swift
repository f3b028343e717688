import AsyncHTTPClient
import Dispatch
import Foundation
import NIOCore
import Testing
import SwitchyardCore
import SwitchyardTestSupport

/// The real `switchyard serve` binary: quick-start flags, banner, SIGTERM drains in-flight streams.
@Suite(.serialized) struct ServeProcessTests {
    static var binary: String { LlamaServer.repoRoot.appendingPathComponent(".build/debug/switchyard").path }

    @Test func sigtermLetsTheInFlightStreamFinishThenExits() async throws {
        let url = try await LlamaServer.shared.url()
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build the package first (swift build)")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["serve", "--host", "127.0.0.1", "--port", "0", "--upstream", "smollm2=\(url)"]
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        // The banner names the URL (port 0 → the bound port) and a curl example.
        let handle = stdout.fileHandleForReading
        let banner: String = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var text = ""
                while !text.contains("try: curl") {
                    let data = handle.availableData
                    if data.isEmpty { break }
                    text += String(decoding: data, as: UTF8.self)
                }
                continuation.resume(returning: text)
            }
        }
        let base = try #require(banner.split(separator: " ").first { $0.hasPrefix("http://127.0.0.1:") && $0.hasSuffix("/v1\n") || $0.hasSuffix("/v1") })
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let deadline = ContinuousClock.now + .seconds(10)
        while (try? await TestClient.get(base.replacingOccurrences(of: "/v1", with: "/readyz")).status) != 200, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }

        var request = HTTPClientRequest(url: "\(base)/chat/completions")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: #"{"model":"smollm2","messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":48,"stream":true}"#))
        let response = try await TestClient.http.execute(request, timeout: .seconds(60))
        #expect(response.status == .ok)
        kill(process.processIdentifier, SIGTERM)
        let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
        #expect(TestClient.events(body).last == "[DONE]", "the stream in flight at SIGTERM completed")
        let exited: Int32 = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
        #expect(exited == 0)
    }
}
