import Foundation
import SwitchyardCore

/// A number in a profile and where it came from: a measured bundle, a datasheet, an assumption.
package struct Sourced: Sendable, Equatable, Codable {
    package var value: Double
    package var source: String

    package init(_ value: Double, _ source: String) {
        self.value = value
        self.source = source
    }
}

/// How one replica of a model server serves: the simulator's model of it and the planner's.
///
/// A request that starts on a replica with `k` requests in flight (itself included) sees
///
///     TTFT = ttft_base + ttft_per_prompt_token · prompt + ttft_per_concurrent · (k − 1)
///     TPOT = tpot_base + tpot_per_concurrent · (k − 1)
///
/// each multiplied by a draw from its spread (the measured ratio of actual to fitted time), and
/// holds its slot for TTFT + (output − 1) · TPOT. With `prefill: serial` (the default) a replica
/// prefills one prompt at a time, first come first served, so a request's TTFT also covers the
/// prompts ahead of it, and its decoding requests wait while it prefills (llama.cpp runs a
/// prompt's batch before the next decode step; a compute-bound engine has one stream of work);
/// `parallel` starts each prefill at once and never holds decoding up (the M/M/c model).
package struct ReplicaProfile: Sendable, Equatable, Codable {
    package var name: String
    /// GPUs one replica takes (tensor-parallel size); 0 for a CPU replica.
    package var gpusPerReplica: Int
    /// What a replica is priced as: a GPU name, or `cpu`.
    package var accelerator: String
    /// Requests a replica runs at once (llama.cpp slots, vLLM max_num_seqs).
    package var slots: Sourced
    package var ttftBase: Sourced
    package var ttftPerPromptToken: Sourced
    package var ttftPerConcurrent: Sourced
    package var tpotBase: Sourced
    package var tpotPerConcurrent: Sourced
    /// KV-cache capacity in tokens, when known.
    package var kvTokens: Sourced?
    package var ttftSpread: Spread
    package var tpotSpread: Spread
    /// Nil: serial.
    package var prefill: Prefill?
    /// How the profile was made, in a line (the bundles and fit quality, or the estimate's inputs).
    package var notes: [String]

    package init(
        name: String, gpusPerReplica: Int, accelerator: String, slots: Sourced, ttftBase: Sourced, ttftPerPromptToken: Sourced,
        ttftPerConcurrent: Sourced, tpotBase: Sourced, tpotPerConcurrent: Sourced, kvTokens: Sourced? = nil,
        ttftSpread: Spread = .none, tpotSpread: Spread = .none, prefill: Prefill? = .serial, notes: [String] = []
    ) {
        self.name = name
        self.gpusPerReplica = gpusPerReplica
        self.accelerator = accelerator
        self.slots = slots
        self.ttftBase = ttftBase
        self.ttftPerPromptToken = ttftPerPromptToken
        self.ttftPerConcurrent = ttftPerConcurrent
        self.tpotBase = tpotBase
        self.tpotPerConcurrent = tpotPerConcurrent
        self.kvTokens = kvTokens
        self.ttftSpread = ttftSpread
        self.tpotSpread = tpotSpread
        self.prefill = prefill
        self.notes = notes
    }

    package enum Prefill: String, Sendable, Equatable, Codable {
        case serial, parallel
    }

    /// The numbers alone, for the simulator's event loop (which must not copy the sources).
    package var model: ServiceModel {
        ServiceModel(
            ttftBase: ttftBase.value, ttftPerPromptToken: ttftPerPromptToken.value, ttftPerConcurrent: ttftPerConcurrent.value,
            tpotBase: tpotBase.value, tpotPerConcurrent: tpotPerConcurrent.value, ttftSpread: ttftSpread, tpotSpread: tpotSpread,
            serialPrefill: (prefill ?? .serial) == .serial)
    }

    /// The fitted TTFT and TPOT (seconds) before the spread.
    package func ttft(prompt: Int, inflight k: Int) -> Double { model.ttft(prompt: prompt, inflight: k) }
    package func tpot(inflight k: Int) -> Double { model.tpot(inflight: k) }

    package var slotCount: Int { max(1, Int(slots.value.rounded())) }

    /// The ratio of actual to fitted time: none, the measured quantiles (sampled between them),
    /// or exponential with mean 1 (the M in M/M/c).
    package enum Spread: Sendable, Equatable, Codable {
        case none
        case quantiles([Double])
        case exponential

        /// JSON: `"none"`, `"exponential"`, or the quantiles as an array of ratios.
        package init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let q = try? c.decode([Double].self) {
                guard q.count >= 2, zip(q, q.dropFirst()).allSatisfy({ $0 <= $1 }), q.allSatisfy({ $0 >= 0 }) else {
                    throw DecodingError.dataCorruptedError(in: c, debugDescription: "spread quantiles must be 2 or more ascending ratios ≥ 0")
                }
                self = .quantiles(q)
                return
            }
            switch try c.decode(String.self) {
            case "none": self = .none
            case "exponential": self = .exponential
            case let other: throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected none, exponential or quantiles, got '\(other)'")
            }
        }

        package func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .none: try c.encode("none")
            case .exponential: try c.encode("exponential")
            case .quantiles(let q): try c.encode(q.map { ($0 * 10000).rounded() / 10000 })
            }
        }

        package func sample(_ rng: inout SplitMix64) -> Double {
            switch self {
            case .none: return 1
            case .exponential: return -log(Schedule.uniform(&rng))
            case .quantiles(let q):
                guard q.count > 1 else { return q.first ?? 1 }
                let x = Schedule.uniform(&rng) * Double(q.count - 1)
                let i = min(Int(x), q.count - 2)
                return q[i] + (q[i + 1] - q[i]) * (x - Double(i))
            }
        }
    }

    package static func decode(json data: Data, path: String) throws -> ReplicaProfile {
        do {
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(ReplicaProfile.self, from: data)
        } catch {
            throw PlanError("\(path): not a replica profile (\(PlanError.describe(error)))")
        }
    }

    package func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return (try? encoder.encode(self)) ?? Data()
    }
}

/// The formulas of a ``ReplicaProfile`` on plain numbers.
package struct ServiceModel: Sendable {
    let ttftBase: Double
    let ttftPerPromptToken: Double
    let ttftPerConcurrent: Double
    let tpotBase: Double
    let tpotPerConcurrent: Double
    let ttftSpread: ReplicaProfile.Spread
    let tpotSpread: ReplicaProfile.Spread
    let serialPrefill: Bool

    /// Seconds from a prefill's start to the first token, with `k` requests in flight.
    package func ttft(prompt: Int, inflight k: Int) -> Double {
        max(0, ttftBase + ttftPerPromptToken * Double(prompt) + ttftPerConcurrent * Double(max(0, k - 1)))
    }

    package func tpot(inflight k: Int) -> Double { max(0, tpotBase + tpotPerConcurrent * Double(max(0, k - 1))) }
}

/// A planning input that cannot be used, with what and where.
package struct PlanError: Error, CustomStringConvertible, Sendable {
    package var description: String
    package init(_ description: String) { self.description = description }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing field '\(path(context.codingPath + [key]))'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            return "field '\(path(context.codingPath))': \(context.debugDescription)"
        case DecodingError.dataCorrupted(let context):
            return context.codingPath.isEmpty ? context.debugDescription : "field '\(path(context.codingPath))': \(context.debugDescription)"
        default:
            return "\(error)"
        }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}
