import Testing

@testable import SwitchyardCore

/// `switchyard describe`: the serving path of a fixture configuration (the default lanes merged
/// in, as the gateway serves it), as a checked Mermaid text.
@Suite struct ServingPathTests {
    static let fixture = """
        server: { host: 0.0.0.0, port: 8080 }
        lanes:
          realtime: { priority: 0, slo: { ttft: 2s, tpot: 100ms } }
          batch: { priority: 2, min_share: 0.1, preemptible: true, queue: { max_size: 0, timeout: 1h, timeout_action: delay } }
        models:
          - name: llama-8b
            fallback: [smollm2]
            backends:
              - { url: "http://10.0.0.5:8000/v1", max_inflight: 64 }
              - { url: "http://10.0.0.6:8000/v1" }
          - name: smollm2
            backends: [{ url: "http://127.0.0.1:8081/v1", max_inflight: 4 }]
        """

    static let expected = """
        flowchart LR
          listener["listener 0.0.0.0:8080<br/>http, event-loop fast path"]
          subgraph lanes [lanes]
            lane_realtime["realtime<br/>priority 0<br/>queue ≤ 1024<br/>SLO ttft 2s, tpot 100ms"]
            lane_streaming["streaming<br/>priority 0<br/>queue ≤ 1024"]
            lane_batch["batch<br/>priority 2<br/>queue unbounded, delay after 1h<br/>share ≥ 10%, share ≤ 50%, preemptible"]
          end
          listener --> lane_realtime
          listener --> lane_streaming
          listener --> lane_batch
          subgraph pool_llama_8b ["model llama-8b<br/>configured<br/>routing: least outstanding"]
            replica_llama_8b_0["llama-8b-0<br/>http://10.0.0.5:8000/v1<br/>max 64<br/>configured"]:::configured
            replica_llama_8b_1["llama-8b-1<br/>http://10.0.0.6:8000/v1<br/>capacity discovered<br/>configured"]:::configured
          end
          lane_realtime --> pool_llama_8b
          lane_streaming --> pool_llama_8b
          lane_batch --> pool_llama_8b
          subgraph pool_smollm2 ["model smollm2<br/>configured<br/>routing: least outstanding"]
            replica_smollm2_0["smollm2-0<br/>http://127.0.0.1:8081/v1<br/>max 4<br/>configured"]:::configured
          end
          lane_realtime --> pool_smollm2
          lane_streaming --> pool_smollm2
          lane_batch --> pool_smollm2
          pool_llama_8b -. "fallback 1" .-> pool_smollm2
          telemetry["GET /metrics<br/>GET /healthz, /readyz<br/>GET /admin/backends, /admin/describe<br/>GET /openapi.json"]
          listener -.- telemetry
          classDef configured fill:#eef2f7,stroke:#5b6b80
          classDef serving fill:#dcf5dc,stroke:#2a7a2a
          classDef closed fill:#fff3cd,stroke:#a07800
          classDef down fill:#fbdada,stroke:#b02020

        """

    @Test func theFixtureDrawsAsChecked() throws {
        let path = ServingPath(config: try ConfigLoader.load(yaml: Self.fixture))
        #expect(path.mermaid == Self.expected, "\n\(path.mermaid)")
        // The picture holds every node, escaped.
        #expect(path.svg.hasPrefix("<svg ") && path.svg.contains("llama-8b-1") && path.svg.contains("fallback 1"))
        #expect(path.html(title: "a <b>").contains("a &lt;b&gt;"))
    }

    @Test func liveReplicasAreDrawnInTheirState() throws {
        let live = [
            "llama-8b": [
                ServingPath.Replica(id: "llama-8b-0", url: "http://10.0.0.5:8000/v1", detail: "64 slots (config)", state: "serving", inflight: 3),
                ServingPath.Replica(id: "llama-8b-1", url: "http://10.0.0.6:8000/v1", detail: "4 slots (props)", state: "draining", inflight: 1),
                ServingPath.Replica(id: "llama-8b-2", url: "http://10.0.0.7:8000/v1", detail: "4 slots (props)", state: "unhealthy"),
            ]
        ]
        let text = ServingPath(config: try ConfigLoader.load(yaml: Self.fixture), live: live).mermaid
        #expect(
            text.contains(#"replica_llama_8b_0["llama-8b-0<br/>http://10.0.0.5:8000/v1<br/>64 slots (config)<br/>serving, 3 in flight"]:::serving"#))
        #expect(text.contains(":::closed") && text.contains(":::down"))
        #expect(text.contains(#"replica_smollm2_0["smollm2-0<br/>http://127.0.0.1:8081/v1<br/>max 4<br/>configured"]:::configured"#))
    }
}
