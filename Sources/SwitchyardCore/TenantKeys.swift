import Crypto

/// API keys → tenants, by the keys' SHA-256 (the keys themselves are never stored).
///
/// A presented key is hashed, its digest's first 8 bytes pick the candidates (an integer
/// compare), and each candidate's full digest is compared in constant time: how long the
/// check takes says nothing about how much of a stored digest matched.
package struct TenantKeys: Sendable {
    private var buckets: [UInt64: [(digest: [UInt8], tenant: String)]] = [:]
    package private(set) var count = 0

    package init(_ tenants: [TenantConfig]) {
        for tenant in tenants {
            guard let digest = Self.bytes(hex: tenant.apiKeySHA256) else { continue }
            buckets[Self.prefix(digest), default: []].append((digest, tenant.name))
            count += 1
        }
    }

    package var isEmpty: Bool { count == 0 }

    /// The tenant whose key this is, if any.
    package func tenant(forKey key: String) -> String? {
        let digest = Array(SHA256.hash(data: Array(key.utf8)))
        var found: String?
        for candidate in buckets[Self.prefix(digest)] ?? [] where Self.constantTimeEqual(candidate.digest, digest) {
            found = candidate.tenant
        }
        return found
    }

    /// Equal contents, in time that depends only on the lengths.
    package static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return diff == 0
    }

    static func prefix(_ digest: [UInt8]) -> UInt64 {
        digest.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    static func bytes(hex: String) -> [UInt8]? {
        let chars = Array(hex.utf8)
        guard chars.count == 64 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        var i = 0
        while i < 64 {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// A new API key: `sk-sy-` and 43 URL-safe base64 characters of 32 random bytes from the
    /// system's CSPRNG.
    package static func generate() -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &rng) }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out = "sk-sy-"
        var bits = 0
        var value = 0
        for byte in bytes {
            value = value << 8 | Int(byte)
            bits += 8
            while bits >= 6 {
                bits -= 6
                out.append(Character(Unicode.Scalar(alphabet[(value >> bits) & 63])))
            }
        }
        if bits > 0 { out.append(Character(Unicode.Scalar(alphabet[(value << (6 - bits)) & 63]))) }
        return out
    }
}
