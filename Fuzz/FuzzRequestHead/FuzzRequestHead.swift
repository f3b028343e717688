import NIOCore
import NIOEmbedded
import NIOHTTP1
import SwitchyardCore
import SwitchyardHTTPGuard

/// libFuzzer target: the gateway's request-head handling (its client guard, NIO's HTTP/1
/// decoder with the gateway's header limits, the guard's request handler) on an embedded
/// channel (scripts/fuzz.sh). The first byte picks where the bytes are cut in two writes. What
/// goes back to the client must be nothing or HTTP/1.1 with a 2xx or 4xx status, never a 5xx,
/// and the guard's refusals are OpenAI's error shape.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequestHead(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard count > 0, let start else { return 0 }
    let all = UnsafeRawBufferPointer(start: start, count: count)
    let bytes = UnsafeRawBufferPointer(rebasing: all[1...])
    let cut = bytes.isEmpty ? 0 : Int(all[0]) % (bytes.count + 1)
    var limits = ClientLimits()
    limits.maxHeaderBytes = 2048
    limits.maxHeaders = 20
    let channel = EmbeddedChannel()
    do {
        try ClientGuard(limits: limits, connections: ClientConnectionCounts()) { _ in }.install(on: channel.pipeline.syncOperations)
        try channel.pipeline.syncOperations.addHandler(Answer())
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).wait()
        for piece in [bytes[..<cut], bytes[cut...]] where !piece.isEmpty {
            var buffer = channel.allocator.buffer(capacity: piece.count)
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: piece))
            // The decoder's errors are answered by the guard; a closed channel refuses more writes.
            guard channel.isActive else { break }
            try? channel.writeInbound(buffer)
        }
    } catch {
        fatalError("setting up the pipeline failed: \(error)")
    }
    var out: [UInt8] = []
    while let part = try? channel.readOutbound(as: ByteBuffer.self) { out += part.readableBytesView }
    // Let the guard's timers run (header, body and idle timeouts, the lingering close): an
    // embedded loop keeps tasks that never ran, and with them the channel.
    channel.embeddedEventLoop.advanceTime(by: .seconds(120))
    while let part = try? channel.readOutbound(as: ByteBuffer.self), out.isEmpty { out += part.readableBytesView }
    _ = try? channel.finish()
    guard !out.isEmpty else { return 0 }
    let text = String(decoding: out, as: UTF8.self)
    guard text.hasPrefix("HTTP/1.1 "), let status = Int(text.dropFirst(9).prefix(3)), (200..<500).contains(status) else {
        fatalError("answered \(text.prefix(200))")
    }
    if status >= 400, let split = text.range(of: "\r\n\r\n") {
        guard let json = try? JSONParser.parse(String(text[split.upperBound...])), json["error"]?["message"]?.stringValue != nil else {
            fatalError("a refusal not in OpenAI's shape: \(text.prefix(300))")
        }
    }
    return 0
}

/// What the gateway does after the head: answers every complete request with 200.
final class Answer: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "0"])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
