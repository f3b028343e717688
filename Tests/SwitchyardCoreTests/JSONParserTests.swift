import Testing

@testable import SwitchyardCore

@Suite struct JSONParserTests {
    @Test func roundTripKeepsOrderAndNumberText() throws {
        let text = #"{"model":"m","temperature":0.70,"n":1e3,"nested":{"b":[1,true,null],"a":"x\"y\n"},"z":-0}"#
        let value = try JSONParser.parse(text)
        #expect(value.serializedString == text)
        #expect(value["temperature"] == .number("0.70"))
        #expect(value["nested"]?["b"]?.arrayValue?.count == 3)
    }

    @Test func unicodeEscapesAndSurrogates() throws {
        let value = try JSONParser.parse(#"{"s":"\u00e9\ud83d\ude00"}"#)
        #expect(value["s"]?.stringValue == "é😀")
    }

    @Test(arguments: [
        (#"{"a":1,}"#, 1, 8),
        ("{\n  \"a\": tru }", 2, 8),
        (#"{"a":"unterminated"#, 1, 19),
        ("[1 2]", 1, 4),
        ("", 1, 1),
    ])
    func errorsNameLineAndColumn(input: String, line: Int, column: Int) {
        #expect {
            try JSONParser.parse(input)
        } throws: { error in
            guard let e = error as? JSONParseError else { return false }
            return e.line == line && e.column == column
        }
    }

    @Test func rejectsTrailingDataAndDeepNesting() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse("{} x") }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(String(repeating: "[", count: 1000)) }
    }

    @Test func setReplacesInPlaceAndAppends() throws {
        var value = try JSONParser.parse(#"{"model":"a","x":1}"#)
        value.set("model", .string("b"))
        value.set("stream_options", .object([("include_usage", .bool(true))]))
        #expect(value.serializedString == #"{"model":"b","x":1,"stream_options":{"include_usage":true}}"#)
    }
}

@Suite struct DigestTests {
    @Test func knownVectors() {
        #expect(Digest.sha256Hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(Digest.sha256Hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            Digest.sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(Digest.sha256Hex(String(repeating: "a", count: 1000)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }
}
