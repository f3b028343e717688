import Foundation

/// What a lane cost in an acceptance run at a GPU-hour price: the run's GPU time (GPUs × its
/// span) split between lanes by the slot time their requests held (send to last byte, failed
/// ones included: they held the replica too), per 1,000 succeeded requests and per million
/// output tokens.
package struct AcceptCost: Sendable, Equatable {
    package var lane: String
    /// This lane's part of the run's GPU time.
    package var share: Double
    package var dollars: Double
    package var perThousandRequests: Double?
    package var perMillionOutputTokens: Double?

    package static func compute(records: [RequestRecord], gpus: Double, pricePerGPUHour: Double, runSeconds: Double) -> [AcceptCost] {
        let measured = records.filter { !$0.warmup }
        func held(_ r: RequestRecord) -> Double { max(0, r.e2e ?? 0) }
        let total = measured.reduce(0) { $0 + held($1) }
        let runCost = gpus * runSeconds / 3600 * pricePerGPUHour
        var lanes: [String] = []
        for r in measured where !lanes.contains(r.lane) { lanes.append(r.lane) }
        return lanes.map { lane in
            let mine = measured.filter { $0.lane == lane }
            let share = total > 0 ? mine.reduce(0) { $0 + held($1) } / total : 0
            let dollars = runCost * share
            let ok = mine.filter(\.succeeded)
            let tokens = ok.reduce(0) { $0 + ($1.outputTokensServer ?? $1.outputTokensClient) }
            return AcceptCost(
                lane: lane, share: share, dollars: dollars, perThousandRequests: ok.isEmpty ? nil : dollars / Double(ok.count) * 1000,
                perMillionOutputTokens: tokens == 0 ? nil : dollars / Double(tokens) * 1e6)
        }
    }

    /// `cost at $2.50/GPU-hour × 8 GPUs: $0.41 per 1,000 requests, $3.20 per million output tokens (62% of the run's GPU time)`.
    package func line(gpus: Double, pricePerGPUHour: Double) -> String {
        func money(_ v: Double?) -> String { v.map { String(format: "$%.4g", $0) } ?? "n/a (nothing succeeded)" }
        return String(
            format: "cost at $%.2f/GPU-hour × %@ GPU%@: %@ per 1,000 requests, %@ per million output tokens (%.0f%% of the run's GPU time)",
            pricePerGPUHour, gpus.rounded() == gpus ? String(Int(gpus)) : String(gpus), gpus == 1 ? "" : "s", money(perThousandRequests),
            money(perMillionOutputTokens), share * 100)
    }
}
