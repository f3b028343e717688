import SwitchyardCore
import Testing

@testable import SwitchyardEvidence

@Suite struct ScheduleTests {
    static func gaps(_ times: [Duration]) -> [Double] {
        zip(times.dropFirst(), times).map { ($0 - $1).seconds }
    }

    @Test func poissonInterArrivalsMatchTheRate() {
        let rate = 50.0
        let times = Schedule.make(rate: rate, process: .poisson, seed: 7, count: 20_000)
        let g = Self.gaps(times)
        let mean = g.reduce(0, +) / Double(g.count)
        let variance = g.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(g.count - 1)
        #expect(abs(mean - 1 / rate) / (1 / rate) < 0.03, "mean \(mean)")
        #expect(abs(variance - 1 / (rate * rate)) / (1 / (rate * rate)) < 0.06, "variance \(variance): exponential has variance 1/rate²")
    }

    @Test func sameSeedSameScheduleOtherSeedOther() {
        let a = Schedule.make(rate: 10, process: .poisson, seed: 42, count: 100)
        let b = Schedule.make(rate: 10, process: .poisson, seed: 42, count: 100)
        let c = Schedule.make(rate: 10, process: .poisson, seed: 43, count: 100)
        #expect(a == b)
        #expect(a != c)
    }

    @Test func constantAndBoundedByDuration() {
        let times = Schedule.make(rate: 4, process: .constant, seed: 1, duration: .seconds(2))
        #expect(times == [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75].map { Duration.seconds($0) })
    }

    @Test func gammaBurstinessSetsTheVariation() {
        for shape in [0.25, 4.0] {
            let g = Self.gaps(Schedule.make(rate: 20, process: .gamma(burstiness: shape), seed: 3, count: 20_000))
            let mean = g.reduce(0, +) / Double(g.count)
            let sd = (g.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(g.count - 1)).squareRoot()
            #expect(abs(mean - 0.05) / 0.05 < 0.04, "mean keeps the rate (shape \(shape)): \(mean)")
            let cv = sd / mean
            #expect(abs(cv - 1 / shape.squareRoot()) < 0.08, "coefficient of variation 1/√shape (shape \(shape)): \(cv)")
        }
    }

    @Test func tokenDistributionsParseAndSample() {
        #expect(TokenDistribution.parse("128") == .fixed(128))
        #expect(TokenDistribution.parse("uniform:10:20") == .uniform(10, 20))
        #expect(TokenDistribution.parse("normal:100:10") == .normal(mean: 100, sd: 10))
        #expect(TokenDistribution.parse("uniform:20:10") == nil)
        #expect(TokenDistribution.parse("zipf:1") == nil)
        var rng = SplitMix64(seed: 1)
        let samples = (0..<1000).map { _ in TokenDistribution.uniform(10, 20).sample(&rng) }
        #expect(samples.allSatisfy { (10...20).contains($0) })
        #expect(Set(samples).count == 11)
    }

    @Test func sharedPrefixAndDatasets() throws {
        var w = Workload()
        w.inputTokens = .fixed(20)
        w.sharedPrefix = 8
        let a = w.request(0, seed: 9).prompt.split(separator: " ")
        let b = w.request(1, seed: 9).prompt.split(separator: " ")
        #expect(a.count == 20)
        #expect(a.prefix(8) == b.prefix(8))
        #expect(a != b)
        // Runs with neighbouring seeds send other prompts (an engine's prompt cache must not
        // answer one run's prompts from the previous run).
        w.sharedPrefix = 0
        let run1 = Set((0..<200).map { w.request($0, seed: 101).prompt })
        let run2 = Set((0..<200).map { w.request($0, seed: 102).prompt })
        let shared = run1.intersection(run2).count
        #expect(shared == 0, "\(shared) of 200 prompts sent again")
        let prompts = try Workload.loadDataset(
            """
            {"prompt": "one"}
            {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "two"}]}

            {"conversations": [{"from": "human", "value": "three"}, {"from": "gpt", "value": "x"}]}
            """)
        #expect(prompts == ["one", "two", "three"])
        #expect(throws: DatasetError.self) { try Workload.loadDataset("{\"prompt\": \"ok\"}\n{\"text\": 1}") }
        do {
            _ = try Workload.loadDataset("{\"prompt\": \"ok\"}\nnot json")
        } catch {
            #expect(error.description == "line 2: not valid JSON")
        }
    }
}

@Suite struct StatsTests {
    @Test func nearestRankPercentiles() throws {
        let s = try #require(MetricSummary((1...100).map(Double.init)))
        #expect(s.n == 100)
        #expect(s.p50 == 50)
        #expect(s.p90 == 90)
        #expect(s.p99 == 99)
        #expect(s.p999 == 100)
        #expect(s.mean == 50.5)
        let one = try #require(MetricSummary([7]))
        #expect(one.p99 == 7)
        #expect(MetricSummary([]) == nil)
    }
}
