import Crypto

/// Hex digests (swift-crypto): API keys are stored and compared as SHA-256 hashes; specs and
/// runs are identified by theirs.
public enum Digest {
    public static func sha256Hex(_ text: String) -> String {
        sha256Hex(Array(text.utf8))
    }

    public static func sha256Hex(_ bytes: some Collection<UInt8>) -> String {
        Crypto.SHA256.hash(data: Array(bytes)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
