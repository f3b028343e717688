#!/usr/bin/env bash
# Renders every kustomize overlay of deploy/kubernetes (kubectl kustomize) into OUT/<name>.yaml
# and validates each against the Kubernetes API schemas (kubernetes-validate --strict: unknown
# fields are errors). Custom resources have no schema offline (ServiceMonitor, ScaledObject,
# NetworkAttachmentDefinition): they are listed and checked field by field by DeployManifestTests;
# any other kind without a schema fails.
#   usage: scripts/validate-deploy.sh [OUT]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
validate="$root/.venv/bin/kubernetes-validate"
[ -x "$validate" ] || { echo "validate-deploy: $validate missing; run scripts/bootstrap.sh" >&2; exit 1; }
command -v kubectl >/dev/null || { echo "validate-deploy: kubectl is needed (kubectl kustomize renders the overlays)" >&2; exit 1; }
known_crds='ServiceMonitor|ScaledObject|NetworkAttachmentDefinition'
status=0
for dir in "$root/deploy/kubernetes/base" "$root"/deploy/kubernetes/overlays/*/; do
  name="$(basename "$dir")"
  file="$out/$name.yaml"
  kubectl kustomize "$dir" > "$file"
  report="$("$validate" --strict "$file" 2>&1)" || { echo "$report" >&2; echo "validate-deploy: $name: INVALID" >&2; status=1; continue; }
  unknown="$(grep -E "Couldn't find schema for kind" <<<"$report" | grep -vE "kind ($known_crds) " || true)"
  if [ -n "$unknown" ]; then echo "$unknown" >&2; echo "validate-deploy: $name: kinds without a schema" >&2; status=1; continue; fi
  crds="$(grep -oE "kind ($known_crds) " <<<"$report" | awk '{print $2}' | sort -u | paste -sd, - || true)"
  echo "validate-deploy: $name: $(grep -c 'passed for resource' <<<"$report") resources valid${crds:+; custom resources checked by the policy test: $crds}"
done
exit $status
