import Logging
import SwitchyardCore
import SwitchyardScheduling

/// Merging single-input embeddings requests is only allowed where it does not change the
/// answers: some engines compute a batch differently (llama.cpp's embeddings of a batch of 8
/// differed from the single ones, cosine 0.84). Each replica of a model that coalesces embeds a
/// few probe inputs singly and as one batch, at start and whenever it comes back; if any vector
/// differs (cosine below ``minCosine``), merged requests are not sent to it.
struct BatchingCheck {
    static let probes = [
        "switchyard batching probe: the quick brown fox jumps over the lazy dog",
        "switchyard batching probe: 42",
        "switchyard batching probe: a longer sentence, so the inputs of the batch differ in length as real traffic does",
        "switchyard batching probe: ok",
    ]
    static let minCosine = 0.9999

    let client: UpstreamClient
    let timeout: Duration
    let metrics: GatewayMetrics
    let logger: Logger

    /// Compares the vectors and returns the verdict, or why it could not tell.
    static func compare(single: [[Double]], batch: [[Double]]) -> PoolStateMachine.BatchCheck {
        guard single.count == batch.count else { return .variant(why: "the batch answered \(batch.count) vectors for \(single.count) inputs") }
        var worst = 1.0
        for (a, b) in zip(single, batch) {
            guard a.count == b.count, !a.isEmpty else { return .variant(why: "vector lengths differ (\(a.count) alone, \(b.count) in a batch)") }
            worst = min(worst, cosine(a, b))
        }
        return worst >= minCosine
            ? .invariant : .variant(why: "cosine \(String(format: "%.4f", worst)) between an input's vector alone and in a batch")
    }

    static func cosine(_ a: [Double], _ b: [Double]) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for (x, y) in zip(a, b) {
            dot += x * y
            na += x * x
            nb += y * y
        }
        guard na > 0, nb > 0 else { return na == nb ? 1 : 0 }
        return dot / (na.squareRoot() * nb.squareRoot())
    }

    /// The vectors of an embeddings answer, by index.
    static func vectors(_ body: JSONValue) -> [[Double]]? {
        guard let data = body["data"]?.arrayValue else { return nil }
        let sorted = data.sorted { ($0["index"]?.intValue ?? 0) < ($1["index"]?.intValue ?? 0) }
        var out: [[Double]] = []
        for entry in sorted {
            guard let values = entry["embedding"]?.arrayValue else { return nil }
            out.append(values.compactMap(\.doubleValue))
        }
        return out
    }

    /// Checks one replica and records the verdict; an unreachable replica stays unchecked (asked
    /// again when it passes a health check).
    func check(_ pool: ModelPool, _ index: Int) async {
        // Decided since it (re)started: nothing to ask.
        guard pool.coalesces, !pool.batchingDecided(index), let backend = pool.backends.indices.contains(index) ? pool.backends[index] : nil
        else { return }
        let url = backend.url.appending("/embeddings")
        func embed(_ input: JSONValue) async throws -> [[Double]]? {
            let (status, body) = try await client.post(
                url, json: .object([("model", .string(backend.upstreamModel)), ("input", input)]), timeout: timeout)
            guard status == 200 else { return nil }
            return Self.vectors(try JSONParser.parse(body.readableBytesView))
        }
        do {
            var single: [[Double]] = []
            for probe in Self.probes {
                guard let one = try await embed(.string(probe))?.first else { return }
                single.append(one)
            }
            guard let batch = try await embed(.array(Self.probes.map(JSONValue.string))) else { return }
            let verdict = Self.compare(single: single, batch: batch)
            pool.setBatching(index, verdict)
            metrics.coalescingAllowed(backend: backend.id, verdict == .invariant)
            switch verdict {
            case .invariant:
                logger.info("batched embeddings match single ones: coalescing on", metadata: ["model": "\(pool.name)", "backend": "\(backend.id)"])
            case .variant(let why):
                logger.warning(
                    "batched embeddings differ from single ones: not coalescing for this backend",
                    metadata: ["model": "\(pool.name)", "backend": "\(backend.id)", "why": "\(why)"])
            }
        } catch {
            logger.debug("batching check failed", metadata: ["backend": "\(backend.id)", "error": "\(error)"])
        }
    }
}
