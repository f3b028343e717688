import NIOCore
import SwitchyardCore

/// A whole (non-streamed) answer: its token usage, and its bytes with the public model name
/// restored. Only the model's value is rewritten; every other byte reaches the client as the
/// backend sent it. The fast path sends a whole request's body to its backend the same way.
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
        if let range = found[1] {
            buffer.withUnsafeReadableBytes { raw in
                if let fields = JSONScan.values(raw, of: range, keys: ["prompt_tokens", "completion_tokens"]) {
                    restored.promptTokens = fields[0].flatMap { JSONScan.intValue(raw, $0) }
                    restored.completionTokens = fields[1].flatMap { JSONScan.intValue(raw, $0) }
                } else if let usage = try? JSONParser.parse(UnsafeRawBufferPointer(rebasing: raw[range])) {
                    // Not an object, or keys written with escapes: the parser decides.
                    restored.promptTokens = usage["prompt_tokens"]?.intValue
                    restored.completionTokens = usage["completion_tokens"]?.intValue
                }
            }
        }
        guard let range = found[0] else { return restored }
        restored.body = replacing(range, of: buffer, with: publicModel)
        return restored
    }

    /// `buffer` (a JSON object) with the value of its top-level `model` set to `model`, every
    /// other byte as it was; nil when the scan cannot tell (escaped keys, not one object) or
    /// there is no `model`.
    static func settingModel(of buffer: ByteBuffer, to model: String) -> ByteBuffer? {
        guard let found = buffer.withUnsafeReadableBytes({ JSONScan.topLevelValues($0, keys: ["model"]) }), let range = found[0] else { return nil }
        return replacing(range, of: buffer, with: model)
    }

    /// The bytes of `buffer` with `range` replaced by `model` as a JSON string (no copy when it
    /// already says so).
    private static func replacing(_ range: Range<Int>, of buffer: ByteBuffer, with model: String) -> ByteBuffer {
        // Already `"model"` (a name that needs no escapes, as model names do): nothing to copy.
        let same = buffer.withUnsafeReadableBytes { raw in
            range.count == model.utf8.count + 2 && raw[range.lowerBound] == UInt8(ascii: "\"")
                && raw[(range.lowerBound + 1)..<(range.upperBound - 1)].elementsEqual(model.utf8)
        }
        if same { return buffer }
        let wanted = JSONValue.string(model).serialized()
        var out = ByteBuffer()
        out.reserveCapacity(buffer.readableBytes - range.count + wanted.count)
        buffer.withUnsafeReadableBytes { raw in
            out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[..<range.lowerBound]))
            out.writeBytes(wanted)
            out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[range.upperBound...]))
        }
        return out
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
