import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import SwitchyardCore

package enum GatewayHeaders {
    package static let requestID = HTTPField.Name("x-request-id")!
    package static let backend = HTTPField.Name("x-switchyard-backend")!
    package static let attempts = HTTPField.Name("x-switchyard-attempts")!
    package static let retryAfter = HTTPField.Name("retry-after")!
    /// Request: lane to queue in (realtime, streaming, batch, or a configured one).
    package static let lane = HTTPField.Name("x-switchyard-lane")!
    /// Request: a shorter deadline than the lane's, in milliseconds.
    package static let timeoutMs = HTTPField.Name("x-switchyard-timeout-ms")!
    /// Response: the lane the request was served in.
    package static let servedLane = HTTPField.Name("x-switchyard-lane")!
    /// Response: times the request was preempted (only when it was).
    package static let preemptions = HTTPField.Name("x-switchyard-preemptions")!
    /// Response: inputs in the upstream embeddings request this one was merged into.
    package static let coalesced = HTTPField.Name("x-switchyard-coalesced")!
    /// Response: where the time went, hop by hop (``HopTiming``).
    package static let serverTiming = HTTPField.Name("server-timing")!
}

/// Response headers the gateway adds, in whichever header type the path writes. They go into
/// headers being built, which hold none of these names yet.
protocol GatewayHeaderFields {
    mutating func setGatewayField(_ name: HTTPField.Name, _ value: String)
}

extension HTTPFields: GatewayHeaderFields {
    mutating func setGatewayField(_ name: HTTPField.Name, _ value: String) { self[name] = value }
}

extension HTTPHeaders: GatewayHeaderFields {
    mutating func setGatewayField(_ name: HTTPField.Name, _ value: String) { add(name: name.rawName, value: value) }
}

enum GatewayResponses {
    static func error(_ error: APIError, headers: HTTPFields = [:]) -> Response {
        let (head, body) = errorParts(error, headers: headers)
        return Response(status: head.status, headers: head.headerFields, body: .init(byteBuffer: body))
    }

    /// An error in OpenAI's shape as a response head and body (for the event-loop fast path).
    static func errorParts(_ error: APIError, headers: HTTPFields = [:]) -> (HTTPResponse, ByteBuffer) {
        var headers = headers
        headers[.contentType] = "application/json"
        if let seconds = error.retryAfterSeconds { headers[GatewayHeaders.retryAfter] = String(seconds) }
        return (HTTPResponse(status: .init(code: error.status), headerFields: headers), ByteBuffer(bytes: error.json.serialized()))
    }

    static func json(_ value: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: value.serialized())))
    }
}

/// Turns every error that escapes a route (unknown URL, wrong method, framework errors) into
/// OpenAI's error shape, and stamps `x-request-id` on every response.
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as any HTTPResponseError {
            let status = Int(error.status.code)
            let apiError: APIError
            switch status {
            case 404: apiError = .notFound("\(request.method) \(request.uri.path)")
            case 405:
                apiError = APIError(
                    status: 405, message: "Method \(request.method) is not allowed on \(request.uri.path).",
                    type: "invalid_request_error", code: "method_not_allowed")
            case 413: apiError = APIError(status: 413, message: "Request body too large.", type: "invalid_request_error", code: "request_too_large")
            default: apiError = APIError(status: status, message: "\(error)", type: status >= 500 ? "server_error" : "invalid_request_error")
            }
            return GatewayResponses.error(apiError)
        } catch {
            return GatewayResponses.error(APIError(status: 500, message: "Internal error: \(error)", type: "server_error"))
        }
    }
}
