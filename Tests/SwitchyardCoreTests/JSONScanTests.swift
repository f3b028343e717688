import SwitchyardCore
import Testing

@Suite struct JSONScanTests {
    func scan(_ text: String, _ keys: [StaticString]) -> [String?]? {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { raw in
            JSONScan.topLevelValues(raw, keys: keys).map { found in
                found.map { $0.map { String(decoding: raw[$0], as: UTF8.self) } }
            }
        }
    }

    @Test func findsTopLevelValuesOnly() {
        let doc = #" {"id":"x","nested":{"model":"inner"},"model" : "outer","usage":{"prompt_tokens":5},"n":-1.5e3,"ok":true} "#
        #expect(scan(doc, ["model", "usage", "missing"]) == [#""outer""#, #"{"prompt_tokens":5}"#, nil])
        #expect(scan("{}", ["model"]) == [nil])
        #expect(scan(#"{"a":[1,{"b":[]},"\"model\""],"model":null}"#, ["model"]) == ["null"])
        #expect(scan(#"{"a":{"we\"ird":1},"model":"m"}"#, ["model"]) == [#""m""#], "escaped keys below the top level are fine")
    }

    @Test func refusesWhatIsNotOneValidObject() {
        for bad in [
            "", "[]", #""s""#, "{", #"{"a"}"#, #"{"a":}"#, #"{"a":1,}"#, #"{"a":1}x"#, #"{"a":tru}"#, #"{"a":01}"#,
            #"{"a":1.}"#, #"{"a":-}"#, #"{"a":"\x"}"#, #"{"a":"\u12G4"}"#, "{\"a\":\"tab\there\"}", #"{"a":[1 2]}"#,
            #"{"a":{"b":1,,}}"#, #"{"mo\u0064el":"x"}"#,
            // Long strings are skipped eight bytes at a time: a control character or an
            // unfinished escape at any position is still found.
            "{\"a\":\"0123456789abcdef\u{1F}0123456789\"}", "{\"a\":\"0123456789abcdefg\n\"}", #"{"a":"0123456789abcdefghij\"}"#,
        ] {
            #expect(scan(bad, ["model"]) == nil, "\(bad)")
        }
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(scan(#"{"a":\#(deep)}"#, ["a"]) == nil, "nesting past maxDepth goes to the parser")
    }

    /// Found by the FuzzJSON target: the scanner took invalid UTF-8 the parser refuses, so the fast
    /// path would have forwarded a request the router refuses.
    @Test func stringsAreWellFormedUnicodeAsTheParserRequires() {
        let cases: [([UInt8], Bool)] = [
            (Array(#"{"a":"\#u{e9}\#u{4e2d}\#u{1F600}"}"#.utf8), true),
            ([0x7B, 0x22] + Array(repeating: 0xFF, count: 27) + Array(#"":{}}"#.utf8), false),
            (Array(#"{"a":""#.utf8) + [0xC0, 0xAF] + Array(#""}"#.utf8), false),  // overlong
            (Array(#"{"a":""#.utf8) + [0xED, 0xA0, 0x80] + Array(#""}"#.utf8), false),  // a surrogate in UTF-8
            (Array(#"{"a":""#.utf8) + [0xE4, 0xB8] + Array(#""}"#.utf8), false),  // cut short
            (Array(#"{"a":"\ud83d\ude00"}"#.utf8), true),
            (Array(#"{"a":"\ud83d x"}"#.utf8), false),
            (Array(#"{"a":"\ude00"}"#.utf8), false),
        ]
        for (bytes, valid) in cases {
            let scanned = bytes.withUnsafeBytes { JSONScan.topLevelValues($0, keys: ["a"]) } != nil
            let parsed = (try? JSONParser.parse(bytes)) != nil
            #expect(scanned == valid && parsed == valid, "\(bytes): scanned \(scanned), parsed \(parsed)")
        }
    }

    @Test func longStringsEndWhereTheParserSays() {
        let text = #"{"a":"0123456789\"quoted\" and \\ é 😀 abcdefghijklmnop","model":"m"}"#
        #expect(scan(text, ["model"]) == [#""m""#])
        for cut in 6..<40 {
            let s = "{\"a\":\"" + String(repeating: "x", count: cut) + "\",\"model\":\"m\"}"
            #expect(scan(s, ["model"]) == [#""m""#], "string of \(cut) bytes")
        }
    }

    @Test func agreesWithTheParserOnWhatIsValid() throws {
        let documents = [#"{"a":"\u00e9\n\"q\"","b":[true,false,null,0,-0.25,1E+2],"c":{}}"#, #"{"emoji":"😀","s":"\/"}"#]
        for doc in documents {
            #expect(scan(doc, ["a"]) != nil)
            #expect((try? JSONParser.parse(doc)) != nil)
        }
    }

    @Test func elementsAndNestedValues() {
        let text = #"{"choices":[{"delta":{"content":"hi"}} , {"text":""}]}"#
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { raw in
            let choices = JSONScan.topLevelValues(raw, keys: ["choices"])![0]!
            let items = JSONScan.elements(raw, of: choices)!
            #expect(items.count == 2)
            let delta = JSONScan.values(raw, of: items[0], keys: ["delta"])![0]!
            #expect(String(decoding: raw[JSONScan.values(raw, of: delta, keys: ["content"])![0]!], as: UTF8.self) == #""hi""#)
            #expect(JSONScan.values(raw, of: items[1], keys: ["text"])![0].map { String(decoding: raw[$0], as: UTF8.self) } == #""""#)
            #expect(JSONScan.elements(raw, of: delta) == nil, "an object is not an array")
        }
    }

    @Test func intValueReadsNumbersAsTheParserDoes() {
        for text in ["12", "-3", "0", "12.0", "1e2", "-0.0", "12.5", "\"12\"", "null", "true", "12345678901234567890", "999999999999999999"] {
            let bytes = Array(text.utf8)
            let scanned = bytes.withUnsafeBytes { JSONScan.intValue($0, 0..<bytes.count) }
            let parsed = try? JSONParser.parse(bytes).intValue
            #expect(scanned == parsed ?? nil, "\(text)")
        }
    }
}
