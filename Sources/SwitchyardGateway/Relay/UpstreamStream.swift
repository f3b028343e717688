import AsyncHTTPClient
import NIOCore

/// An upstream SSE body being relayed: the body iterator and the relay state.
///
/// `@unchecked Sendable` because the iterator is not Sendable: it is used by exactly one task at
/// a time — first the handler (until the first event is ready), then the response-body pump,
/// which starts only after the handler returned. There is never concurrent access.
final class UpstreamStream: @unchecked Sendable {
    private var iterator: HTTPClientResponse.Body.AsyncIterator
    var relay: StreamRelay
    /// Set when reading from the backend failed (connection lost mid-stream).
    var readError: (any Error)?
    var ended = false

    init(body: HTTPClientResponse.Body, relay: StreamRelay) {
        iterator = body.makeAsyncIterator()
        self.relay = relay
    }

    /// Reads until some client bytes are ready, the relay stopped, or the upstream ended.
    /// Returns the bytes to send; read errors are recorded in `readError`, not thrown.
    func readSome(progress: Watchdog.Progress, onToken: (ContinuousClock.Instant) -> Void) async -> [UInt8] {
        while !ended, relay.stop == nil {
            let chunk: ByteBuffer?
            do {
                chunk = try await iterator.next()
            } catch {
                readError = error
                ended = true
                return []
            }
            progress.touch()
            guard let chunk else {
                ended = true
                return relay.finish()
            }
            let (out, sawToken) = chunk.withUnsafeReadableBytes { relay.process($0) }
            if sawToken { onToken(.now) }
            if !out.isEmpty { return out }
        }
        return []
    }
}
