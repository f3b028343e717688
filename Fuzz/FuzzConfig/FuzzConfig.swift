import SwitchyardCore

/// libFuzzer target: the configuration loader (YAML → validated config, with every problem
/// named) (scripts/fuzz.sh). A config that loads compares equal to itself in ConfigDiff.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    let text = String(decoding: UnsafeRawBufferPointer(start: start, count: count), as: UTF8.self)
    // No environment or files: `${ENV}` and `file:` references resolve to nothing.
    guard let config = try? ConfigLoader.load(yaml: text, secrets: SecretSource(environment: [:], readFile: { _ in nil })) else { return 0 }
    if !ConfigDiff(from: config, to: config).changes.isEmpty { fatalError("a config differs from itself") }
    return 0
}
