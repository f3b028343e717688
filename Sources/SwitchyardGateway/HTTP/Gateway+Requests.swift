import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import SwitchyardCore
import Synchronization
import UnixSignals

/// What every request goes through before the proxy: lane headers, API keys, request ids.
extension Gateway {
    /// `x-switchyard-lane` picks a configured lane; `x-switchyard-timeout-ms` shortens the deadline.
    func applyLaneHeaders(_ headers: HTTPFields, to request: inout ProxyRequest) throws(APIError) {
        try applyLaneHeaders(lane: headers[GatewayHeaders.lane], timeoutMs: headers[GatewayHeaders.timeoutMs], to: &request)
    }

    func applyLaneHeaders(lane: String?, timeoutMs: String?, to request: inout ProxyRequest) throws(APIError) {
        if let lane {
            guard config.lane(named: lane) != nil else {
                throw APIError.invalidRequest(
                    "Unknown lane '\(lane)' in x-switchyard-lane; configured lanes: \(config.lanes.map(\.name).joined(separator: ", ")).",
                    param: "x-switchyard-lane", code: "invalid_value")
            }
            request.lane = lane
        }
        if let text = timeoutMs {
            guard let ms = Int(text.trimmingCharacters(in: .whitespaces)), ms > 0 else {
                throw APIError.invalidRequest(
                    "Invalid x-switchyard-timeout-ms '\(text)': expected a positive whole number of milliseconds.",
                    param: "x-switchyard-timeout-ms", code: "invalid_value")
            }
            request.timeout = .milliseconds(ms)
        }
    }

    /// The tenant for a request's `Authorization: Bearer <key>`; any request passes as
    /// `anonymous` when no tenants are configured. Keys are compared by their SHA-256.
    func authenticate(_ request: Request) -> Result<String, APIError> {
        authenticate(authorization: tenantKeys.isEmpty ? nil : request.headers[.authorization])
    }

    func authenticate(authorization header: String?) -> Result<String, APIError> {
        let keys = tenantKeys
        guard !keys.isEmpty else { return .success("anonymous") }
        guard let header, header.hasPrefix("Bearer "), header.count > 7 else {
            return .failure(
                APIError(
                    status: 401, message: "You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY'.",
                    type: "invalid_request_error", code: "invalid_api_key"))
        }
        guard let tenant = keys.tenant(forKey: String(header.dropFirst(7))) else {
            return .failure(APIError(status: 401, message: "Incorrect API key provided.", type: "invalid_request_error", code: "invalid_api_key"))
        }
        return .success(tenant)
    }

    private static let idKeys: [UInt64] = {
        var rng = SystemRandomNumberGenerator()
        return [rng.next(), rng.next()]
    }()
    private static let idCounter = Atomic<UInt64>(0)

    /// Keeps a client's id when it is short and printable, else makes one.
    static func requestID(from header: String?) -> String {
        if let header, !header.isEmpty, header.count <= 128,
            header.unicodeScalars.allSatisfy({
                $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.:".unicodeScalars.contains($0))
            })
        {
            return header
        }
        // A counter through a bijective mix with random keys: unique in the process, not
        // sequential-looking, and no system call per request.
        let n = idCounter.wrappingAdd(1, ordering: .relaxed).newValue
        return String(unsafeUninitializedCapacity: 32) { bytes in
            for half in 0..<2 {
                var value = SplitMix64.mix(n &+ idKeys[half])
                for i in 0..<16 {
                    let digit = UInt8(truncatingIfNeeded: value & 0xF)
                    bytes[half * 16 + 15 - i] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
                    value >>= 4
                }
            }
            return 32
        }
    }
}
