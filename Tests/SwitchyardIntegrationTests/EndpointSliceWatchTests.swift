import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import SwitchyardCore
import SwitchyardTestSupport
import Synchronization
import Testing

@testable import SwitchyardGateway

/// EndpointSlice discovery against a local HTTPS server that speaks the list-and-watch protocol
/// (a bearer token, a CA only the kubeconfig trusts, one JSON event per line on a held response).
@Suite(.serialized, .tags(.timing)) struct EndpointSliceWatchTests {
    final class FakeAPI: Sendable {
        let slices = Mutex<[String: String]>([:])
        let watchers = Mutex<[AsyncStream<ByteBuffer>.Continuation]>([])
        let lists = Atomic<Int>(0)

        static func slice(_ name: String, port: Int, ready: Bool = true) -> String {
            #"{"metadata":{"name":"\#(name)","labels":{"kubernetes.io/service-name":"vllm"}},"addressType":"IPv4","ports":[{"name":"http","port":\#(port),"protocol":"TCP"}],"endpoints":[{"addresses":["127.0.0.1"],"conditions":{"ready":\#(ready)}}]}"#
        }

        func router() -> Router<BasicRequestContext> {
            let router = Router()
            router.get("/apis/discovery.k8s.io/v1/namespaces/ml/endpointslices") { request, _ -> Response in
                guard request.headers[.authorization] == "Bearer \(KubeLiveAPITests.token)" else { return Response(status: .unauthorized) }
                guard request.uri.queryParameters["labelSelector"] == "kubernetes.io/service-name=vllm" else { return Response(status: .badRequest) }
                if request.uri.queryParameters["watch"] == "true" {
                    let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream()
                    self.watchers.withLock { $0.append(continuation) }
                    return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(asyncSequence: stream))
                }
                self.lists.add(1, ordering: .relaxed)
                let items = self.slices.withLock { table in table.keys.sorted().compactMap { table[$0] } }
                return Response(
                    status: .ok, headers: [.contentType: "application/json"],
                    body: .init(
                        byteBuffer: ByteBuffer(
                            string: #"{"kind":"EndpointSliceList","metadata":{"resourceVersion":"100"},"items":[\#(items.joined(separator: ","))]}"#))
                )
            }
            return router
        }

        var watching: Int { watchers.withLock { $0.count } }

        /// One watch event to every open watch; the table the next list serves follows it.
        func send(_ type: String, _ name: String, _ slice: String) {
            slices.withLock { $0[name] = type == "DELETED" ? nil : slice }
            let line = ByteBuffer(string: #"{"type":"\#(type)","object":\#(slice)}"# + "\n")
            for watcher in watchers.withLock({ $0 }) { watcher.yield(line) }
        }

        func raw(_ line: String) {
            for watcher in watchers.withLock({ $0 }) { watcher.yield(ByteBuffer(string: line + "\n")) }
        }

        func endWatches() {
            let ended = watchers.withLock { list in
                defer { list.removeAll() }
                return list
            }
            for watcher in ended { watcher.finish() }
        }
    }

    static func urls(_ gateway: Gateway) -> [String] {
        gateway.pools["m"]!.snapshot().filter { $0.state == .serving }.map(\.backend.id).sorted()
    }

    @Test func slicesAddedChangedAndDeletedMoveThePool() async throws {
        let dir = ManagedServeTests.tempDir()
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let (cert, key) = try KubeLiveAPITests.certificate(in: dir)
        let api = FakeAPI()
        let (apiPort, server) = try await KubeLiveAPITests.serveTLS(api.router(), cert: cert, key: key)
        defer {
            api.endWatches()
            server.cancel()
        }
        let kubeconfig = try KubeLiveAPITests.kubeconfig(dir, port: apiPort, ca: cert, token: KubeLiveAPITests.token)

        let (a, b) = (TestUpstream(), TestUpstream())
        try await a.run { pa in
            try await b.run { pb in
                api.send("ADDED", "vllm-a", FakeAPI.slice("vllm-a", port: pa))
                var endpoints = DiscoveryConfig.KubernetesEndpoints(service: "vllm")
                endpoints.namespace = "ml"
                endpoints.port = "http"
                endpoints.kubeconfig = kubeconfig
                var discovery = DiscoveryConfig(source: .kubernetes(endpoints))
                discovery.path = "/ok/v1"
                discovery.upstreamModel = "upstream-model"
                discovery.minInterval = .milliseconds(50)
                var model = ModelConfig(name: "m", backends: [])
                model.discovery = discovery
                let (urlA, urlB) = ("http://127.0.0.1:\(pa)/ok/v1", "http://127.0.0.1:\(pb)/ok/v1")
                try await GatewayHarness.with(GatewayHarness.config(models: [model])) { gateway, base in
                    #expect(await Poll.until { Self.urls(gateway) == [urlA] }, "listed")
                    let first = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
                    #expect(first.status == 200)
                    #expect(await Poll.until { api.watching == 1 }, "then watched")

                    api.send("ADDED", "vllm-b", FakeAPI.slice("vllm-b", port: pb))
                    #expect(await Poll.until { Self.urls(gateway) == [urlA, urlB].sorted() }, "a slice added by the watch")
                    api.send("MODIFIED", "vllm-a", FakeAPI.slice("vllm-a", port: pa, ready: false))
                    #expect(await Poll.until { Self.urls(gateway) == [urlB] }, "an endpoint no longer ready leaves")
                    let second = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
                    #expect(second.status == 200 && b.count("ok") == 1)
                    api.raw(#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"120"}}}"#)
                    api.send("DELETED", "vllm-b", FakeAPI.slice("vllm-b", port: pb))
                    api.send("MODIFIED", "vllm-a", FakeAPI.slice("vllm-a", port: pa))
                    #expect(await Poll.until { Self.urls(gateway) == [urlA] }, "deleted and back")

                    // The watch ends (the server's timeoutSeconds): the slices are listed again.
                    let lists = api.lists.load(ordering: .relaxed)
                    api.endWatches()
                    #expect(await Poll.until { api.lists.load(ordering: .relaxed) > lists && api.watching == 1 }, "relisted, watching again")
                    // 410 Gone: listed again.
                    api.raw(#"{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old resource version"}}"#)
                    #expect(await Poll.until { api.lists.load(ordering: .relaxed) > lists + 1 })
                    #expect(Self.urls(gateway) == [urlA])
                    let last = try await TestClient.post("\(base)/v1/chat/completions", TestClient.chat())
                    #expect(last.status == 200)
                    api.endWatches()
                }
            }
        }
    }
}
