#!/usr/bin/env bash
# The ecosystem's checks: antsibull-changelog lint, ansible-lint --profile production, the built
# tarball through galaxy-importer, installed with ansible-galaxy into a fresh collections path,
# ansible-doc of every module and the role from there, and the publish playbook run from there twice.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$ROOT"
TOOLS="$ROOT/.venv-tools"
stamp="$TOOLS/.requirements.sha256"
want="$(sha256sum requirements-tools.txt | cut -d' ' -f1)"
if [ ! -x "$TOOLS/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "[ecosystem] installing the tools into $TOOLS"
    rm -rf "$TOOLS"
    python3.11 -m venv "$TOOLS" 2>/dev/null || python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install -q --disable-pip-version-check -r requirements-tools.txt
    echo "$want" > "$stamp"
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/onmetal-ecosystem.XXXXXX")"
printf "[defaults]\nlocalhost_warning = false\n" > "$work/ansible.cfg"
trap 'rm -rf "$work"' EXIT

echo "== antsibull-changelog lint"
"$TOOLS/bin/antsibull-changelog" lint

echo "== ansible-lint --profile production"
PATH="$TOOLS/bin:$PATH" "$TOOLS/bin/ansible-lint" --profile production --offline --nocolor -q

echo "== galaxy-importer on the built tarball"
"$ROOT/.venv/bin/ansible-galaxy" collection build --force --output-path "$work" . >/dev/null
tarball="$(ls "$work"/gardenlinux-onmetal-*.tar.gz)"
printf '[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = True\nCHECK_CHANGELOG = False\n' > "$work/importer.cfg"
(cd "$work" && PATH="$TOOLS/bin:$PATH" GALAXY_IMPORTER_CONFIG="$work/importer.cfg" \
    "$TOOLS/bin/python" -m galaxy_importer.main "$tarball" > "$work/importer.log" 2>&1) || {
    cat "$work/importer.log"; exit 1; }
if grep -E '^(ERROR|WARNING)' "$work/importer.log"; then echo "galaxy-importer complained"; exit 1; fi
tail -n 1 "$work/importer.log"

echo "== installed into a fresh collections path"
# Away from the checkout: its ansible.cfg would show the collection as installed already.
export ANSIBLE_COLLECTIONS_PATH="$work/collections" ANSIBLE_CONFIG="$work/ansible.cfg" ANSIBLE_NOCOLOR=1
(cd "$work" && "$ROOT/.venv/bin/ansible-galaxy" collection install "$tarball" -p "$work/collections" >/dev/null)
modules="$(find "$work/collections/ansible_collections/gardenlinux/onmetal/plugins/modules" -name "*.py" -printf "%f\n" | sed "s/\.py$//" | sort)"
for module in $modules; do
    "$ROOT/.venv/bin/ansible-doc" "gardenlinux.onmetal.$module" > "$work/doc.txt"
    grep -q "OPTIONS" "$work/doc.txt" || { echo "ansible-doc rendered no options for $module"; exit 1; }
done
"$ROOT/.venv/bin/ansible-doc" -t role gardenlinux.onmetal.publish | grep -q publish_release_dir
echo "ansible-doc renders: $(echo "$modules" | tr '\n' ' ')and the role publish"

echo "== the publish playbook from the installed collection, twice"
"$ROOT/.venv/bin/python" scripts/sample_release.py "$work/release" --rootfs-mib 1 >/dev/null
mkdir -p "$work/cwd"
for run in 1 2; do
    (cd "$work/cwd" && "$ROOT/.venv/bin/ansible-playbook" gardenlinux.onmetal.publish \
        -e publish_release_dir="$work/release" > "$work/run$run.log") || { cat "$work/run$run.log"; exit 1; }
done
grep -q "changed=0" "$work/run2.log" || { cat "$work/run2.log"; echo "the second run changed something"; exit 1; }
test -f "$work/cwd/.build/oci/index.json"
(cd "$work/cwd" && "$ROOT/.venv/bin/ansible" localhost -m gardenlinux.onmetal.onmetal_info \
    -a "ref=oci:.build/oci:1877.0 query=command_line" -e ansible_python_interpreter="$ROOT/.venv/bin/python") | grep -q "root=LABEL=ROOT"
echo "ecosystem: all checks passed"
