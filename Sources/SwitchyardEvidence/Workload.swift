import Foundation
import SwitchyardCore

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
        // The seed mixed before the index is added: with `seed + index`, seed 2's first prompt
        // was seed 1's second, so runs with neighbouring seeds sent the same prompts (and an
        // engine's prompt cache answered them).
        var rng = SplitMix64(seed: SplitMix64.mix(SplitMix64.mix(seed) &+ UInt64(index)))
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
