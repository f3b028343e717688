import Foundation
import SwitchyardCore

/// Everything measured about one request, on the run's monotonic clock (offsets from its start).
package struct RequestRecord: Sendable {
    package var id: Int
    package var lane: String
    /// Sent during warmup: kept in requests.jsonl, left out of the statistics.
    package var warmup = false
    /// Sent a second time on a fresh connection: the first, on a reused keep-alive connection,
    /// was lost before any answer (see `BenchClient`).
    package var resent = false
    /// The phase it was scheduled in (`accept`'s phase names; `bench`: `warmup` or `measured`).
    package var phase: String?
    package var tSched: Duration
    package var tSend: Duration?
    package var tFirst: Duration?
    package var tLast: Duration?
    /// Gaps between token-bearing chunks (ITL), seconds.
    package var gaps: [Double] = []
    package var status: Int?
    package var error: String?
    package var promptTokens: Int?
    /// From the server's `usage.completion_tokens`.
    package var outputTokensServer: Int?
    /// Token-bearing chunks the client counted.
    package var outputTokensClient = 0
    /// The streamed text went beyond ASCII (see ``StreamObserver/sawNonASCII``).
    package var outputNonASCII = false

    package init(id: Int, lane: String, tSched: Duration) {
        self.id = id
        self.lane = lane
        self.tSched = tSched
    }

    package var succeeded: Bool { status == 200 && error == nil && tLast != nil }

    package var ttft: Double? { diff(tFirst, tSend) }
    package var ttftSched: Double? { diff(tFirst, tSched) }
    package var e2e: Double? { diff(tLast, tSend) }
    package var e2eSched: Double? { diff(tLast, tSched) }
    /// How late the request went out against its schedule.
    package var scheduleLag: Double? { diff(tSend, tSched) }

    /// (t_last − t_first) / (n_out − 1) with the server's n_out (the client's when absent);
    /// undefined below 2 tokens.
    package var tpot: Double? {
        guard let first = tFirst, let last = tLast else { return nil }
        let n = outputTokensServer ?? outputTokensClient
        guard n >= 2 else { return nil }
        return (last - first).seconds / Double(n - 1)
    }

    package var maxGap: Double? { gaps.max() }

    /// The server's and the client's token counts disagree (streams only).
    package var tokenMismatch: Bool {
        guard let server = outputTokensServer, outputTokensClient > 0 else { return false }
        // Fewer chunks than tokens is how a server streams characters beyond ASCII (several
        // tokens each, a partial one held back): only more chunks than tokens disagrees then.
        if outputNonASCII, outputTokensClient < server { return false }
        // One token of difference is the end-of-sequence token (no text, counted by the server).
        return abs(server - outputTokensClient) > 1
    }

    private func diff(_ a: Duration?, _ b: Duration?) -> Double? {
        guard let a, let b else { return nil }
        return (a - b).seconds
    }

    /// One line of requests.jsonl.
    package var json: JSONValue {
        func num(_ v: Double?) -> JSONValue { v.map { .number(String(format: "%.6f", $0)) } ?? .null }
        func int(_ v: Int?) -> JSONValue { v.map { .number($0) } ?? .null }
        return .object([
            ("id", .number(id)), ("lane", .string(lane)), ("phase", phase.map(JSONValue.string) ?? .null), ("warmup", .bool(warmup)),
            ("resent", .bool(resent)),
            ("t_sched", num(tSched.seconds)), ("t_send", num(tSend?.seconds)), ("t_first", num(tFirst?.seconds)), ("t_last", num(tLast?.seconds)),
            ("ttft", num(ttft)), ("ttft_sched", num(ttftSched)), ("e2e", num(e2e)), ("e2e_sched", num(e2eSched)), ("tpot", num(tpot)),
            ("max_gap", num(maxGap)), ("schedule_lag", num(scheduleLag)),
            ("status", int(status)), ("ok", .bool(succeeded)), ("error", error.map(JSONValue.string) ?? .null),
            ("prompt_tokens", int(promptTokens)), ("n_out_server", int(outputTokensServer)), ("n_out_client", .number(outputTokensClient)),
            ("non_ascii", .bool(outputNonASCII)),
            ("gaps", .array(gaps.map { .number(String(format: "%.6f", $0)) })),
        ])
    }
}
