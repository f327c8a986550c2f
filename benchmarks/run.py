"""Push the same release with our engine, the oras CLI, oras-py and curl, side by side, to one
fresh loopback registry; time the publish playbook on a small unchanged release.

    make bench                                   # .venv/bin/python benchmarks/run.py
    .venv/bin/python benchmarks/run.py --rootfs-mib 64 --initrd-mib 4 --kernel-mib 2 --repeat 1
    .venv/bin/python benchmarks/run.py --only engine,curl

What it does, in one run:

- starts Debian's docker-registry (distribution 2.8) on 127.0.0.1 with a temporary storage folder
  (tests/support/registry.py), and stops it at the end, errors and Ctrl-C included;
- makes the release once with scripts/sample_release.py (cached under benchmarks/results/, which
  git and the collection build ignore) and reads it once (sha256) so every client reads from the
  page cache;
- for each repeat and client (the order rotates each repeat): a fresh push to a new repository
  name, then the same push again to that repository ("unchanged"). distribution 2.8 does not
  mount blobs across repositories by itself, so every fresh push uploads every byte: checked
  from the registry's access log;
- runs each client as a child of its own and takes wall time and peak RSS from that child's
  wait4() rusage (the child and the descendants it waited for: no max over earlier children);
- counts from the registry's access log what each run wrote (blob uploads and their bytes,
  manifest PUTs), and the registry's CPU time from /proc.

Writes benchmarks/results/latest.md and latest.json and prints the Markdown table. Exits 1
when a check fails (a fresh push that did not upload everything, an unchanged engine push that
wrote something, a client that failed); a target missed is reported, not an error.
"""

import argparse
import datetime
import glob
import hashlib
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import parse_qs, urlsplit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results")
CHILD = os.path.join(REPO, "benchmarks", "child.py")
MIB = 1024 * 1024
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None  # Debian package `time`

CLIENTS = ("engine", "oras", "oras-py", "curl", "playbook")
LABELS = {
    "engine": "gardenlinux.onmetal engine",
    "oras": "oras CLI `oras push`",
    "oras-py": "oras-py `push()`",
    "curl": "`curl -T` (upload only)",
    "curl+dgst": "`curl -T` + `openssl dgst`",
    "playbook": "publish playbook (small release: push, sign, verify)",
}
COMMAND_LINE = "root=LABEL=ROOT ro"
TAG = "bench"
NEXT_TAG = "next"
NEXT_CNAME = "kvm-gardener_prod-amd64-1877.1-demo0002"
MEDIA = {  # the onmetal flavor (SPEC.md section 1): every client pushes the same four blobs
    "config": "application/vnd.onmetal.image.config.v1alpha1+json",
    "rootfs": "application/vnd.onmetal.image.rootfs.v1alpha1.rootfs",
    "initramfs": "application/vnd.onmetal.image.initramfs.v1alpha1.initramfs",
    "kernel": "application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz",
}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

TARGETS = {
    "fresh_vs_curl": 1.15,
    "fresh_vs_oras": 1.0,
    "rss_mib": 64.0,
    "unchanged_s": 1.0,
    "playbook_rerun_s": 5.0,
}


class BenchError(RuntimeError):
    pass


def log(message):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), message), file=sys.stderr, flush=True)


# --- measured children -------------------------------------------------------------------------

class Child:
    """Runs one command under GNU time as a child of its own, and reaps it with wait4().

    Peak RSS comes from GNU time (%M, KiB): the maximum resident set of the command and the
    children it waited for. Not from this process's wait4(): exec() keeps the high-water mark of
    the memory the child had before it (Linux exec_mmap), and a child forked from this Python
    process starts with all of this process's memory, so its ru_maxrss would never go below ours.
    GNU time is small, so what it adds that way is about 2 MiB.
    """

    current = None  # the running child, killed by the cleanup if the benchmark is interrupted

    def __init__(self, argv, cwd, env, timeout, out_path, err_path):
        self.argv, self.cwd, self.env, self.timeout = argv, cwd, env, timeout
        self.rss_path = out_path + ".rss"
        self.out_path, self.err_path = out_path, err_path
        self.pid = None
        self.timed_out = False

    def kill(self):
        if self.pid:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except OSError:
                pass

    def _on_timeout(self):
        self.timed_out = True
        self.kill()

    def run(self):
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            started = time.perf_counter()
            # pylint: disable-next=consider-using-with
            argv = [TIME, "-f", "%M", "-o", self.rss_path] + self.argv if TIME else self.argv
            proc = subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, start_new_session=True)
            self.pid = proc.pid
            Child.current = self
            timer = threading.Timer(self.timeout, self._on_timeout)
            timer.daemon = True
            timer.start()
            try:
                status, usage = os.wait4(proc.pid, 0)[1:]
            finally:
                timer.cancel()
                Child.current = None
            wall = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        self.pid = None
        with open(self.out_path, "rb") as handle:
            stdout = handle.read().decode("utf-8", "replace")
        with open(self.err_path, "rb") as handle:
            stderr = handle.read().decode("utf-8", "replace")
        maxrss_kib = usage.ru_maxrss  # KiB; without GNU time it holds the parent's RSS at fork too
        if TIME:
            with open(self.rss_path, "r", encoding="utf-8") as handle:
                lines = handle.read().split()
            maxrss_kib = int(lines[-1]) if lines and lines[-1].isdigit() else 0
        if self.timed_out:
            raise BenchError("%s: killed after %d s" % (shlex.join(self.argv[:3]), self.timeout))
        if proc.returncode != 0:
            raise BenchError("%s exited with %s:\n%s%s" % (
                shlex.join(self.argv), proc.returncode, stdout[-1500:], stderr[-3000:]))
        return {
            "wall_s": wall,
            "maxrss_mib": maxrss_kib / 1024.0,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "stdout": stdout,
            "stderr": stderr,
        }


def quick(argv, cwd=None, env=None, timeout=120):
    """An unmeasured helper command; its output as text."""
    done = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise BenchError("%s failed (%s):\n%s%s" % (shlex.join(argv), done.returncode,
                                                    done.stdout.decode()[-2000:], done.stderr.decode()[-2000:]))
    return done.stdout.decode("utf-8", "replace")


def median(values):
    return statistics.median(values) if values else None


# --- the benchmark -----------------------------------------------------------------------------

class Bench:
    # pylint: disable=too-many-instance-attributes

    def __init__(self, args):
        self.args = args
        self.python = sys.executable
        venv_bin = os.path.join(REPO, ".venv", "bin")
        self.bin_dir = venv_bin if os.path.isfile(os.path.join(venv_bin, "ansible-playbook")) \
            else os.path.dirname(sys.executable)
        self.oras = os.path.join(REPO, ".peers", "bin", "oras")
        self.workdir = tempfile.mkdtemp(prefix="onmetal-bench-")
        self.logdir = os.path.join(self.workdir, "logs")
        os.makedirs(self.logdir)
        self.registry = None
        self.runs = []       # every measured run, raw
        self.problems = []   # failed checks: the benchmark exits 1
        self.notes = []
        self.env = self._env()
        self.release = None  # {"dir", "files": {role: path}, "config": path}
        self.blobs = {}      # digest -> size, of the release's four blobs
        self.hash_warm_s = None
        self.next = None     # the next release: every file new, pushed under NEXT_TAG

    def _env(self):
        env = dict(os.environ)
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
            env.pop(name, None)
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        docker = os.path.join(self.workdir, "docker")
        os.makedirs(docker)
        with open(os.path.join(docker, "config.json"), "w", encoding="utf-8") as handle:
            handle.write('{"auths": {}}')
        env["DOCKER_CONFIG"] = docker  # no credentials of this machine's user leak in
        env["ANSIBLE_CONFIG"] = os.path.join(REPO, "ansible.cfg")
        env["ANSIBLE_NOCOLOR"] = "1"
        env["ANSIBLE_LOCALHOST_WARNING"] = "false"
        env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "false"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    # -- setup --

    def make_release(self, rootfs, initrd, kernel, dest=None, cname=None):
        dest = dest or os.path.join(RESULTS, "release-%g-%g-%g" % (rootfs, initrd, kernel))
        log("release in %s (made once, then reused)" % dest)
        quick([self.python, os.path.join(REPO, "scripts", "sample_release.py"), dest,
               "--rootfs-mib", str(rootfs), "--initrd-mib", str(initrd), "--kernel-mib", str(kernel)]
              + (["--cname", cname] if cname else []), timeout=1800)
        raws = sorted(glob.glob(os.path.join(dest, "*.raw")))
        if len(raws) != 1:
            raise BenchError("%s should hold one <cname>.raw, holds %d" % (dest, len(raws)))
        base = raws[0][:-len(".raw")]
        return {"dir": dest, "files": {"rootfs": base + ".raw", "initramfs": base + ".initrd",
                                       "kernel": base + ".vmlinuz"}}

    def prepare(self):
        args = self.args
        self.release = self.make_release(args.rootfs_mib, args.initrd_mib, args.kernel_mib, args.release_dir)
        config = os.path.join(self.workdir, "config.json")
        with open(config, "wb") as handle:  # the bytes our engine writes for this command line
            handle.write(json.dumps({"commandLine": COMMAND_LINE}, separators=(",", ":")).encode())
        self.release["config"] = config
        # Read every file once (page cache warm for all clients) and learn the digests.
        started = time.perf_counter()
        self.release["digests"] = {}
        for role, path in list(self.release["files"].items()) + [("config", config)]:
            digest, size = sha256_file(path)
            self.release["digests"][role] = (digest, size)
            self.blobs[digest] = size
        self.hash_warm_s = time.perf_counter() - started
        self.release["bytes"] = sum(self.blobs.values())
        log("release: %.1f MiB in 4 blobs, read and hashed in %.2f s (page cache now warm)"
            % (self.release["bytes"] / MIB, self.hash_warm_s))
        if "engine" in args.only or "oras" in args.only:
            # The next release of the same size, every file new: pushed under a new tag into the
            # repository the first one went to (the everyday case of a release pipeline).
            self.next = self.make_release(args.rootfs_mib, args.initrd_mib, args.kernel_mib,
                                          (args.release_dir or self.release["dir"]) + "-next", cname=NEXT_CNAME)
            for path in self.next["files"].values():
                sha256_file(path)

        if "oras" in args.only and not os.access(self.oras, os.X_OK):
            raise BenchError("%s is missing: run `make peers` (or leave oras out with --only)" % self.oras)
        if "playbook" in args.only:
            self.small = self.make_release(args.small_rootfs_mib, args.small_initrd_mib, args.small_kernel_mib)
            self.keys = self.make_keys()

        sys.path.insert(0, REPO)
        from tests.support.registry import Registry  # pylint: disable=import-outside-toplevel

        self.registry = Registry(os.path.join(self.workdir, "registry"), log_level=args.registry_log_level)
        self.registry.start()
        log("registry %s (pid %s), storage %s" % (self.registry.url, self.registry.pid, self.registry.storage_dir))
        self.warm_up()

    def make_keys(self):
        keydir = os.path.join(self.workdir, "keys")
        os.makedirs(keydir)
        private, public = os.path.join(keydir, "cosign.key"), os.path.join(keydir, "cosign.pub")
        quick([os.path.join(self.bin_dir, "ansible"), "localhost", "-m", "gardenlinux.onmetal.cosign_keypair",
               "-a", "private_key=%s public_key=%s password=%s" % (private, public, self.args.key_password)],
              cwd=REPO, env=self.env, timeout=300)
        if not (os.path.isfile(private) and os.path.isfile(public)):
            raise BenchError("cosign_keypair did not write %s and %s" % (private, public))
        return {"private": private, "public": public}

    def warm_up(self):
        """Load every program once (binaries, Python imports) so no client pays a cold start."""
        if "oras" in self.args.only:
            quick([self.oras, "version"], env=self.env)
        if "engine" in self.args.only or "oras-py" in self.args.only:
            quick([self.python, "-c", "import sys; sys.path.insert(0, %r); import oras.provider, requests; "
                   "import ansible_collections.gardenlinux.onmetal.plugins.module_utils.push"
                   % os.path.join(REPO, ".collections")], env=self.env)
        quick(["curl", "-sS", "-o", "/dev/null", self.registry.url + "/v2/"], env=self.env)

    # -- measuring --

    def registry_cpu(self):
        with open("/proc/%d/stat" % self.registry.pid, encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def measure(self, client, phase, rep, repo, argv, cwd, parse_json=False):
        label = "%s-%s-%d" % (client, phase, rep)
        os.sync()  # the last run's registry writes go to disk now, not during this run
        cpu_before = self.registry_cpu()
        mark = self.registry.mark()
        child = Child(argv, cwd, self.env, self.args.timeout,
                      os.path.join(self.logdir, label + ".out"), os.path.join(self.logdir, label + ".err"))
        result = child.run()
        requests_seen = self.registry.requests_since(mark)
        result["registry_cpu_s"] = self.registry_cpu() - cpu_before
        result.update(self.request_stats(requests_seen))
        result.update({"client": client, "phase": phase, "rep": rep, "repo": repo})
        if parse_json:
            lines = [line for line in result["stdout"].splitlines() if line.startswith("{")]
            result["reported"] = json.loads(lines[-1]) if lines else None
        if client != "playbook":
            result["stdout"] = result["stdout"][-2000:]
            result["stderr"] = result["stderr"][-2000:]
        self.runs.append(result)
        log("%-9s %-9s #%d  %6.2f s  %6.1f MiB  uploaded %s B in %d blob(s), %d manifest PUT(s), registry CPU %.2f s"
            % (client, phase, rep, result["wall_s"], result["maxrss_mib"], result["blob_bytes"],
               result["blob_uploads"], result["manifest_writes"], result["registry_cpu_s"]))
        return result

    def request_stats(self, seen):
        blob_bytes = 0
        uploads = 0
        for request in seen:
            if request.method == "PUT" and "/blobs/uploads/" in request.path and 200 <= request.status < 300:
                digest = (parse_qs(urlsplit(request.uri).query).get("digest") or [""])[0]
                uploads += 1
                if digest in self.blobs:
                    blob_bytes += self.blobs[digest]
                else:  # not one of ours (playbook: signatures, referrers): the stored size
                    path = self.registry.blob_data_path(digest)
                    blob_bytes += os.path.getsize(path) if os.path.exists(path) else 0
        writes = [r for r in seen if r.method in ("PUT", "POST", "PATCH", "DELETE")]
        return {
            "requests": len(seen),
            "writes": len(writes),
            "write_lines": [r.method + " " + r.path for r in writes][:50],
            "blob_uploads": uploads,
            "blob_bytes": blob_bytes,
            "patches": sum(1 for r in seen if r.method == "PATCH"),
            "manifest_writes": sum(1 for r in seen if r.method == "PUT" and "/manifests/" in r.path),
            "errors": sum(1 for r in seen if r.status >= 400 and not (r.method == "HEAD" and r.status == 404)
                          and not (r.method == "GET" and r.status == 404)),
        }

    def check_fresh(self, result):
        if result["blob_bytes"] != self.release["bytes"] or result["blob_uploads"] != len(self.blobs):
            self.problems.append(
                "%s fresh #%d uploaded %d bytes in %d blobs, not all %d bytes in %d blobs (cross-repo mount?)"
                % (result["client"], result["rep"], result["blob_bytes"], result["blob_uploads"],
                   self.release["bytes"], len(self.blobs)))

    def ref(self, repo, tag=TAG):
        return "%s/%s:%s" % (self.registry.host, repo, tag)

    def check_next(self, result):
        if result["blob_uploads"] != 3 or result["manifest_writes"] != 1:
            self.problems.append("%s next #%d uploaded %d blobs and %d manifests, not 3 (all but the config) and 1"
                                 % (result["client"], result["rep"], result["blob_uploads"], result["manifest_writes"]))

    # -- clients --

    def run_engine(self, rep):
        repo = "bench/engine-%d" % rep
        files = self.release["files"]
        spec = {"repo": REPO, "ref": self.ref(repo), "params": {
            "rootfs": files["rootfs"], "kernel": files["kernel"], "initramfs": files["initramfs"],
            "command_line": COMMAND_LINE}}
        argv = [self.python, CHILD, "engine", json.dumps(spec)]
        fresh = self.measure("engine", "fresh", rep, repo, argv, REPO, parse_json=True)
        self.check_fresh(fresh)
        again = self.measure("engine", "unchanged", rep, repo, argv, REPO, parse_json=True)
        said = again.get("reported") or {}
        if again["writes"] or said.get("changed") or said.get("bytes_sent"):
            self.problems.append("engine unchanged #%d: changed=%s, bytes_sent=%s, registry writes %s"
                                 % (rep, said.get("changed"), said.get("bytes_sent"), again["write_lines"]))
        files = self.next["files"]
        spec = {"repo": REPO, "ref": self.ref(repo, NEXT_TAG), "params": {
            "rootfs": files["rootfs"], "kernel": files["kernel"], "initramfs": files["initramfs"],
            "command_line": COMMAND_LINE}}
        argv = [self.python, CHILD, "engine", json.dumps(spec)]
        self.check_next(self.measure("engine", "next", rep, repo, argv, REPO, parse_json=True))

    def _relative_files(self, release=None):
        files = (release or self.release)["files"]
        return ["%s:%s" % (os.path.basename(files[role]), MEDIA[role]) for role in ("rootfs", "initramfs", "kernel")]

    def run_oras(self, rep):
        repo = "bench/oras-%d" % rep
        argv = [self.oras, "push", "--plain-http", "--no-tty", self.ref(repo)] + self._relative_files() + \
            ["--config", "%s:%s" % (self.release["config"], MEDIA["config"])]
        fresh = self.measure("oras", "fresh", rep, repo, argv, self.release["dir"])
        self.check_fresh(fresh)
        self.measure("oras", "unchanged", rep, repo, argv, self.release["dir"])
        argv = [self.oras, "push", "--plain-http", "--no-tty", self.ref(repo, NEXT_TAG)] + \
            self._relative_files(self.next) + ["--config", "%s:%s" % (self.release["config"], MEDIA["config"])]
        self.check_next(self.measure("oras", "next", rep, repo, argv, self.next["dir"]))

    def run_oras_py(self, rep):
        repo = "bench/oras-py-%d" % rep
        spec = {"host": self.registry.host, "ref": self.ref(repo), "cwd": self.release["dir"],
                "files": self._relative_files(), "config": "%s:%s" % (self.release["config"], MEDIA["config"])}
        argv = [self.python, CHILD, "oras-py", json.dumps(spec)]
        fresh = self.measure("oras-py", "fresh", rep, repo, argv, self.release["dir"], parse_json=True)
        self.check_fresh(fresh)
        self.measure("oras-py", "unchanged", rep, repo, argv, self.release["dir"], parse_json=True)

    def run_curl(self, rep):
        repo = "bench/curl-%d" % rep
        files = self.release["files"]
        order = [("config", self.release["config"])] + [(role, files[role]) for role in ("rootfs", "initramfs", "kernel")]
        # 1. digests with openssl (timed on its own)
        dgst = self.measure("curl", "dgst", rep, repo, ["openssl", "dgst", "-sha256", "-r"] + [p for role, p in order],
                            self.workdir)
        digests = {}
        for line in dgst["stdout"].splitlines():
            hexdigest, name = line.split(" ", 1)
            digests[name.lstrip("*")] = ("sha256:" + hexdigest, os.path.getsize(name.lstrip("*")))
        for role, path in order:
            if digests.get(path) != self.release["digests"][role]:
                raise BenchError("openssl dgst gave %s for %s, hashlib %s"
                                 % (digests.get(path), path, self.release["digests"][role]))
        # 2. the manifest (not timed: a tool would print it from the digests)
        manifest = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": MEDIA["config"], "digest": digests[self.release["config"]][0],
                       "size": digests[self.release["config"]][1]},
            "layers": [{"mediaType": MEDIA[role], "digest": digests[path][0], "size": digests[path][1],
                        "annotations": {"org.opencontainers.image.title": os.path.basename(path)}}
                       for role, path in order[1:]],
        }
        manifest_path = os.path.join(self.workdir, "curl-manifest.json")
        with open(manifest_path, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(manifest, separators=(",", ":")))
        # 3. POST + curl -T per blob, PUT the manifest: one shell script, measured as one child
        base = "%s/v2/%s" % (self.registry.url, repo)
        lines = ["set -euo pipefail", "up() {",
                 "  loc=$(curl -sS -f -X POST -o /dev/null -D - %s | tr -d '\\r' | sed -n 's/^[Ll]ocation: *//p')"
                 % shlex.quote(base + "/blobs/uploads/"),
                 "  case $loc in http*) ;; *) loc=%s$loc ;; esac" % shlex.quote(self.registry.url),
                 "  case $loc in *\\?*) sep='&' ;; *) sep='?' ;; esac",
                 "  curl -sS -f -o /dev/null -H 'Content-Type: application/octet-stream' -T \"$1\" \"$loc${sep}digest=$2\"",
                 "}"]
        for role, path in order:
            lines.append("up %s %s" % (shlex.quote(path), digests[path][0]))
        lines.append("curl -sS -f -o /dev/null -X PUT -H %s --data-binary @%s %s" % (
            shlex.quote("Content-Type: " + OCI_MANIFEST), shlex.quote(manifest_path),
            shlex.quote("%s/manifests/%s" % (base, TAG))))
        script = os.path.join(self.workdir, "curl-push.sh")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        fresh = self.measure("curl", "fresh", rep, repo, ["bash", script], self.workdir)
        self.check_fresh(fresh)

    def run_playbook(self, rep):
        repo = "bench/pb-%d" % rep
        argv = [os.path.join(self.bin_dir, "ansible-playbook"), os.path.join(REPO, "playbooks", "publish.yml"),
                "-i", "localhost,",
                "-e", "publish_release_dir=%s" % self.small["dir"],
                "-e", "publish_target=%s/%s" % (self.registry.host, repo),
                "-e", "publish_plain_http=true",
                "-e", "publish_private_key=%s" % self.keys["private"],
                "-e", "publish_key_password=%s" % self.args.key_password,
                "-e", "publish_public_key=%s" % self.keys["public"]]
        for phase in ("first", "rerun"):
            result = self.measure("playbook", phase, rep, repo, argv, REPO)
            result["recap_changed"] = recap_changed(result["stdout"])
            result["stdout"] = result["stdout"][-3000:]
            result["stderr"] = result["stderr"][-2000:]
            if phase == "rerun" and (result["writes"] or result["recap_changed"]):
                self.problems.append("playbook re-run #%d: changed=%s in the recap, registry writes %s"
                                     % (rep, result["recap_changed"], result["write_lines"]))

    # -- the whole run --

    def run(self):
        self.load_before = os.getloadavg()
        self.prepare()
        clients = [c for c in CLIENTS if c in self.args.only]
        for rep in range(1, self.args.repeat + 1):
            order = clients[(rep - 1) % len(clients):] + clients[:(rep - 1) % len(clients)]
            log("repeat %d of %d: %s" % (rep, self.args.repeat, ", ".join(order)))
            for client in order:
                try:
                    getattr(self, "run_" + client.replace("-", "_"))(rep)
                except BenchError as exc:
                    self.problems.append("%s #%d failed: %s" % (client, rep, exc))
                    log("FAILED %s #%d: %s" % (client, rep, str(exc)[:2000]))

    def close(self):
        child = Child.current
        if child:
            child.kill()
        if self.registry:
            self.registry.stop()
        if self.args.keep:
            log("kept %s" % self.workdir)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)


def sha256_file(path):
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while True:
            block = handle.read(MIB)
            if not block:
                break
            digest.update(block)
            size += len(block)
    return "sha256:" + digest.hexdigest(), size


def recap_changed(stdout):
    for line in stdout.splitlines():
        if line.startswith("localhost") and "changed=" in line:
            return int(line.split("changed=", 1)[1].split()[0])
    return None


# --- the report ----------------------------------------------------------------------------------

def summarize(bench):
    runs = bench.runs

    def pick(client, phase):
        return [r for r in runs if r["client"] == client and r["phase"] == phase]

    rows = {}
    for client in CLIENTS:
        fresh = pick(client, "first" if client == "playbook" else "fresh")
        again = pick(client, "rerun" if client == "playbook" else "unchanged")
        every = fresh + again
        if not every:
            continue
        row = {
            "label": LABELS[client],
            "fresh_median_s": median([r["wall_s"] for r in fresh]),
            "fresh_min_s": min([r["wall_s"] for r in fresh], default=None),
            "peak_rss_mib": max(r["maxrss_mib"] for r in every),
            "fresh_cpu_s": median([r["cpu_s"] for r in fresh]),
            "fresh_registry_cpu_s": median([r["registry_cpu_s"] for r in fresh]),
            "unchanged_median_s": median([r["wall_s"] for r in again]),
            "unchanged_min_s": min([r["wall_s"] for r in again], default=None),
            "unchanged_max_s": max([r["wall_s"] for r in again], default=None),
            "unchanged_blob_bytes": max([r["blob_bytes"] for r in again], default=None),
            "unchanged_manifest_writes": max([r["manifest_writes"] for r in again], default=None),
            "unchanged_writes": max([r["writes"] for r in again], default=None),
            "runs": len(fresh),
        }
        following = pick(client, "next")
        if following:
            row["next_median_s"] = median([r["wall_s"] for r in following])
            row["next_min_s"] = min(r["wall_s"] for r in following)
        if client == "engine":
            said = [r["reported"] for r in fresh if r.get("reported")]
            for key in ("import_s", "hash_s", "stream_s", "blobs_s", "manifest_s", "push_s"):
                row["fresh_" + key] = median([s.get(key, 0.0) for s in said])
            said = [r["reported"] for r in again if r.get("reported")]
            for key in ("import_s", "hash_s", "push_s"):
                row["unchanged_" + key] = median([s[key] for s in said])
        if client == "playbook":
            row["rerun_recap_changed"] = max([r.get("recap_changed") or 0 for r in again], default=None)
        rows[client] = row
        if client == "curl":
            dgst = pick("curl", "dgst")
            totals = [f["wall_s"] + d["wall_s"] for f, d in zip(fresh, dgst)]
            rows["curl"]["dgst_median_s"] = median([d["wall_s"] for d in dgst])
            rows["curl+dgst"] = {
                "label": LABELS["curl+dgst"],
                "fresh_median_s": median(totals), "fresh_min_s": min(totals, default=None),
                "peak_rss_mib": max(r["maxrss_mib"] for r in fresh + dgst),
                "fresh_cpu_s": median([f["cpu_s"] + d["cpu_s"] for f, d in zip(fresh, dgst)]),
                "fresh_registry_cpu_s": rows["curl"]["fresh_registry_cpu_s"],
                "runs": len(totals),
            }
    oras = (rows.get("oras") or {}).get("fresh_median_s")
    curl = (rows.get("curl") or {}).get("fresh_median_s")
    for client, row in rows.items():
        if client == "playbook":
            continue
        row["ratio_oras"] = row["fresh_median_s"] / oras if oras else None
        row["ratio_curl"] = row["fresh_median_s"] / curl if curl else None
    return rows


def evaluate(rows):
    targets = []

    def add(name, value, limit, ok, shown):
        targets.append({"target": name, "value": value, "limit": limit,
                        "pass": None if value is None else bool(ok), "shown": shown})

    engine = rows.get("engine")
    playbook = rows.get("playbook")
    if engine:
        ratio = engine.get("ratio_curl")
        add("engine fresh push <= %.2fx curl -T" % TARGETS["fresh_vs_curl"], ratio, TARGETS["fresh_vs_curl"],
            ratio is not None and ratio <= TARGETS["fresh_vs_curl"], fmt(ratio, "%.2fx"))
        ratio = engine.get("ratio_oras")
        add("engine fresh push <= %.2fx oras CLI" % TARGETS["fresh_vs_oras"], ratio, TARGETS["fresh_vs_oras"],
            ratio is not None and ratio <= TARGETS["fresh_vs_oras"], fmt(ratio, "%.2fx"))
        add("engine peak RSS <= %g MiB" % TARGETS["rss_mib"], engine["peak_rss_mib"], TARGETS["rss_mib"],
            engine["peak_rss_mib"] <= TARGETS["rss_mib"], "%.1f MiB" % engine["peak_rss_mib"])
        value = engine.get("unchanged_max_s")
        clean = engine.get("unchanged_writes") == 0 and engine.get("unchanged_blob_bytes") == 0
        add("engine unchanged re-push <= %g s (slowest run), no byte sent, no manifest written" % TARGETS["unchanged_s"],
            value, TARGETS["unchanged_s"], value is not None and value <= TARGETS["unchanged_s"] and clean,
            "%s, %s B, %s writes" % (fmt(value, "%.2f s"), engine.get("unchanged_blob_bytes"),
                                     engine.get("unchanged_writes")))
    if playbook:
        value = playbook.get("unchanged_median_s")
        clean = playbook.get("unchanged_writes") == 0 and not playbook.get("rerun_recap_changed")
        add("publish playbook re-run <= %g s (median), changed=0, no registry write" % TARGETS["playbook_rerun_s"],
            value, TARGETS["playbook_rerun_s"], value is not None and value <= TARGETS["playbook_rerun_s"] and clean,
            "%s, changed=%s, %s writes" % (fmt(value, "%.2f s"), playbook.get("rerun_recap_changed"),
                                           playbook.get("unchanged_writes")))
    return targets


def fmt(value, pattern="%.2f", missing="–"):
    return missing if value is None else pattern % value


def markdown(bench, rows, targets, environment):
    args = bench.args
    out = []
    out.append("# Push benchmark (%s)" % environment["date"])
    out.append("")
    out.append("`%s`: %s; %d fresh push(es) per client, each to a new repository, each followed by the "
               "same push again (\"unchanged\"); median (min) wall time of the client process; peak RSS %s; "
               "writes from the registry's access log." % (
                   environment["command"], release_text(bench), args.repeat,
                   "by GNU time (%M) around each client" if TIME else
                   "from wait4() (GNU time is missing: an upper bound, it includes this script's RSS at fork)"))
    out.append("")
    out.append("| client | fresh wall s median (min) | ratio to oras CLI | ratio to curl | peak RSS MiB "
               "| unchanged wall s median (min) | bytes sent on unchanged run | manifest writes on unchanged run |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for client in ("engine", "oras", "oras-py", "curl", "curl+dgst", "playbook"):
        row = rows.get(client)
        if not row:
            continue
        if client in ("curl", "curl+dgst"):
            unchanged = ("– (no existence check: would send all again)", "–", "–")
        else:
            unchanged = ("%s (%s)" % (fmt(row["unchanged_median_s"]), fmt(row["unchanged_min_s"])),
                         fmt(row["unchanged_blob_bytes"], "%d"), fmt(row["unchanged_manifest_writes"], "%d"))
        out.append("| %s | %s (%s) | %s | %s | %.1f | %s | %s | %s |" % (
            row["label"], fmt(row["fresh_median_s"]), fmt(row["fresh_min_s"]),
            fmt(row.get("ratio_oras"), "%.2f"), fmt(row.get("ratio_curl"), "%.2f"),
            row["peak_rss_mib"], *unchanged))
    out.append("")
    out.append("Targets:")
    out.append("")
    for target in targets:
        verdict = {True: "PASS", False: "FAIL", None: "n/a"}[target["pass"]]
        out.append("- %s: **%s** (%s)" % (target["target"], verdict, target["shown"]))
    if not targets:
        out.append("- none measured (see --only)")
    out.append("")
    out.append("Details:")
    out.append("")
    for client, row in rows.items():
        if "fresh_registry_cpu_s" in row and row.get("fresh_registry_cpu_s") is not None:
            out.append("- %s: client CPU %.2f s, registry CPU %.2f s per fresh push (medians)"
                       % (row["label"], row["fresh_cpu_s"], row["fresh_registry_cpu_s"]))
    engine = rows.get("engine")
    if engine and engine.get("fresh_push_s") is not None:
        out.append("- engine fresh push inside the child: imports %.2f s, hashing %.2f s (on its own thread, "
                   "alongside the streamed uploads), streamed uploads %.2f s, other blob uploads %.2f s, "
                   "manifest %.3f s, push_image() %.2f s; unchanged: imports %.2f s, hashing %.2f s, push_image() %.2f s"
                   % (engine["fresh_import_s"], engine["fresh_hash_s"], engine["fresh_stream_s"], engine["fresh_blobs_s"],
                      engine["fresh_manifest_s"], engine["fresh_push_s"], engine["unchanged_import_s"],
                      engine["unchanged_hash_s"], engine["unchanged_push_s"]))
    if engine and engine.get("next_median_s") and (rows.get("oras") or {}).get("next_median_s"):
        out.append("- the next release (every file new, same config) under a new tag into the repository of the "
                   "first: engine %.2f s (%.2f), oras CLI %.2f s (%.2f), median (min); engine/oras %.2f. Nothing "
                   "streams there (the repository has tags): the kernel and initramfs upload while the rootfs "
                   "is hashed" % (engine["next_median_s"], engine["next_min_s"], rows["oras"]["next_median_s"],
                                  rows["oras"]["next_min_s"], engine["next_median_s"] / rows["oras"]["next_median_s"]))
    if rows.get("curl"):
        out.append("- `openssl dgst -sha256` of the four blobs: %.2f s (median), counted in the `curl -T` + "
                   "`openssl dgst` row only" % rows["curl"]["dgst_median_s"])
    out.append("- every fresh push uploaded all %d bytes in %d blobs (distribution 2.8 mounts nothing across "
               "repositories): %s" % (bench.release["bytes"], len(bench.blobs),
                                      "checked" if not [p for p in bench.problems if "cross-repo" in p] else "NO, see problems"))
    out.append("- machine: %s; %s" % (environment["machine"], "; ".join(
        "%s %s" % (k, v) for k, v in environment["versions"].items())))
    busy = max(environment["loadavg_before"][0], environment["loadavg_after"][0])
    out.append("- load average (1 min) before %.2f, after %.2f%s" % (
        environment["loadavg_before"][0], environment["loadavg_after"][0],
        ": other work shared the cores, so times are noisy; compare the ratios and the min" if busy > 1.0 else ""))
    if bench.problems:
        out.append("")
        out.append("Problems:")
        out.append("")
        for problem in bench.problems:
            out.append("- " + problem.replace("\n", " ")[:600])
    return "\n".join(out) + "\n"


def release_text(bench):
    digests = bench.release["digests"]
    return "a %s MiB rootfs, %s MiB initrd, %s MiB kernel and a %d-byte config (%.1f MiB)" % (
        "%g" % (digests["rootfs"][1] / MIB), "%g" % (digests["initramfs"][1] / MIB),
        "%g" % (digests["kernel"][1] / MIB), digests["config"][1], bench.release["bytes"] / MIB)


def environment_info(bench):
    versions = {}

    def version(name, argv, pick=lambda text: text.strip().splitlines()[0]):
        try:
            versions[name] = pick(quick(argv, env=bench.env, timeout=60))
        except (BenchError, OSError, IndexError, subprocess.TimeoutExpired):
            versions[name] = "?"

    version("docker-registry", ["docker-registry", "--version"], lambda t: t.split()[-1])
    if os.access(bench.oras, os.X_OK):
        version("oras", [bench.oras, "version"], lambda t: t.split()[1])
    version("oras-py", [bench.python, "-c", "import oras; print(oras.__version__)"])
    version("requests", [bench.python, "-c", "import requests; print(requests.__version__)"])
    version("curl", ["curl", "--version"], lambda t: t.split()[1])
    versions["python"] = platform.python_version()
    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["benchmarks/run.py"] + [shlex.quote(a) for a in sys.argv[1:]]),
        "machine": "%d cores, %s, Linux %s" % (os.cpu_count(), cpu, platform.release()),
        "versions": versions,
        "loadavg_before": [round(v, 2) for v in getattr(bench, "load_before", (0, 0, 0))],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rootfs-mib", type=float, default=700)
    parser.add_argument("--initrd-mib", type=float, default=27)
    parser.add_argument("--kernel-mib", type=float, default=13)
    parser.add_argument("--small-rootfs-mib", type=float, default=8, help="the playbook's release")
    parser.add_argument("--small-initrd-mib", type=float, default=2)
    parser.add_argument("--small-kernel-mib", type=float, default=1)
    parser.add_argument("--release-dir", help="where the release is made and reused "
                        "(default benchmarks/results/release-R-I-K)")
    parser.add_argument("--repeat", type=int, default=3, help="fresh pushes per client (default 3)")
    parser.add_argument("--only", default=",".join(CLIENTS),
                        help="comma-separated clients out of %s (default all)" % ",".join(CLIENTS))
    parser.add_argument("--timeout", type=int, default=600, help="seconds one client run may take")
    parser.add_argument("--registry-log-level", default="info")
    parser.add_argument("--key-password", default="bench-password")
    parser.add_argument("--results", default=RESULTS, help="where latest.md and latest.json go")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (registry, logs)")
    args = parser.parse_args(argv)
    args.only = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = [c for c in args.only if c not in CLIENTS]
    if unknown or not args.only:
        parser.error("--only takes %s" % ", ".join(CLIENTS))
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")

    def terminate(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    bench = Bench(args)
    try:
        bench.run()
        environment = environment_info(bench)
    except BenchError as exc:
        log("stopped: %s" % exc)
        return 2
    finally:
        bench.close()

    rows = summarize(bench)
    targets = evaluate(rows)
    report = markdown(bench, rows, targets, environment)
    os.makedirs(args.results, exist_ok=True)
    with open(os.path.join(args.results, "latest.md"), "w", encoding="utf-8") as handle:
        handle.write(report)
    with open(os.path.join(args.results, "latest.json"), "w", encoding="utf-8") as handle:
        json.dump({"environment": environment, "args": vars(args), "release": {
            "dir": bench.release["dir"], "bytes": bench.release["bytes"],
            "blobs": bench.release["digests"]}, "targets": targets, "summary": rows, "runs": bench.runs,
            "problems": bench.problems, "limits": TARGETS}, handle, indent=2)
    print(report)
    log("wrote %s and latest.json" % os.path.join(args.results, "latest.md"))
    return 1 if bench.problems else 0


if __name__ == "__main__":
    sys.exit(main())
