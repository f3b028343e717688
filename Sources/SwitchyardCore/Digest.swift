import Crypto

/// Hex digests (swift-crypto): API keys are stored and compared as SHA-256 hashes; specs and
/// runs are identified by theirs.
package enum Digest {
    package static func sha256Hex(_ text: String) -> String {
        sha256Hex(Array(text.utf8))
    }

    package static func sha256Hex(_ bytes: some Collection<UInt8>) -> String {
        Crypto.SHA256.hash(data: Array(bytes)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
