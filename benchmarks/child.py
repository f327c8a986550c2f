"""One measured client push, run by benchmarks/run.py as its own process.

    python benchmarks/child.py engine SPEC_JSON
    python benchmarks/child.py oras-py SPEC_JSON

Kept apart from run.py so that the process whose peak RSS is measured imports only what the
client needs. Prints one JSON line with what the client said and its own timings.
"""

import json
import os
import sys
import time


def engine(spec):
    """Our engine as the onmetal_push module calls it, with timers around hashing (on the hashing
    thread when a fresh push streams, so it overlaps the uploads), each streamed upload and each
    other blob upload (wrappers only: the engine's code runs unchanged)."""
    t_start = time.perf_counter()
    sys.path.insert(0, os.path.join(spec["repo"], ".collections"))
    # pylint: disable=import-outside-toplevel
    from ansible_collections.gardenlinux.onmetal.plugins.module_utils.push import push_image
    from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import parse
    from ansible_collections.gardenlinux.onmetal.plugins.module_utils.target import open_target
    from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci, registry

    timings = {"hash_s": 0.0, "stream_s": 0.0, "blobs_s": 0.0, "manifest_s": 0.0}

    def timed(owner, name, key):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timings[key] += time.perf_counter() - started

        setattr(owner, name, wrapper)

    timed(oci, "file_digest", "hash_s")
    timed(registry.RegistryTarget, "stream_blob", "stream_s")
    timed(registry.RegistryTarget, "push_blob", "blobs_s")
    timed(registry.RegistryTarget, "push_manifest", "manifest_s")
    t_imported = time.perf_counter()
    result = push_image(open_target(parse(spec["ref"]), {"plain_http": True}), spec["params"])
    t_done = time.perf_counter()
    return {
        "import_s": t_imported - t_start,
        "push_s": t_done - t_imported,
        **timings,
        "changed": result.get("changed"),
        "digest": result.get("digest"),
        "bytes_sent": result.get("bytes_sent"),
        "blobs_sent": len(result.get("blobs_sent") or []),
        "blobs_skipped": len(result.get("blobs_skipped") or []),
        "manifests_written": len(result.get("manifests_written") or []),
    }


def oras_py(spec):
    """oras-py's Registry.push() as its README shows it, run in the release folder."""
    t_start = time.perf_counter()
    import oras.provider  # pylint: disable=import-outside-toplevel

    t_imported = time.perf_counter()
    os.chdir(spec["cwd"])
    client = oras.provider.Registry(hostname=spec["host"], insecure=True)
    response = client.push(target=spec["ref"], files=spec["files"], manifest_config=spec["config"], quiet=True)
    t_done = time.perf_counter()
    if response.status_code not in (200, 201):
        raise SystemExit("oras-py push answered %s: %s" % (response.status_code, response.text[:300]))
    return {
        "import_s": t_imported - t_start,
        "push_s": t_done - t_imported,
        "status": response.status_code,
        "digest": response.headers.get("Docker-Content-Digest"),
    }


def main():
    kind, spec = sys.argv[1], json.loads(sys.argv[2])
    run = {"engine": engine, "oras-py": oras_py}[kind]
    print(json.dumps(run(spec)), flush=True)


if __name__ == "__main__":
    main()
