import NIOCore
import SwitchyardCore
import Testing

@testable import SwitchyardGateway

/// Whole bodies get their model rewritten in place: the fast path sends a client's request to
/// its backend that way, and restores the public name in the answer.
@Suite struct WholeAnswerTests {
    static func bytes(_ buffer: ByteBuffer) -> String { String(buffer: buffer) }

    @Test func settingTheModelKeepsEveryOtherByte() throws {
        let body = #"{ "model" : "pub", "messages":[{"role":"user","content":"h\u00e9 \"x\" 😀"}], "n": 2, "vendor_extra": {"top_k": 5} }"#
        let set = try #require(WholeAnswer.settingModel(of: ByteBuffer(string: body), to: "up/model-7b"))
        #expect(Self.bytes(set) == body.replacingOccurrences(of: #""pub""#, with: #""up/model-7b""#))
        // The same document the router path sends (it rebuilds the body).
        let request = try ProxyRequest.parse(endpoint: .chatCompletions, bytes: Array(body.utf8), requestID: "r")
        #expect(try JSONParser.parse(Array(Self.bytes(set).utf8)) == JSONParser.parse(request.upstreamBody(model: "up/model-7b")))
    }

    @Test func aModelAlreadyRightIsNotCopied() throws {
        let body = ByteBuffer(string: #"{"model":"same","prompt":"p"}"#)
        let set = try #require(WholeAnswer.settingModel(of: body, to: "same"))
        #expect(set == body)
    }

    @Test(arguments: [
        #"{"mod\u0065l":"pub","prompt":"p"}"#,  // an escaped key: only the parser can tell
        #"{"prompt":"no model"}"#,
        #"{"model":"pub"} trailing"#,
        #"["model"]"#,
    ])
    func whatTheScanCannotTellFallsBack(body: String) {
        #expect(WholeAnswer.settingModel(of: ByteBuffer(string: body), to: "up") == nil)
    }

    @Test func answersGetThePublicNameAndTheirUsageRead() {
        let answer = #"{"id":"x","model":"up","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":10}}"#
        let restored = WholeAnswer.restore(ByteBuffer(string: answer), publicModel: "pub")
        #expect(Self.bytes(restored.body) == answer.replacingOccurrences(of: #""up""#, with: #""pub""#))
        #expect(restored.promptTokens == 12 && restored.completionTokens == 10)
        // Usage keys written with escapes, or counts written as floats: read as the parser reads them.
        let odd = WholeAnswer.restore(
            ByteBuffer(string: #"{"model":"pub","usage":{"prompt_tok\u0065ns":7,"completion_tokens":3.0}}"#), publicModel: "pub")
        #expect(odd.promptTokens == 7 && odd.completionTokens == 3)
    }
}
