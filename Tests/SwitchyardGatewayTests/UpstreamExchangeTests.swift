import NIOCore
import SwitchyardCore
import Testing

@testable import SwitchyardGateway

/// The exchange state machine on a test clock, no sockets: every per-attempt rule of the README.
@Suite struct UpstreamExchangeTests {
    let t0 = ContinuousClock.now
    let limits: UpstreamExchange.Limits

    init() {
        limits = .init(firstByte: .seconds(10), idle: .seconds(2), deadline: t0 + .seconds(60), maxResponseBytes: 1000)
    }

    func at(_ ms: Int) -> ContinuousClock.Instant { t0 + .milliseconds(ms) }

    func machine(stream: Bool) -> UpstreamExchange {
        var m = UpstreamExchange(limits: limits, stream: stream, relay: StreamRelay(publicModel: "public", forwardUsage: false), now: t0)
        m.sent(reused: false, now: t0)
        return m
    }

    static func sse(_ events: String...) -> ByteBuffer {
        ByteBuffer(string: events.map { "data: \($0)\n\n" }.joined())
    }

    static let token = #"{"model":"up","choices":[{"index":0,"delta":{"content":"hi"}}]}"#
    static let roleOnly = #"{"model":"up","choices":[{"index":0,"delta":{"role":"assistant"}}]}"#

    /// The ending in `actions`, described (the action enum holds errors and buffers).
    func ending(_ actions: [UpstreamExchange.Action]) -> String? {
        for action in actions {
            guard case .end(let ending) = action else { continue }
            switch ending {
            case .whole(let status, _, let body): return "whole \(status) \(String(buffer: body))"
            case .overloaded(let status, let retryAfter, _): return "overloaded \(status) \(retryAfter ?? "-")"
            case .failedBeforeResponse: return "failedBeforeResponse"
            case .lostMidAnswer: return "lostMidAnswer"
            case .tooLarge: return "tooLarge"
            case .noFirstEvent(let error): return error == nil ? "noFirstEvent" : "noFirstEvent (read error)"
            case .streamEnded(let stop, let error): return "streamEnded \(stop.map { "\($0)" } ?? "-")\(error == nil ? "" : " (read error)")"
            case .stopped(let reason): return "stopped \(reason)"
            }
        }
        return nil
    }

    func kinds(_ actions: [UpstreamExchange.Action]) -> [String] {
        actions.map {
            switch $0 {
            case .send(let fresh): "send\(fresh ? " fresh" : "")"
            case .commit: "commit"
            case .emit: "emit"
            case .releaseConnection(let reuse): reuse ? "reuse" : "close"
            case .setReading(let on): on ? "resume" : "pause"
            case .end: "end"
            }
        }
    }

    @Test func wholeAnswerIsCollectedAndTheConnectionReused() {
        var m = machine(stream: false)
        m.head(status: 200, contentType: "application/json", retryAfter: nil, keepAlive: true, now: at(5))
        #expect(m.body(ByteBuffer(string: "{\"a\":"), now: at(6)).isEmpty)
        #expect(m.body(ByteBuffer(string: "1}"), now: at(7)).isEmpty)
        let actions = m.end(now: at(8))
        #expect(kinds(actions) == ["reuse", "end"])
        #expect(ending(actions) == "whole 200 {\"a\":1}")
        #expect(m.nextDeadline == nil)
    }

    @Test func aClosingServerIsNotReused() {
        var m = machine(stream: false)
        m.head(status: 200, contentType: "application/json", retryAfter: nil, keepAlive: false, now: at(5))
        #expect(kinds(m.end(now: at(8))) == ["close", "end"])
    }

    @Test(arguments: [429, 503]) func overloadedStatusesAreRetryableWithRetryAfter(status: Int) {
        var m = machine(stream: false)
        m.head(status: status, contentType: "application/json", retryAfter: "3", keepAlive: true, now: at(5))
        #expect(ending(m.end(now: at(6))) == "overloaded \(status) 3")
    }

    @Test func otherErrorStatusesAreAnsweredAsTheyCame() {
        var m = machine(stream: true)
        m.head(status: 500, contentType: "application/json", retryAfter: nil, keepAlive: true, now: at(5))
        _ = m.body(ByteBuffer(string: "{}"), now: at(6))
        #expect(ending(m.end(now: at(7))) == "whole 500 {}")
    }

    @Test func aStreamRequestAnsweredWithoutSSEIsAWholeAnswer() {
        var m = machine(stream: true)
        m.head(status: 200, contentType: "application/json", retryAfter: nil, keepAlive: true, now: at(5))
        #expect(m.phase == .whole)
    }

    @Test func theResponseIsCapped() {
        var m = machine(stream: false)
        m.head(status: 200, contentType: "application/json", retryAfter: nil, keepAlive: true, now: at(5))
        let actions = m.body(ByteBuffer(repeating: 0x20, count: 1001), now: at(6))
        #expect(kinds(actions) == ["close", "end"])
        #expect(ending(actions) == "tooLarge")
    }

    @Test func aStreamCommitsWithItsFirstBytesAndSwitchesToTheIdleLimit() {
        var m = machine(stream: true)
        #expect(m.nextDeadline == t0 + .seconds(10))
        m.head(status: 200, contentType: "text/event-stream; charset=utf-8", retryAfter: nil, keepAlive: true, now: at(100))
        #expect(m.phase == .stream)
        // Still the first-byte limit: nothing reached the client.
        #expect(m.nextDeadline == at(100) + .seconds(10))
        #expect(kinds(m.body(Self.sse(Self.roleOnly), now: at(200))) == ["commit", "emit"])
        #expect(m.committed)
        #expect(m.nextDeadline == at(200) + .seconds(2))
        #expect(m.tokens.first == nil)
        #expect(kinds(m.body(Self.sse(Self.token), now: at(300))) == ["emit"])
        #expect(kinds(m.body(Self.sse(Self.token), now: at(700))) == ["emit"])
        #expect(m.tokens.first == at(300))
        #expect(m.tokens.last == at(700))
        #expect(m.tokens.maxGap == .milliseconds(400))
        let actions = m.end(now: at(800))
        #expect(ending(actions) == "streamEnded -")
        #expect(kinds(actions).first == "reuse")
    }

    @Test func aStreamThatEndsBeforeItsFirstEventIsRetryable() {
        var m = machine(stream: true)
        m.head(status: 200, contentType: "text/event-stream", retryAfter: nil, keepAlive: true, now: at(5))
        #expect(ending(m.end(now: at(6))) == "noFirstEvent")
        var lost = machine(stream: true)
        lost.head(status: 200, contentType: "text/event-stream", retryAfter: nil, keepAlive: true, now: at(5))
        #expect(ending(lost.closed(nil, now: at(6))) == "noFirstEvent (read error)")
    }

    @Test func aMalformedFirstEventStopsReading() {
        var m = machine(stream: true)
        m.head(status: 200, contentType: "text/event-stream", retryAfter: nil, keepAlive: true, now: at(5))
        let actions = m.body(Self.sse("not json"), now: at(6))
        #expect(kinds(actions) == ["close", "end"])
        #expect(ending(actions) == "noFirstEvent")
        if case .malformed = m.relay.stop {} else { Issue.record("expected a malformed stop") }
    }

    @Test func aConnectionLostMidStreamEndsTheCommittedStream() {
        var m = machine(stream: true)
        m.head(status: 200, contentType: "text/event-stream", retryAfter: nil, keepAlive: true, now: at(5))
        _ = m.body(Self.sse(Self.token), now: at(6))
        #expect(ending(m.closed(nil, now: at(7))) == "streamEnded - (read error)")
    }

    @Test func aConnectionLostMidAnswerFails() {
        var m = machine(stream: false)
        m.head(status: 200, contentType: "application/json", retryAfter: nil, keepAlive: true, now: at(5))
        #expect(ending(m.closed(nil, now: at(6))) == "lostMidAnswer")
    }

    @Test func aStalePooledConnectionIsResentOnceOnAFreshOne() {
        var m = UpstreamExchange(limits: limits, stream: false, relay: StreamRelay(publicModel: "p", forwardUsage: false), now: t0)
        #expect(kinds([m.begin()]) == ["send"])
        m.sent(reused: true, now: t0)
        #expect(kinds(m.closed(nil, now: at(1))) == ["send fresh"])
        m.sent(reused: false, now: at(2))
        #expect(ending(m.closed(nil, now: at(3))) == "failedBeforeResponse")
    }

    @Test func aFreshConnectionThatFailsIsNotResent() {
        var m = machine(stream: false)
        #expect(ending(m.closed(ChannelError.connectTimeout(.seconds(1)), now: at(1))) == "failedBeforeResponse")
    }

    @Test func theFirstByteLimitRunsFromTheSend() {
        var m = machine(stream: false)
        #expect(m.timer(now: at(9_999)).isEmpty)
        #expect(ending(m.timer(now: at(10_000))) == "stopped firstByteTimeout")
    }

    @Test func theIdleLimitAppliesBetweenReadsOfAWholeAnswer() {
        var m = machine(stream: false)
        m.head(status: 200, contentType: "application/json", retryAfter: nil, keepAlive: true, now: at(1_000))
        #expect(m.timer(now: at(2_999)).isEmpty)
        #expect(ending(m.timer(now: at(3_000))) == "stopped idleTimeout")
    }

    @Test func theIdleLimitEndsACommittedStreamWithAnError() {
        var m = machine(stream: true)
        m.head(status: 200, contentType: "text/event-stream", retryAfter: nil, keepAlive: true, now: at(5))
        _ = m.body(Self.sse(Self.token), now: at(10))
        #expect(ending(m.timer(now: at(2_010))) == "streamEnded idleTimeout")
    }

    @Test func theTotalDeadlineAlwaysApplies() {
        var m = machine(stream: true)
        m.head(status: 200, contentType: "text/event-stream", retryAfter: nil, keepAlive: true, now: at(5))
        var now = 5
        while now < 59_000 {
            now += 1_000
            _ = m.body(Self.sse(Self.token), now: at(now))
        }
        #expect(m.nextDeadline == t0 + .seconds(60))
        #expect(ending(m.timer(now: t0 + .seconds(60))) == "streamEnded totalTimeout")
    }

    @Test func aSlowClientSuspendsTheIdleLimitButNotTheDeadline() {
        var m = machine(stream: true)
        m.head(status: 200, contentType: "text/event-stream", retryAfter: nil, keepAlive: true, now: at(5))
        _ = m.body(Self.sse(Self.token), now: at(10))
        #expect(kinds(m.clientWritable(false, now: at(20))) == ["pause"])
        #expect(m.clientWritable(false, now: at(21)).isEmpty)
        #expect(m.nextDeadline == limits.deadline)
        #expect(m.timer(now: at(30_000)).isEmpty)
        #expect(kinds(m.clientWritable(true, now: at(30_000))) == ["resume"])
        #expect(m.nextDeadline == at(32_000))
    }

    @Test func theClientLeavingStopsTheAttempt() {
        var waiting = machine(stream: true)
        #expect(ending(waiting.clientGone()) == "stopped clientClosed")
        var streaming = machine(stream: true)
        streaming.head(status: 200, contentType: "text/event-stream", retryAfter: nil, keepAlive: true, now: at(5))
        _ = streaming.body(Self.sse(Self.token), now: at(10))
        #expect(ending(streaming.clientGone()) == "streamEnded clientClosed")
        #expect(streaming.clientGone().isEmpty)
    }

    @Test func preemptionIsHonouredOnlyBeforeTheCommit() {
        var waiting = machine(stream: true)
        #expect(ending(waiting.preempted()) == "stopped preempted")
        var streaming = machine(stream: true)
        streaming.head(status: 200, contentType: "text/event-stream", retryAfter: nil, keepAlive: true, now: at(5))
        _ = streaming.body(Self.sse(Self.token), now: at(10))
        #expect(streaming.preempted().isEmpty)
        // The commit lost the race to a preemption fired just before it.
        var raced = machine(stream: true)
        raced.head(status: 200, contentType: "text/event-stream", retryAfter: nil, keepAlive: true, now: at(5))
        _ = raced.body(Self.sse(Self.token), now: at(10))
        #expect(ending(raced.commitRefused()) == "stopped preempted")
    }

    @Test func nothingHappensAfterTheEnd() {
        var m = machine(stream: false)
        m.head(status: 200, contentType: "application/json", retryAfter: nil, keepAlive: true, now: at(5))
        _ = m.end(now: at(6))
        #expect(m.timer(now: at(100_000)).isEmpty)
        #expect(m.closed(nil, now: at(7)).isEmpty)
        #expect(m.clientGone().isEmpty)
    }
}
