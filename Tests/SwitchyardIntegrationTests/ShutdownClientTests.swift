import Dispatch
import Foundation
import SwitchyardCore
import SwitchyardTestSupport
import Testing

@testable import SwitchyardGateway

/// What the official `openai` Python client makes of a stream the shutdown grace ended: an error
/// it raises (the SSE error event), not a stream that just stops.
@Suite(.tags(.timing)) struct ShutdownClientTests {
    static let script = """
        import sys, openai
        client = openai.OpenAI(base_url=sys.argv[1], api_key="x", max_retries=0)
        n = 0
        try:
            for chunk in client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True):
                n += 1
            print(f"ended without an error after {n} chunks")
        except openai.APIError as e:
            print(f"APIError after {n} chunks: {e.message} code={getattr(e, 'code', None)} body={e.body}")
        """

    @Test func theOpenAIClientRaisesOnAStreamEndedByTheGrace() async throws {
        let upstream = TestUpstream()
        try await upstream.run { port in
            let config = GatewayHarness.config(models: [GatewayHarness.model("m", ["http://127.0.0.1:\(port)/endless/v1"])]) {
                $0.server.shutdownGrace = .seconds(1)
            }
            try await GatewayHarness.with(config) { gateway, base in
                async let client = BenchCommandTests.runDetached(LlamaServer.python, ["-c", Self.script, "\(base)/v1"])
                #expect(await Poll.until(.seconds(20)) { upstream.count("endless") > 0 }, "the client's stream reached the upstream")
                await gateway.shutdown()
                let text = try await client.output
                #expect(text.contains("APIError after"), "\(text)")
                #expect(text.contains("server_shutdown") || text.contains("shutting down"), "\(text)")
            }
        }
    }
}
