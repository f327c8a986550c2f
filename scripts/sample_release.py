#!/usr/bin/env python
"""Write a small Garden Linux style build (cname.raw, .vmlinuz, .initrd, .os-release, .log, .manifest)
with deterministic content, for the demo, the tests and the benchmarks."""

import argparse
import os
import random

MIB = 1024 * 1024


def write_random(path, size, seed):
    rng = random.Random(seed)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(rng.randbytes(n))
            left -= n


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dest")
    parser.add_argument("--cname", default="kvm-gardener_prod-amd64-1877.0-demo0001")
    parser.add_argument("--version", default="1877.0")
    parser.add_argument("--rootfs-mib", type=float, default=8)
    parser.add_argument("--initrd-mib", type=float, default=2)
    parser.add_argument("--kernel-mib", type=float, default=1)
    parser.add_argument("--command-line", default="root=LABEL=ROOT ro console=tty0 console=ttyS0,115200 consoleblank=0")
    args = parser.parse_args()
    os.makedirs(args.dest, exist_ok=True)
    base = os.path.join(args.dest, args.cname)
    seed = args.cname
    for ext, mib in (("raw", args.rootfs_mib), ("initrd", args.initrd_mib), ("vmlinuz", args.kernel_mib)):
        path = "%s.%s" % (base, ext)
        size = int(mib * MIB)
        if not (os.path.isfile(path) and os.path.getsize(path) == size):
            write_random(path, size, "%s.%s" % (seed, ext))
    with open(base + ".os-release", "w") as f:
        f.write('ID=gardenlinux\nNAME="Garden Linux"\nPRETTY_NAME="Garden Linux %s"\nVERSION_ID=%s\n'
                "GARDENLINUX_VERSION=%s\nGARDENLINUX_CNAME=%s\n" % (args.version, args.version, args.version, args.cname))
    with open(base + ".log", "w") as f:
        f.write("".join("build step %d ok\n" % i for i in range(200)))
    with open(base + ".manifest", "w") as f:
        f.write("".join("package-%03d 1.%d\n" % (i, i) for i in range(300)))
    with open(base + ".cmdline", "w") as f:
        f.write(args.command_line + "\n")
    print(args.dest)


if __name__ == "__main__":
    main()
