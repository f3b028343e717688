import Foundation
import SwitchyardCore

/// A token-count distribution: `fixed:N` (or just `N`), `uniform:LO:HI`, `normal:MEAN:SD`.
package enum TokenDistribution: Sendable, Equatable, CustomStringConvertible {
    case fixed(Int)
    case uniform(Int, Int)
    case normal(mean: Double, sd: Double)

    package static func parse(_ text: String) -> TokenDistribution? {
        let parts = text.split(separator: ":").map(String.init)
        switch parts.first {
        case "fixed" where parts.count == 2: return Int(parts[1]).flatMap { $0 > 0 ? .fixed($0) : nil }
        case "uniform" where parts.count == 3:
            guard let lo = Int(parts[1]), let hi = Int(parts[2]), lo > 0, hi >= lo else { return nil }
            return .uniform(lo, hi)
        case "normal" where parts.count == 3:
            guard let mean = Double(parts[1]), let sd = Double(parts[2]), mean > 0, sd >= 0 else { return nil }
            return .normal(mean: mean, sd: sd)
        default:
            return parts.count == 1 ? Int(parts[0]).flatMap { $0 > 0 ? .fixed($0) : nil } : nil
        }
    }

    package func sample(_ rng: inout SplitMix64) -> Int {
        switch self {
        case .fixed(let n): return n
        case .uniform(let lo, let hi): return lo + Int(rng.next() % UInt64(hi - lo + 1))
        case .normal(let mean, let sd): return max(1, Int((mean + sd * Schedule.normal(&rng)).rounded()))
        }
    }

    package var description: String {
        switch self {
        case .fixed(let n): "fixed:\(n)"
        case .uniform(let lo, let hi): "uniform:\(lo):\(hi)"
        case .normal(let mean, let sd): "normal:\(mean):\(sd)"
        }
    }
}

/// What each request asks: synthetic prompts of a given length (optionally sharing a prefix) or
/// prompts from a dataset, with an output length.
package struct Workload: Sendable {
    package var inputTokens: TokenDistribution = .fixed(128)
    package var outputTokens: TokenDistribution = .fixed(64)
    /// Leading tokens every synthetic prompt shares (prefix-cache and affinity tests).
    package var sharedPrefix = 0
    /// Prompts from `--dataset`; when set, they replace the synthetic ones (cycled in order).
    package var prompts: [String] = []
    /// Ask the server to generate exactly the output length (vLLM, llama.cpp `ignore_eos`).
    package var ignoreEOS = false

    package init() {}

    static let words = [
        "time", "river", "stone", "light", "paper", "green", "house", "music", "cloud", "table", "north", "bread",
        "glass", "metal", "field", "train", "sound", "water", "horse", "plant", "night", "dream", "smile", "earth",
    ]

    /// About `n` tokens of text: one common word per token (no tokenizer on the client).
    static func text(tokens n: Int, rng: inout SplitMix64) -> String {
        var out: [String] = []
        out.reserveCapacity(n)
        for _ in 0..<n { out.append(words[Int(rng.next() % UInt64(words.count))]) }
        return out.joined(separator: " ")
    }

    /// The prompt and output length of request `index` (deterministic from the seed).
    package func request(_ index: Int, seed: UInt64) -> (prompt: String, maxTokens: Int) {
        var rng = SplitMix64(seed: SplitMix64.mix(seed &+ UInt64(index)))
        let maxTokens = outputTokens.sample(&rng)
        if !prompts.isEmpty { return (prompts[index % prompts.count], maxTokens) }
        let total = inputTokens.sample(&rng)
        var prefixRNG = SplitMix64(seed: seed ^ 0x5eed)
        let shared = min(sharedPrefix, total)
        let prefix = shared > 0 ? Self.text(tokens: shared, rng: &prefixRNG) : ""
        let rest = Self.text(tokens: total - shared, rng: &rng)
        return ([prefix, rest].filter { !$0.isEmpty }.joined(separator: " "), maxTokens)
    }

    /// Prompts from JSON lines: `{"prompt": …}`, `{"messages": […]}` (the last user message),
    /// or ShareGPT `{"conversations": [{"from": "human", "value": …}, …]}` (the first human turn).
    /// A line that has none is an error naming its number.
    package static func loadDataset(_ text: String) throws(DatasetError) -> [String] {
        var prompts: [String] = []
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let json = try? JSONParser.parse(Array(trimmed.utf8)) else {
                throw DatasetError(line: i + 1, message: "not valid JSON")
            }
            if let prompt = json["prompt"]?.stringValue {
                prompts.append(prompt)
            } else if let messages = json["messages"]?.arrayValue,
                let user = messages.last(where: { $0["role"]?.stringValue == "user" })?["content"]?.stringValue
            {
                prompts.append(user)
            } else if let turns = json["conversations"]?.arrayValue,
                let human = turns.first(where: { ["human", "user"].contains($0["from"]?.stringValue ?? $0["role"]?.stringValue ?? "") }),
                let value = human["value"]?.stringValue ?? human["content"]?.stringValue
            {
                prompts.append(value)
            } else {
                throw DatasetError(line: i + 1, message: "no \"prompt\", user message or ShareGPT human turn")
            }
        }
        if prompts.isEmpty { throw DatasetError(line: 0, message: "the dataset holds no prompts") }
        return prompts
    }
}

package struct DatasetError: Error, CustomStringConvertible {
    package let line: Int
    package let message: String
    package var description: String { line > 0 ? "line \(line): \(message)" : message }
}
