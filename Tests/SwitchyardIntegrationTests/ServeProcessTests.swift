import AsyncHTTPClient
import Dispatch
import Foundation
import NIOCore
import SwitchyardCore
import SwitchyardTestSupport
import Testing

/// The real `switchyard serve` binary: quick-start flags, banner, SIGTERM drains in-flight streams.
@Suite(.serialized, .tags(.timing)) struct ServeProcessTests {
    static var binary: String { LlamaServer.repoRoot.appendingPathComponent(".build/debug/switchyard").path }

    @Test func sigtermLetsTheInFlightStreamFinishThenExits() async throws {
        let url = try await LlamaServer.shared.url()
        try #require(FileManager.default.isExecutableFile(atPath: Self.binary), "build the package first (swift build)")
        let dataDir = ManagedServeTests.tempDir()
        defer { try? FileManager.default.removeItem(at: dataDir) }
        // The banner (port 0 → the bound port) comes once /readyz answers 200: the first health
        // checks passed, so what is sent right after it is served.
        let served = try await ManagedServeTests.Served(arguments: ["--upstream", "smollm2=\(url)"], dataDir: dataDir)
        #expect(try await TestClient.get(served.base.replacingOccurrences(of: "/v1", with: "/readyz")).status == 200, "ready when it says so")

        var request = HTTPClientRequest(url: "\(served.base)/chat/completions")
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(
            ByteBuffer(string: #"{"model":"smollm2","messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":48,"stream":true}"#))
        let response = try await TestClient.http.execute(request, timeout: .seconds(60))
        #expect(response.status == .ok)
        kill(served.process.processIdentifier, SIGTERM)
        let body = String(buffer: try await response.body.collect(upTo: 1 << 20))
        #expect(TestClient.events(body).last == "[DONE]", "the stream in flight at SIGTERM completed")
        #expect(await served.stop() == 0)
        // With --upstream only, the start-up log names the capacity llama.cpp reported.
        #expect(served.logText.contains("backend capacity discovered: 4 requests at once (llama.cpp /props total_slots)"), "\(served.logText)")
    }
}
