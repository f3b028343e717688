import SwitchyardCore

/// libFuzzer target: the JSON parser and the allocation-free scanner (scripts/fuzz.sh).
/// Beside "no crash, no hang": the scanner accepts only what the parser accepts, and a parsed
/// document survives serialization unchanged.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    let parsed = try? JSONParser.parse(bytes)
    if let ranges = JSONScan.topLevelValues(bytes, keys: ["model", "stream", "usage", "choices"]) {
        guard case .object? = parsed else { fatalError("the scanner accepted what the parser refuses") }
        for range in ranges.compactMap({ $0 }) {
            _ = JSONScan.intValue(bytes, range)
            _ = JSONScan.elements(bytes, of: range)
            _ = JSONScan.values(bytes, of: range, keys: ["content", "index"])
        }
    }
    if let parsed {
        let again = try? JSONParser.parse(parsed.serialized())
        if again != parsed { fatalError("serialize → parse changed the document") }
    }
    return 0
}
