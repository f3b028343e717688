import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import SwitchyardBatch
import SwitchyardCore
import Synchronization

/// The Files and Batches APIs (``BatchService``), and the gateway as the batch worker's way to
/// the model servers: items go through the batch lane like any request.
extension Gateway: BatchExecutor {
    func addBatchRoutes(to router: RouteRecorder<GatewayContext>) {
        router.post("/v1/files") { [self] request, _ in
            await withBatch(request) { service, tenant in
                await service.upload(tenant: tenant, contentType: request.headers[.contentType], body: request.body)
            }
        }
        router.get("/v1/files") { [self] request, _ in
            await withBatch(request) { service, tenant in
                let query = request.uri.queryParameters
                return await service.files(
                    tenant: tenant, purpose: query["purpose"].map(String.init), after: query["after"].map(String.init),
                    limit: query["limit"].flatMap { Int(String($0)) })
            }
        }
        router.get("/v1/files/:id") { [self] request, context in
            await withBatch(request) { service, tenant in await service.file(context.parameters.get("id") ?? "", tenant: tenant) }
        }
        router.delete("/v1/files/:id") { [self] request, context in
            await withBatch(request) { service, tenant in await service.deleteFile(context.parameters.get("id") ?? "", tenant: tenant) }
        }
        router.get("/v1/files/:id/content") { [self] request, context in
            guard let service = batch else { return GatewayResponses.error(Self.batchOff) }
            let tenant: String
            switch authenticate(request) {
            case .success(let t): tenant = t
            case .failure(let error): return GatewayResponses.error(error)
            }
            switch await service.content(context.parameters.get("id") ?? "", tenant: tenant) {
            case .failure(let error): return GatewayResponses.error(error)
            case .success(let (file, stream)):
                return Response(
                    status: .ok,
                    headers: [.contentType: "application/jsonl", .contentDisposition: "attachment; filename=\"\(file.filename)\""],
                    body: ResponseBody(asyncSequence: stream))
            }
        }
        router.post("/v1/batches") { [self] request, _ in
            await withBatch(request) { service, tenant in
                var request = request
                guard let body = try? await request.collectBody(upTo: 64 * 1024) else {
                    return .failure(.invalidRequest("The request body is missing or larger than 64 KiB."))
                }
                return await service.createBatch(tenant: tenant, body: body)
            }
        }
        router.get("/v1/batches") { [self] request, _ in
            await withBatch(request) { service, tenant in
                let query = request.uri.queryParameters
                return await service.batches(
                    tenant: tenant, after: query["after"].map(String.init), limit: query["limit"].flatMap { Int(String($0)) })
            }
        }
        router.get("/v1/batches/:id") { [self] request, context in
            await withBatch(request) { service, tenant in await service.batch(context.parameters.get("id") ?? "", tenant: tenant) }
        }
        router.post("/v1/batches/:id/cancel") { [self] request, context in
            await withBatch(request) { service, tenant in await service.cancel(context.parameters.get("id") ?? "", tenant: tenant) }
        }
    }

    static let batchOff = APIError(
        status: 404, message: "The Files and Batches APIs are not enabled on this gateway.", type: "invalid_request_error", code: "batch_disabled")

    /// Authenticates, calls the batch service, and answers its JSON or its error.
    private func withBatch(
        _ request: Request, _ body: (BatchService, String) async -> Result<JSONValue, APIError>
    ) async -> Response {
        guard let service = batch else { return GatewayResponses.error(Self.batchOff) }
        switch authenticate(request) {
        case .failure(let error): return GatewayResponses.error(error)
        case .success(let tenant):
            switch await body(service, tenant) {
            case .success(let json): return GatewayResponses.json(json)
            case .failure(let error): return GatewayResponses.error(error)
            }
        }
    }

    // MARK: BatchExecutor

    package func executeBatchItem(endpoint: String, body: [UInt8], tenant: String, requestID: String) async -> (status: Int?, body: [UInt8]) {
        guard let kind = Endpoint(rawValue: String(endpoint.dropFirst(3))) else {
            return (400, Array(#"{"error":{"message":"unsupported endpoint","type":"invalid_request_error"}}"#.utf8))
        }
        var parsed: ProxyRequest
        do {
            parsed = try ProxyRequest.parse(endpoint: kind, bytes: body, requestID: requestID)
        } catch {
            return (error.status, error.json.serialized())
        }
        parsed.tenant = tenant
        parsed.lane = LaneConfig.batch
        let response = await proxy.handle(parsed, channel: nil, logger: logger)
        let collector = BodyCollector()
        do {
            try await response.body.write(CollectingWriter(collector: collector))
        } catch {
            return (nil, Array("the answer broke off: \(error)".utf8))
        }
        let bytes = collector.bytes.withLock { $0 }
        // A gateway-made 503 (no backend came) is retried like an upstream's.
        return (response.status.code, bytes)
    }

    package var batchItemSlots: Int {
        if let fixed = config.batch.concurrency { return fixed }
        let share = config.lane(named: LaneConfig.batch)?.maxInflightShare ?? 1
        var slots = 0
        for pool in pools.values {
            let limits = pool.snapshot().filter { $0.gateOpen && $0.healthy }.map(\.capacity.limit)
            if limits.isEmpty { continue }
            if limits.contains(0) {
                slots += 8 * limits.count
            } else {
                // Twice what the lane may run, so a freed slot finds the next item waiting.
                slots += max(2, 2 * Int((share * Double(limits.reduce(0, +))).rounded(.up)))
            }
        }
        return max(slots, 1)
    }

    package var batchRetry: (maxAttempts: Int, backoff: Duration) {
        let lane = config.lane(named: LaneConfig.batch)
        return (lane?.retry.maxAttempts ?? config.retry.maxAttempts, lane?.retry.backoff ?? .zero)
    }
}

final class BodyCollector: Sendable {
    let bytes = Mutex<[UInt8]>([])
}

struct CollectingWriter: ResponseBodyWriter {
    let collector: BodyCollector
    mutating func write(_ buffer: ByteBuffer) async throws {
        collector.bytes.withLock { $0.append(contentsOf: buffer.readableBytesView) }
    }
    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
