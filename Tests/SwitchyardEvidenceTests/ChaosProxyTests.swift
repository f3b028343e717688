import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardEvidence

@Suite(.serialized, .tags(.timing)) struct ChaosProxyTests {
    /// Runs `body` with a chaos proxy in front of the timed upstream; gets the proxy's base URL.
    static func withProxy(_ body: @escaping @Sendable (ChaosProxy, String) async throws -> Void) async throws {
        try await TimedUpstream.run { upstream in
            let origin = HTTPURL(upstream)!.origin
            let proxy = try ChaosProxy(upstream: origin, seed: 3)
            let (ports, continuation) = AsyncStream<Int>.makeStream()
            let task = Task { try await proxy.run(port: 0) { continuation.yield($0) } }
            defer { task.cancel() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            try await body(proxy, "http://127.0.0.1:\(port)/v1")
        }
    }

    static func load(_ url: String, requests: Int = 4) async throws -> [RequestRecord] {
        var options = BenchOptions(baseURL: url, model: "ok", load: .concurrency(2))
        options.requests = requests
        options.workload.outputTokens = .fixed(6)
        return try await LoadRunner(options: options, threads: 1).run()
    }

    @Test func eachFaultDoesWhatItSays() async throws {
        try await Self.withProxy { proxy, url in
            let clean = try await Self.load(url)
            #expect(clean.allSatisfy { $0.succeeded }, "no faults: a transparent proxy \(clean.compactMap(\.error))")

            var faults = ChaosFaults()
            faults.status503Rate = 1
            proxy.set(faults)
            let refused = try await Self.load(url)
            #expect(refused.allSatisfy { $0.status == 503 && $0.error?.contains("injected 503") == true })

            faults = ChaosFaults()
            faults.resetRate = 1
            proxy.set(faults)
            let reset = try await Self.load(url)
            #expect(reset.allSatisfy { !$0.succeeded && $0.status == nil }, "\(reset.map(\.error))")

            faults = ChaosFaults()
            faults.latency = .milliseconds(100)
            faults.stallRate = 1
            // Chunk 1 is the role chunk, sent at once; tokens follow 50 ms later: stalling after
            // it holds the stream mid-way, before the first token, on every request.
            faults.stallAfterChunks = 1
            faults.stallFor = .milliseconds(300)
            proxy.set(faults)
            let slow = try await Self.load(url)
            #expect(slow.allSatisfy { $0.succeeded })
            #expect(slow.allSatisfy { ($0.ttft ?? 0) >= 0.39 }, "100 ms added latency + 300 ms stall: \(slow.map(\.ttft))")
            let counts = proxy.injected
            #expect(counts["status503"] == 4 && counts["reset"] == 4 && counts["stalled"] == 4)
        }
    }

    @Test func onlyLoopbackTargets() {
        #expect(throws: ConfigError.self) { try ChaosProxy(upstream: "http://10.0.0.1:8000") }
    }
}
