#!/usr/bin/env bash
# `switchyard cluster` on a synthetic large cluster: NODES Kubernetes nodes (8 GPUs and an SR-IOV
# RDMA resource each), PODS_PER_NODE pods per node (half with a secondary RDMA network and its
# network-status), 10 NetworkAttachmentDefinitions; and the same NODES as Slurm nodes with
# gres.conf and a two-level topology.conf. Prints wall time and peak RSS of each check.
# Target: 2,000 nodes and 20,000 pods checked in under 5 s.
set -euo pipefail
cd "$(dirname "$0")/.."
NODES="${NODES:-2000}"
PODS_PER_NODE="${PODS_PER_NODE:-10}"
[ -x .build/release/switchyard ] || swift build -c release --product switchyard >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/k8s" "$work/slurm"

python3 - "$work" "$NODES" "$PODS_PER_NODE" <<'PY'
import json, sys
work, nodes, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
res = "nvidia.com/mlnx_rdma"
def lst(items): return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}
node_items, pod_items = [], []
for n in range(nodes):
    name = f"gpu{n + 1:04d}"
    node_items.append({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "cloud.google.com/gke-nodepool": f"pool-{n // 250}",
            "nvidia.com/gpu.present": "true", "nvidia.com/gpu.count": "8", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}},
        "spec": {"podCIDR": "10.0.0.0/24"},
        "status": {"allocatable": {"cpu": "190", "memory": "2113455748Ki", "nvidia.com/gpu": "8", res: "8"},
                   "conditions": [{"type": t, "status": "False"} for t in ("MemoryPressure", "DiskPressure", "PIDPressure")]
                                 + [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}})
    for p in range(per):
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"job-{n}-{p}", "namespace": f"ns{p % 10}", "annotations": {}},
               "spec": {"nodeName": name, "containers": [{"name": "c", "resources": {"requests": {"nvidia.com/gpu": "1"}}}]},
               "status": {"phase": "Running"}}
        if p % 2 == 0:
            ns = f"ns{p % 10}"
            pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] = "rdma-net@net1"
            pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"] = json.dumps([
                {"name": f"{ns}/rdma-net", "interface": "net1", "ips": [f"192.168.{n % 250}.{p + 2}"], "mtu": 9000,
                 "device-info": {"type": "pci", "pci": {"pci-address": "0000:1a:00.2", "rdma-device": "mlx5_12"}}}])
            pod["spec"]["containers"][0]["resources"]["requests"][res] = "1"
        pod_items.append(pod)
nads = [{"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
         "metadata": {"name": "rdma-net", "namespace": f"ns{i}", "annotations": {"k8s.v1.cni.cncf.io/resourceName": res}},
         "spec": {"config": json.dumps({"cniVersion": "0.3.1", "name": "rdma-net", "plugins": [{"type": "sriov", "mtu": 9000}, {"type": "rdma"}]})}}
        for i in range(10)]
for fname, items in (("nodes.json", node_items), ("pods.json", pod_items), ("network-attachment-definitions.json", nads)):
    with open(f"{work}/k8s/{fname}", "w") as f: json.dump(lst(items), f)
with open(f"{work}/slurm/scontrol-show-node.txt", "w") as f:
    for n in range(nodes):
        name = f"gpu{n + 1:04d}"
        f.write(f"NodeName={name} Arch=x86_64 CoresPerSocket=48 CPUAlloc=0 CPUTot=192 Gres=gpu:h100:8(S:0-1) NodeAddr={name} "
                f"NodeHostName={name} Version=23.02.7 OS=Linux 5.15.0-105-generic #115-Ubuntu SMP RealMemory=2063000 Sockets=2 "
                f"State=IDLE ThreadsPerCore=2 Partitions=gpu CfgTRES=cpu=192,gres/gpu=8\n")
with open(f"{work}/slurm/gres.conf", "w") as f:
    f.write(f"NodeName=gpu[0001-{nodes:04d}] Name=gpu Type=h100 File=/dev/nvidia[0-3] Cores=0-47\n")
    f.write(f"NodeName=gpu[0001-{nodes:04d}] Name=gpu Type=h100 File=/dev/nvidia[4-7] Cores=48-95\n")
with open(f"{work}/slurm/topology.conf", "w") as f:
    leaves = (nodes + 15) // 16
    for s in range(leaves):
        f.write(f"SwitchName=leaf{s} Nodes=gpu[{s * 16 + 1:04d}-{min(nodes, s * 16 + 16):04d}]\n")
    f.write(f"SwitchName=spine Switches=leaf[0-{leaves - 1}]\n")
PY

measure() { # label args…
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" .build/release/switchyard cluster "$@" --format json >"$work/out.json" || true
  read -r secs kib < "$work/time"
  local summary
  summary=$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["summary"]; print("%d passed, %d warnings, %d failed" % (s["pass"], s["warn"], s["fail"]))' "$work/out.json")
  printf "%-44s %6.2f s  %6.0f MiB peak RSS   %s\n" "$label" "$secs" "$(awk -v k="$kib" 'BEGIN{print k/1024}')" "$summary"
}
echo "== switchyard cluster on a synthetic cluster ($(du -sh "$work/k8s" | cut -f1) of kubectl JSON)"
measure "k8s: $NODES nodes, $((NODES * PODS_PER_NODE)) pods, 10 NADs" k8s --from "$work/k8s"
measure "slurm: $NODES nodes, gres.conf, topology.conf" slurm --from "$work/slurm"
