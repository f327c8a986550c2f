#!/usr/bin/env bash
# The README's first command: publish a sample release into an OCI image layout (no server needed),
# signed with a generated key, then again to show that nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ANSIBLE_CONFIG="$PWD/ansible.cfg" ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-}"
.venv/bin/python scripts/sample_release.py .build/demo/release >/dev/null
for run in first second; do
  echo "=== $run run ==="
  .venv/bin/ansible-playbook -i localhost, playbooks/demo.yml
done
echo "The image is in $PWD/.build/oci (an OCI image layout); the demo key pair in $PWD/.build/demo."
