import Foundation

/// Datasheet values of the GPUs a first-principles profile can be made for (dense tensor-core
/// peaks, no sparsity; SXM parts where there are several).
package struct GPUSpec: Sendable, Equatable {
    package var name: String
    package var memoryGB: Double
    /// HBM (or GDDR) bandwidth, bytes per second.
    package var bandwidth: Double
    /// Dense BF16 tensor FLOP/s.
    package var bf16: Double
    /// Dense FP8 tensor FLOP/s (nil: no FP8 tensor cores).
    package var fp8: Double?
    package var datasheet: String

    package static let catalog: [String: GPUSpec] = [
        "h100": GPUSpec(
            name: "H100 SXM", memoryGB: 80, bandwidth: 3.35e12, bf16: 989e12, fp8: 1979e12, datasheet: "NVIDIA H100 Tensor Core GPU datasheet (SXM5)"),
        "h200": GPUSpec(
            name: "H200 SXM", memoryGB: 141, bandwidth: 4.8e12, bf16: 989e12, fp8: 1979e12, datasheet: "NVIDIA H200 Tensor Core GPU datasheet (SXM)"),
        "a100": GPUSpec(
            name: "A100 80GB SXM", memoryGB: 80, bandwidth: 2.039e12, bf16: 312e12, fp8: nil,
            datasheet: "NVIDIA A100 Tensor Core GPU datasheet (80GB SXM)"),
        "l40s": GPUSpec(name: "L40S", memoryGB: 48, bandwidth: 0.864e12, bf16: 362e12, fp8: 733e12, datasheet: "NVIDIA L40S datasheet"),
        "l4": GPUSpec(name: "L4", memoryGB: 24, bandwidth: 0.3e12, bf16: 121e12, fp8: 242e12, datasheet: "NVIDIA L4 datasheet"),
        "b200": GPUSpec(
            name: "B200", memoryGB: 180, bandwidth: 8e12, bf16: 2250e12, fp8: 4500e12, datasheet: "NVIDIA DGX B200 / HGX B200 datasheet (per GPU)"),
    ]
}

/// A replica profile from first principles, for a GPU nobody has measured yet:
///
///     decode step ≈ max((weights + KV of the batch) ÷ (HBM bandwidth × efficiency),
///                       2 · params · batch ÷ (peak FLOP/s × efficiency)) + step overhead
///     prefill ≈ 2 · params · prompt tokens ÷ (peak FLOP/s × MFU)
///
/// Every number says whether it is a datasheet value, a model input or an assumption.
package struct GPUEstimate: Sendable {
    package var gpu: String
    /// Parameters, in billions.
    package var paramsB: Double
    /// bf16, fp16, fp8 or int4.
    package var dtype: String = "bf16"
    package var tensorParallel = 1
    /// Prompt + output tokens a sequence holds in the KV cache on average.
    package var contextTokens = 2048
    /// KV-cache bytes per token (2 · layers · KV heads · head dim · bytes); nil → assumption.
    package var kvBytesPerToken: Double?
    package var bandwidthEfficiency = 0.8
    package var prefillMFU = 0.5
    package var stepOverhead = 0.002
    package var maxSeqs = 256

    package init(gpu: String, paramsB: Double) {
        self.gpu = gpu
        self.paramsB = paramsB
    }

    package func profile() throws -> ReplicaProfile {
        guard let spec = GPUSpec.catalog[gpu.lowercased()] else {
            throw PlanError("--gpu: unknown GPU '\(gpu)'; known: \(GPUSpec.catalog.keys.sorted().joined(separator: ", "))")
        }
        guard paramsB > 0 else { throw PlanError("--params must be positive (billions of parameters), got \(paramsB)") }
        guard tensorParallel >= 1 else { throw PlanError("--tp must be at least 1, got \(tensorParallel)") }
        let bytes: Double
        switch dtype.lowercased() {
        case "bf16", "fp16": bytes = 2
        case "fp8", "int8": bytes = 1
        case "int4": bytes = 0.5
        default: throw PlanError("--dtype: expected bf16, fp16, fp8, int8 or int4, got '\(dtype)'")
        }
        let tp = Double(tensorParallel)
        let params = paramsB * 1e9
        let weights = params * bytes
        let peak = (bytes <= 1 ? spec.fp8 : nil) ?? spec.bf16
        let peakSource = bytes <= 1 && spec.fp8 != nil ? "FP8" : "BF16"
        let sheet =
            "datasheet: \(spec.datasheet): \(Int(spec.bandwidth / 1e9)) GB/s, \(Int(peak / 1e12)) TFLOP/s \(peakSource) dense, \(Int(spec.memoryGB)) GB"
        let assumed = String(
            format: "assumption: %.0f%% of HBM bandwidth, %.0f%% MFU in prefill, %.1f ms per step", bandwidthEfficiency * 100, prefillMFU * 100,
            stepOverhead * 1000)
        // Llama-3-8B: 32 layers × 8 KV heads × 128 × 2 (K and V) × 2 bytes = 128 KiB per token for 16 GB of weights.
        let kvPerToken = kvBytesPerToken ?? (131_072 / 16e9 * params * 2)
        let kvSource =
            kvBytesPerToken != nil
            ? "input: \(Int(kvPerToken)) KV bytes per token"
            : "assumption: \(Int(kvPerToken)) KV bytes per token (Llama-3-8B's 128 KiB per 8B parameters in 16-bit, scaled)"
        let bw = spec.bandwidth * tp * bandwidthEfficiency
        let flops = peak * tp
        // Memory left for KV after the weights (90% of HBM usable), in sequences of the context.
        let kvBytes = spec.memoryGB * 1e9 * tp * 0.9 - weights
        guard kvBytes > 0 else {
            throw PlanError(
                String(
                    format: "%.0f GB of weights do not fit in %d × %.0f GB (%@); raise --tp", weights / 1e9, tensorParallel, spec.memoryGB,
                    spec.name))
        }
        let kvTokens = kvBytes / kvPerToken
        let seqs = max(1, min(Double(maxSeqs), (kvTokens / Double(contextTokens)).rounded(.down)))
        let stepBase = weights / bw + stepOverhead
        let perSeqMemory = Double(contextTokens) * kvPerToken / bw
        let perSeqCompute = 2 * params / (flops * 0.5)
        let model = "input: \(paramsB)B parameters, \(dtype), TP \(tensorParallel), \(contextTokens) tokens of context"
        return ReplicaProfile(
            name: "\(spec.name) × \(tensorParallel), \(paramsB)B \(dtype)", gpusPerReplica: tensorParallel, accelerator: gpu.lowercased(),
            slots: Sourced(seqs, "derived: KV memory (\(sheet); \(kvSource)) ÷ context, at most \(maxSeqs) sequences"),
            ttftBase: Sourced(stepBase, "derived: one decode step (\(sheet); \(assumed); \(model))"),
            ttftPerPromptToken: Sourced(2 * params / (flops * prefillMFU), "derived: 2 · params ÷ (peak × MFU) (\(sheet); \(assumed))"),
            ttftPerConcurrent: Sourced(max(perSeqMemory, perSeqCompute), "derived: each running sequence adds its decode step share (\(assumed))"),
            tpotBase: Sourced(stepBase, "derived: weights ÷ bandwidth + overhead (\(sheet); \(assumed); \(model))"),
            tpotPerConcurrent: Sourced(
                max(perSeqMemory, perSeqCompute), "derived: max(KV read ÷ bandwidth, 2 · params ÷ (peak × 50%)) per sequence (\(kvSource))"),
            kvTokens: Sourced(kvTokens.rounded(), "derived: 90% of HBM less weights (\(sheet)) ÷ KV bytes per token"),
            notes: [
                "first-principles estimate: no spread (every request of a size takes the same time); calibrate with a bench bundle when one exists"
            ]
        )
    }
}
