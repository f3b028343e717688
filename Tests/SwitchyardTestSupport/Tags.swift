import Testing

extension Tag {
    /// A suite that starts servers or processes, or measures time: `scripts/test` runs these
    /// one at a time after the rest (which run in parallel), so that no timing check shares the
    /// two cores with a llama.cpp flood or headless Chromium from another suite. The tag goes on
    /// the `@Suite` line, where `scripts/test` finds it.
    @Tag package static var timing: Self
}
