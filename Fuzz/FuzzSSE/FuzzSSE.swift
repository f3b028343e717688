import SwitchyardCore

/// libFuzzer target: the SSE decoder and the stream-chunk scanner (scripts/fuzz.sh). The first
/// byte picks where the rest is cut in two; the events must not depend on where the network cut
/// the stream.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSSE(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard count > 0, let start else { return 0 }
    let all = UnsafeRawBufferPointer(start: start, count: count)
    let bytes = UnsafeRawBufferPointer(rebasing: all[1...])
    let cut = bytes.isEmpty ? 0 : Int(all[0]) % (bytes.count + 1)
    var whole = SSEDecoder()
    var events = whole.feed(bytes)
    if let last = whole.finish() { events.append(last) }
    var split = SSEDecoder()
    var pieces = split.feed(UnsafeRawBufferPointer(rebasing: bytes[..<cut]))
    pieces += split.feed(UnsafeRawBufferPointer(rebasing: bytes[cut...]))
    if let last = split.finish() { pieces.append(last) }
    if events != pieces { fatalError("the events depend on where the stream was cut at \(cut)") }
    for event in events {
        Array(event.data.utf8).withUnsafeBytes { _ = TokenChunk.scan($0) }
    }
    return 0
}
