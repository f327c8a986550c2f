"""Release folders with random content for the registry tests (large files without holding them in memory)."""

from __future__ import annotations

import os

MIB = 1024 * 1024
COMMAND_LINE = "root=LABEL=ROOT ro console=ttyS0,115200"


def write_release(folder, rootfs_bytes, name, initramfs_bytes, kernel_bytes):
    """<name>.raw, .initrd and .vmlinuz of these sizes in folder; returns onmetal_push's parameters."""
    folder.mkdir(parents=True, exist_ok=True)
    params = {"command_line": COMMAND_LINE}
    for role, ext, size in (("rootfs", "raw", rootfs_bytes), ("initramfs", "initrd", initramfs_bytes),
                            ("kernel", "vmlinuz", kernel_bytes)):
        path = folder / ("%s.%s" % (name, ext))
        with open(path, "wb") as handle:
            left = size
            while left:
                block = min(left, 8 * MIB)
                handle.write(os.urandom(block))
                left -= block
        params[role] = str(path)
    return params
