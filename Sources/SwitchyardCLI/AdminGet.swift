import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore

/// `GET BASE/PATH` on a gateway's admin API with its token: the body of a 200, else an error
/// that names the call and what the gateway said.
enum AdminGet {
    static func fetch(_ gateway: String, _ path: String, token: String?, timeout: Int64 = 30) async throws -> ByteBuffer {
        let base = gateway.hasSuffix("/") ? String(gateway.dropLast()) : gateway
        var request = HTTPClientRequest(url: base + path)
        // A token on the command line shows in `ps`; the environment is the quieter place for it.
        if let token = token ?? ProcessInfo.processInfo.environment["SWITCHYARD_ADMIN_TOKEN"] {
            request.headers.add(name: "authorization", value: "Bearer \(token)")
        }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(timeout))
        } catch {
            throw ValidationError("GET \(base)\(path): \(error)")
        }
        let body = try await response.body.collect(upTo: 16 << 20)
        guard response.status.code == 200 else {
            throw ValidationError("GET \(base)\(path) answered \(response.status.code): \(String(buffer: body).prefix(300))")
        }
        return body
    }
}
