#!/usr/bin/env bash
# The second recipe: start Debian's docker-registry on 127.0.0.1, publish the sample release there
# (signed and verified), run again to show nothing is sent, read it back, then stop the registry.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
port="${DEMO_REGISTRY_PORT:-5555}"
dir="$PWD/.build/demo-registry"
mkdir -p "$dir/storage"
cat > "$dir/config.yml" <<YAML
version: 0.1
log: {level: warn, formatter: text}
storage: {filesystem: {rootdirectory: $dir/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YAML
docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
registry=$!
trap 'kill $registry 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
export ANSIBLE_CONFIG="$PWD/ansible.cfg"
.venv/bin/python scripts/sample_release.py .build/demo/release >/dev/null
.venv/bin/ansible localhost \
  -m gardenlinux.onmetal.cosign_keypair -a "private_key=$PWD/.build/demo/cosign.key password=demo-only-password" >/dev/null
for run in first second; do
  echo "=== $run run ==="
  .venv/bin/ansible-playbook -i localhost, playbooks/publish.yml \
    -e publish_release_dir="$PWD/.build/demo/release" -e publish_target="127.0.0.1:$port/gardenlinux/kvm" \
    -e publish_plain_http=true -e publish_private_key="$PWD/.build/demo/cosign.key" \
    -e publish_key_password=demo-only-password -e publish_public_key="$PWD/.build/demo/cosign.pub"
done
.venv/bin/ansible localhost \
  -m gardenlinux.onmetal.onmetal_info -a "ref=127.0.0.1:$port/gardenlinux/kvm:1877.0 plain_http=true query=urls"
