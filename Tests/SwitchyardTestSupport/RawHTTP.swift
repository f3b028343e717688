import NIOCore
import NIOPosix

/// Bytes on a socket, for what an HTTP client library would hide (a declared body never sent,
/// a refused connection, pipelining).
package enum RawHTTP {
    package struct Timeout: Error {}

    /// Sends `text` on a new connection and returns what the server sent until `done` says it is
    /// enough or the server closed; throws ``Timeout`` after `timeout`, and the connect error
    /// when the connection is refused.
    package static func exchange(
        port: Int, _ text: String, timeout: Duration = .seconds(10), until done: @escaping @Sendable (String) -> Bool = { _ in false }
    ) async throws -> String {
        try await exchange(port: port, bytes: Array(text.utf8), timeout: timeout, until: done)
    }

    /// The same with any bytes (not necessarily UTF-8).
    package static func exchange(
        port: Int, bytes: [UInt8], timeout: Duration = .seconds(10), until done: @escaping @Sendable (String) -> Bool = { _ in false }
    ) async throws -> String {
        let text = ByteBuffer(bytes: bytes)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        return try await withThrowingTaskGroup(of: String.self) { group in
            group.addTask {
                try await channel.executeThenClose { inbound, outbound in
                    try await outbound.write(text)
                    var received = ""
                    for try await chunk in inbound {
                        received += String(buffer: chunk)
                        if done(received) { break }
                    }
                    return received
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                channel.channel.close(promise: nil)
                throw Timeout()
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
    }
}
