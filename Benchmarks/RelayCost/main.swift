import Foundation
import SwitchyardCore

// The relay's cost per SSE event, in process: the stream bench/proxy-overhead.sh serves (200
// token chunks whose model is rewritten, a usage chunk the client did not ask for, [DONE]),
// fed in reads of READ bytes, against copying the same bytes (what a byte-forwarding proxy does).

let events = 200
var text = ""
for i in 1...events {
    text +=
        #"data: {"id":"c","object":"chat.completion.chunk","model":"bench","choices":[{"index":0,"delta":{"content":"tok\#(i) "},"finish_reason":null}]}"#
        + "\n\n"
}
text +=
    #"data: {"id":"c","object":"chat.completion.chunk","model":"bench","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":\#(events),"total_tokens":\#(events + 12)}}"#
    + "\n\ndata: [DONE]\n\n"
let stream = Array(text.utf8)
let readSize = Int(ProcessInfo.processInfo.environment["READ"] ?? "") ?? 16_384
let streams = Int(ProcessInfo.processInfo.environment["STREAMS"] ?? "") ?? 5_000
let reads = stride(from: 0, to: stream.count, by: readSize).map { stream[$0..<min($0 + readSize, stream.count)] }

func measure(_ name: String, _ body: () -> Int) -> Double {
    let start = ContinuousClock.now
    var bytes = 0
    for _ in 0..<streams { bytes &+= body() }
    let seconds = (ContinuousClock.now - start) / .seconds(1)
    let perEvent = seconds * 1e6 / Double(streams * events)
    print(
        String(
            format: "%-22@ %8.3f us/event  %9.1f us/stream  (%d bytes out per stream)", name as NSString, perEvent, perEvent * Double(events),
            bytes / streams))
    return perEvent
}

print("relay cost: \(streams) streams of \(events) events, \(stream.count) bytes each, reads of \(readSize) bytes")
let copy = measure("copy (forwarding)") {
    var out = 0
    for read in reads {
        let buffer = Array(read)
        out += buffer.count
    }
    return out
}
func relayed(inPlace: Bool) -> Int {
    var relay = StreamRelay(publicModel: "sse", forwardUsage: false)
    relay.inPlaceFraming = inPlace
    var out = 0
    for read in reads { out += relay.process(read).output.count }
    out += relay.finish().count
    precondition(relay.tokenChunks == events && relay.sawDone)
    return out
}
let decoded = measure("StreamRelay (decoder)") { relayed(inPlace: false) }
let relayCost = measure("StreamRelay") { relayed(inPlace: true) }
print(String(format: "decoder framing / in place: %.1fx", decoded / relayCost))
print(String(format: "relay / copy: %.1fx", relayCost / copy))

// Where the time goes: the chunk scan alone, on each event's data.
let payloads = text.split(separator: "\n\n").map { Array($0.utf8.dropFirst(6)) }
_ = measure("TokenChunk.scan only") {
    var n = 0
    for p in payloads { p.withUnsafeBytes { if TokenChunk.scan($0) != nil { n += 1 } } }
    return n
}
