# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files written whole or not at all: a temporary file beside the target, renamed into place."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_file(path, mode=0o644, prefix=".tmp-"):
    """Yield a file open for writing; on success it replaces path, on any error it is removed.

    The mode is set before the first byte is written, so a private key is never readable by others.
    """
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=prefix)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_atomic(path, data, mode=0o644):
    with atomic_file(path, mode) as f:
        f.write(data)
