# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cosign key files on disk: read them with clear errors, write a pair as cosign generate-key-pair does."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import cosign_keys
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import OnmetalError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.files import write_atomic

MAX_KEY_FILE = 64 * 1024


def _read(path, option):
    if not path:
        raise OnmetalError("a key file is required", option=option)
    if os.path.isdir(path):
        raise OnmetalError("%s is a folder, not a key file" % path, option=option)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise OnmetalError("%s does not exist" % path, option=option)
    except OSError as e:
        raise OnmetalError("cannot read %s: %s" % (path, e.strerror), option=option)
    if len(data) > MAX_KEY_FILE:
        raise OnmetalError("%s is too large for a key file" % path, option=option)
    return data


def read_private_key(path, password, option="private_key", password_option="password"):
    password = cosign_keys.resolve_password(password, password_option)
    return cosign_keys.load_private_key(_read(path, option), password, option, password_option)


def read_public_key(path, option="public_key"):
    return cosign_keys.load_public_key(_read(path, option), option)


def default_public_path(private_path):
    base = private_path[:-4] if private_path.endswith(".key") else private_path
    return base + ".pub"


def _write(path, data, mode):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, data, mode)


def ensure_keypair(private_path, public_path, password, fmt="sigstore", force=False, check_mode=False):
    """Create the pair unless it exists; a missing public key is derived from the private one."""
    public_path = public_path or default_public_path(private_path)
    if private_path == public_path:
        raise OnmetalError("must differ from private_key", option="public_key")
    for path, option in ((private_path, "private_key"), (public_path, "public_key")):
        if os.path.isdir(path):
            raise OnmetalError("%s is a folder" % path, option=option)
    result = {"private_key": private_path, "public_key": public_path, "changed": False}
    have_private, have_public = os.path.isfile(private_path), os.path.isfile(public_path)
    if have_private and not force:
        result["format"], result["kdf_n"] = cosign_keys.key_format(_read(private_path, "private_key"))
        if have_public:
            read_public_key(public_path)
            return result
        key = read_private_key(private_path, password)
        result["changed"] = True
        if not check_mode:
            _write(public_path, cosign_keys.public_pem(key), 0o644)
        return result
    password = cosign_keys.resolve_password(password)
    result["changed"] = True
    result["format"] = fmt
    if check_mode:
        return result
    private_pem, public_pem = cosign_keys.generate_keypair(password, fmt)
    result["kdf_n"] = cosign_keys.key_format(private_pem)[1]
    _write(private_path, private_pem, 0o600)
    _write(public_path, public_pem, 0o644)
    return result
