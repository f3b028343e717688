import Testing

@testable import SwitchyardEvidence

/// The cost line of an acceptance verdict: the run's GPU time split by the slot time each
/// lane's requests held.
@Suite struct AcceptCostTests {
    static func record(_ id: Int, lane: String, seconds: Double, tokens: Int, ok: Bool = true) -> RequestRecord {
        var r = RequestRecord(id: id, lane: lane, tSched: .zero)
        r.tSend = .zero
        r.tFirst = .seconds(seconds / 2)
        r.tLast = .seconds(seconds)
        r.status = ok ? 200 : 500
        if !ok { r.error = "HTTP 500" }
        r.outputTokensServer = tokens
        return r
    }

    @Test func eachLanePaysForTheSlotTimeItHeld() throws {
        // realtime holds 3 × 1 s, batch 2 × 3 s (one failed): 3 s and 6 s of 9.
        let records =
            (0..<3).map { Self.record($0, lane: "realtime", seconds: 1, tokens: 100) }
            + [Self.record(3, lane: "batch", seconds: 3, tokens: 1000), Self.record(4, lane: "batch", seconds: 3, tokens: 0, ok: false)]
        // 2 GPUs for half an hour at $3: $3.
        let costs = AcceptCost.compute(records: records, gpus: 2, pricePerGPUHour: 3, runSeconds: 1800)
        let realtime = try #require(costs.first { $0.lane == "realtime" })
        let batch = try #require(costs.first { $0.lane == "batch" })
        #expect(abs(realtime.share - 1.0 / 3) < 1e-9 && abs(batch.dollars - 2) < 1e-9)
        #expect(abs((realtime.perThousandRequests ?? 0) - 1 / 3.0 * 1000) < 1e-6, "$1 over 3 requests")
        #expect(abs((batch.perMillionOutputTokens ?? 0) - 2000) < 1e-6, "$2 over 1,000 tokens (the failed one produced none)")
        #expect(
            batch.line(gpus: 2, pricePerGPUHour: 3).hasPrefix(
                "cost at $3.00/GPU-hour × 2 GPUs: $2000 per 1,000 requests, $2000 per million output tokens (67% of"))
        let none = AcceptCost.compute(
            records: [Self.record(0, lane: "x", seconds: 1, tokens: 0, ok: false)], gpus: 1, pricePerGPUHour: 1, runSeconds: 60)
        #expect(none[0].line(gpus: 1, pricePerGPUHour: 1).contains("n/a (nothing succeeded)"))
    }
}
