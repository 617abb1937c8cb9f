"""The cost model of docs/scaling.md: where data-parallel SimCLR on ResNet-50 stops scaling, on paper.

It cannot be measured here (2 CPU cores), so it is computed from stated
assumptions, each a command-line option: per step and accelerator, the
FLOPs of two views through ResNet-50 forward and backward, the bytes of the
gradient all-reduce (ring: 2 (N-1)/N of the gradient), the bytes of the
embedding all-gather (every replica receives the other replicas' projections)
and the synchronised BatchNorm all-reduces (small, so latency-bound), against
an accelerator's throughput and its links. Printed as a Markdown table.

    python bench/scaling_model.py                      # the table in docs/scaling.md
    python bench/scaling_model.py --per-replica-batch 256 --mfu 0.35
"""

import argparse
import math

# ResNet-50 at 224x224: 4.1 GFLOP forward (multiply-adds counted as 2 FLOPs); backward about twice that.
RESNET50_FORWARD_FLOP = 4.1e9
RESNET50_PARAMETERS = 25.6e6
# SimCLR's projection head on 2048 features: 2048 x 2048 + 2048 x 128 weights (+ BatchNorm).
HEAD_PARAMETERS = 2048 * 2048 + 2048 * 128
BATCHNORM_LAYERS = 53 + 1  # ResNet-50's, plus the head's
PROJECTION_DIM = 128


def step_costs(replicas, per_replica_batch, args):
    views = 2 * per_replica_batch
    flop = views * 3 * RESNET50_FORWARD_FLOP  # forward + backward (2x forward)
    compute_s = flop / (args.peak_tflops * 1e12 * args.mfu)
    gradient_bytes = (RESNET50_PARAMETERS + HEAD_PARAMETERS) * args.gradient_bytes
    allreduce_bytes = 2 * (replicas - 1) / replicas * gradient_bytes  # ring all-reduce, per accelerator
    gather_bytes = (replicas - 1) * views * PROJECTION_DIM * 4  # float32 projections from every other replica
    # Within one node the links are NVLink-class; across nodes the slowest link (the network) sets the pace.
    bandwidth = args.intra_node_gbps if replicas <= args.per_node else args.inter_node_gbps
    bandwidth_s = (allreduce_bytes + gather_bytes) / (bandwidth * 1e9)
    # Latency: small all-reduces run as trees (NCCL), 2 log2(N) hops each. Synchronised BatchNorm does one per
    # layer per forward pass (the two views share one pass; backward needs another), plus the gather and the
    # gradient reduction; `--no-sync-batchnorm` drops the BatchNorm ones.
    hop = args.intra_node_latency_us if replicas <= args.per_node else args.inter_node_latency_us
    small_reductions = (2 * BATCHNORM_LAYERS if args.sync_batchnorm else 0) + 2
    latency_s = small_reductions * 2 * math.ceil(math.log2(replicas)) * hop * 1e-6 if replicas > 1 else 0.0
    return {
        "replicas": replicas,
        "global_batch": replicas * per_replica_batch,
        "tflop_per_step": flop / 1e12,
        "compute_ms": 1e3 * compute_s,
        "allreduce_mb": allreduce_bytes / 1e6,
        "gather_mb": gather_bytes / 1e6,
        "bandwidth_ms": 1e3 * bandwidth_s,
        "latency_ms": 1e3 * latency_s,
        # Without overlap the step is compute + communication; with the gradient all-reduce overlapped with the
        # backward pass (as NCCL and XLA do), only what exceeds the backward pass (2/3 of compute) is exposed.
        "efficiency_no_overlap": compute_s / (compute_s + bandwidth_s + latency_s),
        "efficiency_overlapped": compute_s / (compute_s + max(0.0, bandwidth_s - 2 / 3 * compute_s) + latency_s),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", default="1,8,64,512", help="accelerator counts to tabulate")
    parser.add_argument("--per-replica-batch", type=int, default=128, help="images per accelerator (SimCLR: 4096/32)")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="bf16 peak of one accelerator (H200: ~790)")
    parser.add_argument("--mfu", type=float, default=0.4, help="fraction of the peak a ResNet-50 step reaches")
    parser.add_argument("--gradient-bytes", type=int, default=4, help="bytes per reduced gradient value (fp32: 4)")
    parser.add_argument("--per-node", type=int, default=8, help="accelerators per machine")
    parser.add_argument("--intra-node-gbps", type=float, default=450.0, help="GB/s per accelerator within a node")
    parser.add_argument("--inter-node-gbps", type=float, default=50.0, help="GB/s per accelerator across nodes")
    parser.add_argument("--intra-node-latency-us", type=float, default=5.0, help="one hop within a node")
    parser.add_argument("--inter-node-latency-us", type=float, default=10.0, help="one hop across nodes")
    parser.add_argument("--no-sync-batchnorm", dest="sync_batchnorm", action="store_false", help="per-replica BN")
    args = parser.parse_args()
    rows = [step_costs(int(n), args.per_replica_batch, args) for n in args.replicas.split(",")]
    print(
        "| accelerators | global batch | TFLOP/step/acc. | compute ms | all-reduce MB | all-gather MB "
        "| bandwidth ms | latency ms | efficiency (no overlap) | efficiency (overlapped) |"
    )
    print("|---:" * 10 + "|")
    for r in rows:
        print(
            f"| {r['replicas']} | {r['global_batch']} | {r['tflop_per_step']:.2f} | {r['compute_ms']:.1f} "
            f"| {r['allreduce_mb']:.0f} | {r['gather_mb']:.2f} | {r['bandwidth_ms']:.2f} | {r['latency_ms']:.2f} "
            f"| {100 * r['efficiency_no_overlap']:.0f}% | {100 * r['efficiency_overlapped']:.0f}% |"
        )


if __name__ == "__main__":
    main()
