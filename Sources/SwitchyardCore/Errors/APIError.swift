/// An error returned to API clients, in OpenAI's shape:
/// `{"error":{"message":…,"type":…,"param":…,"code":…}}`.
///
/// A struct with a code rather than an enum, so new cases never break callers.
package struct APIError: Error, Sendable, Equatable, CustomStringConvertible {
    package var status: Int
    package var message: String
    package var type: String
    package var param: String?
    package var code: String?
    /// Seconds after which a retry may succeed (sent as `Retry-After`).
    package var retryAfterSeconds: Int?

    package init(status: Int, message: String, type: String, param: String? = nil, code: String? = nil, retryAfterSeconds: Int? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retryAfterSeconds = retryAfterSeconds
    }

    package var description: String { "\(status) \(code ?? type): \(message)" }

    package var json: JSONValue {
        .object([
            (
                "error",
                .object([
                    ("message", .string(message)),
                    ("type", .string(type)),
                    ("param", param.map(JSONValue.string) ?? .null),
                    ("code", code.map(JSONValue.string) ?? .null),
                ])
            )
        ])
    }

    package static func invalidRequest(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, type: "invalid_request_error", param: param, code: code)
    }

    package static func modelNotFound(_ model: String) -> APIError {
        APIError(
            status: 404, message: "The model '\(model)' does not exist or you do not have access to it.",
            type: "invalid_request_error", param: "model", code: "model_not_found")
    }

    package static func notFound(_ path: String) -> APIError {
        APIError(status: 404, message: "Unknown request URL: \(path).", type: "invalid_request_error", code: "unknown_url")
    }

    package static func payloadTooLarge(limit: Int) -> APIError {
        APIError(
            status: 413, message: "Request body exceeds the limit of \(limit) bytes.",
            type: "invalid_request_error", code: "request_too_large")
    }

    package static func unsupportedMediaType(_ contentType: String?) -> APIError {
        APIError(
            status: 415, message: "Content-Type must be application/json, got '\(contentType ?? "none")'.",
            type: "invalid_request_error", code: "unsupported_media_type")
    }

    package static func unavailable(_ message: String, code: String, retryAfterSeconds: Int? = 1) -> APIError {
        APIError(status: 503, message: message, type: "server_error", code: code, retryAfterSeconds: retryAfterSeconds)
    }

    package static func upstream(_ message: String, status: Int = 502, code: String = "upstream_error") -> APIError {
        APIError(status: status, message: message, type: "server_error", code: code)
    }

    /// The shutdown grace ran out while the request was still running or waiting.
    package static let serverShutdown = APIError(
        status: 503, message: "The gateway is shutting down and its shutdown grace ran out; retry on another replica.",
        type: "server_error", code: "server_shutdown", retryAfterSeconds: 1)

    package static func timeout(_ message: String) -> APIError {
        APIError(status: 504, message: message, type: "server_error", code: "timeout")
    }
}
