"""Helpers of the interop tests: the peer tools, run hermetically (fixtures in conftest.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from ansible_collections.gardenlinux.onmetal.tests.conftest import REPO_ROOT, missing_tool
from ansible_collections.gardenlinux.onmetal.tests.support.ansible import run_module

PEERS_BIN = Path(os.environ.get("ONMETAL_PEERS_BIN") or REPO_ROOT / ".peers" / "bin")
PEERS_GO = REPO_ROOT / ".peers" / "go"
BUILT_PEERS = ("oras", "cosign", "cosign-v3", "onmetal-image", "ironcore-image")
SYSTEM_PEERS = ("skopeo",)
PEER_TIMEOUT = 120          # seconds; any single peer call
GO_BUILD_TIMEOUT = 600      # the first build of the ResolveImage helper compiles containerd
DEAD_PROXY = "http://127.0.0.1:9"   # discard port: nothing listens, connections are refused at once

CNAME = "kvm_oras-amd64-today-aab1c350"
COMMAND_LINE = "root=LABEL=ROOT ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0"
RELEASE_SIZES = {
    "raw": 2 * 1024 * 1024 + 3,
    "vmlinuz": 300000,
    "initrd": 700001,
    "os-release": 510,
    "log": 108288,
    "manifest": 6802,
}


def peer_version(name):
    """What .peers/bin/NAME.version records (MODULE/PKG@VERSION), or None."""
    path = PEERS_BIN / (name + ".version")
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


class PeerFailed(AssertionError):
    pass


class Peers:
    """Paths of the peer binaries and a hermetic way to run them."""

    def __init__(self, home):
        self.home = Path(home)
        self.docker_config = self.home / "docker"
        self.tmpdir = self.home / "tmp"
        for folder in (self.home, self.docker_config, self.tmpdir):
            folder.mkdir(parents=True, exist_ok=True)

    def require(self, name):
        """The path of peer NAME; skips the test (fails it under CI) when it is missing."""
        return self[name]

    def __getitem__(self, name):
        if name in SYSTEM_PEERS:
            path = shutil.which(name)
            if not path:
                missing_tool("%s is not installed (Debian package %s; scripts/setup.sh installs it)" % (name, name))
            return path
        if name not in BUILT_PEERS:
            raise KeyError(name)
        path = PEERS_BIN / name
        if not (path.is_file() and os.access(path, os.X_OK)):
            missing_tool("peer %s is not built: %s is missing (run scripts/build-peers.sh or make peers; needs Go)"
                         % (name, path))
        return str(path)

    def env(self, extra=None):
        """A clean environment: nothing from the user's, loopback only."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(self.home),
            "DOCKER_CONFIG": str(self.docker_config),
            "TMPDIR": str(self.tmpdir),
            "LANG": "C.UTF-8",
            "NO_COLOR": "1",
            "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY,
            "http_proxy": DEAD_PROXY, "https_proxy": DEAD_PROXY,
            "NO_PROXY": "127.0.0.1,localhost,::1", "no_proxy": "127.0.0.1,localhost,::1",
            # skopeo/containers-image: no system registries.conf or policy from the machine
            "CONTAINERS_REGISTRIES_CONF": str(self.home / "registries.conf"),
            # cosign: its TUF cache stays in the tmp home
            "TUF_ROOT": str(self.home / "sigstore"),
        }
        (self.home / "registries.conf").touch()
        env.update(extra or {})
        return env

    def run(self, name, *args, check=True, env=None, cwd=None, timeout=PEER_TIMEOUT, input_bytes=None):
        """Run peer NAME with args; returns CompletedProcess (text). check=True fails the test on rc != 0."""
        cmd = [self[name]] + [str(arg) for arg in args]
        try:
            proc = subprocess.run(cmd, env=self.env(env), cwd=str(cwd or self.home), capture_output=True,
                                  timeout=timeout, check=False,
                                  input=input_bytes, stdin=None if input_bytes is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise PeerFailed("%s timed out after %s s" % (" ".join(cmd), timeout)) from exc
        proc = subprocess.CompletedProcess(proc.args, proc.returncode,
                                           proc.stdout.decode("utf-8", "replace"),
                                           proc.stderr.decode("utf-8", "replace"))
        if check and proc.returncode != 0:
            raise PeerFailed("%s exited %d\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(cmd), proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
        return proc

    def json(self, name, *args, **kwargs):
        """Run and decode stdout as JSON."""
        proc = self.run(name, *args, **kwargs)
        try:
            return json.loads(proc.stdout)
        except ValueError as exc:
            raise PeerFailed("%s %s did not print JSON:\n%s\n%s"
                             % (name, " ".join(map(str, args)), proc.stdout, proc.stderr)) from exc


class Modules:
    """The collection's modules through the ansible CLI, with a clean HOME and DOCKER_CONFIG."""

    def __init__(self, home):
        self.home = Path(home)
        (self.home / "docker").mkdir(parents=True, exist_ok=True)

    def __call__(self, name, args, check=False, env=None):
        clean = {"HOME": str(self.home), "DOCKER_CONFIG": str(self.home / "docker"),
                 "ANSIBLE_LOCAL_TEMP": str(self.home / "ansible-tmp"),
                 "ANSIBLE_REMOTE_TEMP": str(self.home / "ansible-tmp")}
        clean.update(env or {})
        return run_module(name, args, check=check, env=clean, timeout=PEER_TIMEOUT)

    def ok(self, name, args, **kwargs):
        """Run and fail the test when the module failed; returns the result dict."""
        run = self(name, args, **kwargs)
        assert not run.failed, "%s failed: %s\n%s" % (name, run.msg, run.output[-3000:])
        return run.result


# --- release files -------------------------------------------------------------------------------

def release_file(release, ext):
    return str(release / ("%s.%s" % (CNAME, ext)))


def boot_args(release, **extra):
    args = {"rootfs": release_file(release, "raw"), "kernel": release_file(release, "vmlinuz"),
            "initramfs": release_file(release, "initrd"), "command_line": COMMAND_LINE}
    args.update(extra)
    return args


# --- ResolveImage: what boot consumers call --------------------------------------------------------

_RESOLVE_MAIN = r'''// Built by tests/interop/conftest.py inside a copy of the pinned %(module)s module.
// Prints {"commandLine": ..., "<role>": "<digest>"} of ResolveImage(REF), or "error: ..." and exit 1.
package main

import (
    "context"
    "encoding/json"
    "fmt"
    "os"

    peer "%(module)s"
    "%(module)s/oci/image"
    "%(module)s/oci/remote"
)

func digest(layer image.Layer) string {
    if layer == nil {
        return ""
    }
    return layer.Descriptor().Digest.String()
}

func main() {
    ctx := peer.SetupContext(context.Background())
    reg, err := remote.DockerRegistry(%(registry_args)s)
    if err == nil {
        var img image.Image
        if img, err = reg.Resolve(ctx, os.Args[1]); err == nil {
            var res *peer.Image
            if res, err = peer.ResolveImage(ctx, img); err == nil {
                out := map[string]string{"commandLine": res.Config.CommandLine}
                layers := map[string]image.Layer{%(layers)s}
                for role, layer := range layers {
                    if d := digest(layer); d != "" {
                        out[role] = d
                    }
                }
                _ = json.NewEncoder(os.Stdout).Encode(out)
                return
            }
        }
    }
    fmt.Fprintln(os.Stderr, "error:", err)
    os.Exit(1)
}
'''

_RESOLVE_FLAVORS = {
    "onmetal": {
        "peer": "onmetal-image",
        "registry_args": "nil",
        "layers": '"rootfs": res.RootFS, "initramfs": res.InitRAMFs, "kernel": res.Kernel',
    },
    "ironcore": {
        "peer": "ironcore-image",
        "registry_args": "",
        "layers": ('"rootfs": res.RootFS, "initramfs": res.InitRAMFs, "kernel": res.Kernel, '
                   '"squashfs": res.SquashFS, "uki": res.UKI, "iso": res.ISO'),
    },
}


def _module_of(version_line):
    """("github.com/onmetal/onmetal-image", "v0.1.1") from ".../onmetal-image/cmd@v0.1.1"."""
    path, unused, version = version_line.partition("@")
    module = re.sub(r"/cmd(/.*)?$", "", path)
    return module, version


def _escape_module_path(module):
    """Go module cache escaping: upper-case letters become '!' + lower-case."""
    return re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), module)


def peer_module_source(peer):
    """The pinned module source of a peer in the peers' Go module cache, or None."""
    line = peer_version(peer)
    if not line:
        return None, None
    module, version = _module_of(line)
    source = PEERS_GO / "pkg" / "mod" / ("%s@%s" % (_escape_module_path(module), version))
    return (source if source.is_dir() else None), module


class ResolveImage:
    def __init__(self, binaries):
        self.binaries = binaries

    def __call__(self, flavor, ref, home):
        """(ok, result dict or error line) of the real ResolveImage on ref."""
        env = Peers(home).env()
        proc = subprocess.run([self.binaries[flavor], ref], env=env, capture_output=True, text=True,
                              timeout=PEER_TIMEOUT, stdin=subprocess.DEVNULL, check=False)
        if proc.returncode == 0:
            return True, json.loads(proc.stdout)
        lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        return False, (lines[-1] if lines else proc.stderr.strip())


def _go():
    found = shutil.which("go")
    if found:
        return found
    return "/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None


def build_resolve_helpers(workdir):
    """Build the ResolveImage helper of each flavor in workdir: {flavor: path}, or {"missing": reason}.

    Each helper is a main package added to a copy of the pinned peer module (its own go.mod and
    go.sum), built offline (GOPROXY=off) from the module cache scripts/build-peers.sh filled.
    """
    go = _go()
    if go is None:
        return {"missing": "no Go toolchain (go on PATH or /usr/local/go/bin/go): cannot build the ResolveImage helper"}
    built = {}
    for flavor, spec in _RESOLVE_FLAVORS.items():
        if peer_version(spec["peer"]) is None:
            return {"missing": "peer %s is not built: no %s (run scripts/build-peers.sh or make peers; needs Go)"
                               % (spec["peer"], PEERS_BIN / (spec["peer"] + ".version"))}
        source, module = peer_module_source(spec["peer"])
        if source is None:
            return {"missing": "the %s module source (%s) is not in the peers' Go module cache %s (run scripts/build-peers.sh)"
                               % (spec["peer"], peer_version(spec["peer"]), PEERS_GO / "pkg" / "mod")}
        copy = Path(workdir) / ("src-" + flavor)
        shutil.copytree(source, copy)
        for root, dirs, files in os.walk(copy):  # the module cache is read-only
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
        os.chmod(copy, 0o755)
        main = copy / "cmd" / "resolveimage-interop"
        main.mkdir(parents=True)
        (main / "main.go").write_text(_RESOLVE_MAIN % dict(spec, module=module), encoding="utf-8")
        out = Path(workdir) / ("resolveimage-" + flavor)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin") + os.pathsep + os.path.dirname(go),
            "HOME": str(workdir), "TMPDIR": str(workdir),
            "GOPATH": str(PEERS_GO), "GOMODCACHE": str(PEERS_GO / "pkg" / "mod"),
            "GOCACHE": str(PEERS_GO / "cache") if os.access(PEERS_GO, os.W_OK) else str(Path(workdir) / "gocache"),
            # offline: only what build-peers.sh put in the module cache; its settings otherwise
            "GOPROXY": "off", "GOFLAGS": "-modcacherw -mod=mod", "GOTOOLCHAIN": "local",
            "CGO_ENABLED": "0", "GO111MODULE": "on", "GOWORK": "off",
        }
        proc = subprocess.run([go, "build", "-o", str(out), "./cmd/resolveimage-interop"], cwd=str(copy), env=env,
                              capture_output=True, text=True, timeout=GO_BUILD_TIMEOUT, stdin=subprocess.DEVNULL,
                              check=False)
        if proc.returncode != 0:
            return {"missing": "building the %s ResolveImage helper failed:\n%s" % (flavor, proc.stderr[-3000:])}
        built[flavor] = str(out)
    return built
