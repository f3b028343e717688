import NIOCore
import SwitchyardCore

/// A whole (non-streamed) answer: its token usage, and its bytes with the public model name
/// restored. Only the model's value is rewritten; every other byte reaches the client as the
/// backend sent it.
enum WholeAnswer {
    struct Restored {
        var body: ByteBuffer
        var promptTokens: Int?
        var completionTokens: Int?
    }

    static func restore(_ buffer: ByteBuffer, publicModel: String) -> Restored {
        guard let found = buffer.withUnsafeReadableBytes({ JSONScan.topLevelValues($0, keys: ["model", "usage"]) }) else {
            return restoreByParsing(buffer, publicModel: publicModel)
        }
        var restored = Restored(body: buffer)
        let view = buffer.readableBytesView
        if let range = found[1], let usage = try? JSONParser.parse(view[(view.startIndex + range.lowerBound)..<(view.startIndex + range.upperBound)]) {
            restored.promptTokens = usage["prompt_tokens"]?.intValue
            restored.completionTokens = usage["completion_tokens"]?.intValue
        }
        guard let range = found[0] else { return restored }
        let wanted = JSONValue.string(publicModel).serialized()
        if buffer.withUnsafeReadableBytes({ $0[range].elementsEqual(wanted) }) { return restored }
        var out = ByteBuffer()
        out.reserveCapacity(buffer.readableBytes - range.count + wanted.count)
        buffer.withUnsafeReadableBytes { raw in
            out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[..<range.lowerBound]))
            out.writeBytes(wanted)
            out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[range.upperBound...]))
        }
        restored.body = out
        return restored
    }

    /// The slow way, for answers the scan does not take (escaped keys, odd shapes).
    static func restoreByParsing(_ buffer: ByteBuffer, publicModel: String) -> Restored {
        var restored = Restored(body: buffer)
        guard var json = try? JSONParser.parse(buffer.readableBytesView), json.isObject else { return restored }
        if let usage = json["usage"] {
            restored.promptTokens = usage["prompt_tokens"]?.intValue
            restored.completionTokens = usage["completion_tokens"]?.intValue
        }
        if let model = json["model"], model.stringValue != publicModel {
            json.set("model", .string(publicModel))
            restored.body = ByteBuffer(bytes: json.serialized())
        }
        return restored
    }
}
