# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module shares: connection options, dependency check, and one way to fail."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import OnmetalError

# Must stay equal to plugins/doc_fragments/connection.py.
CONNECTION_SPEC = dict(
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    docker_config=dict(type="path"),
    validate_certs=dict(type="bool", default=True),
    ca_path=dict(type="path"),
    plain_http=dict(type="bool", default=False),
    timeout=dict(type="int", default=60),
    retries=dict(type="int", default=5),
)

LIBRARIES = {
    "oras": "oras",
    "requests": "requests",
    "jmespath": "jmespath",
    "cryptography": "cryptography",
    "nacl": "PyNaCl",
}


def connection_params(params):
    conn = {name: params.get(name) for name in CONNECTION_SPEC}
    if conn["timeout"] is not None and conn["timeout"] <= 0:
        raise OnmetalError("must be a positive number of seconds", option="timeout")
    if conn["retries"] is not None and not 0 <= conn["retries"] <= 20:
        raise OnmetalError("must be between 0 and 20", option="retries")
    return conn


def missing_libraries(*modules):
    """PyPI names of the libraries that cannot be imported."""
    missing = []
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            missing.append(LIBRARIES.get(module, module))
    return missing


def run(module, work, libraries=("oras", "requests")):
    """Call work(); report OnmetalError as one line, anything else as one line with the trace for -vvv."""
    missing = missing_libraries(*libraries)
    if missing:
        module.fail_json(
            msg="%s: install the Python libraries %s for the interpreter that runs this module (%s)"
            % (module._name, ", ".join(missing), _interpreter()),
        )
    try:
        result = work()
    except OnmetalError as e:
        module.fail_json(msg=str(e))
    except Exception as e:  # a defect of ours: still one line, the trace only with -vvv
        module.fail_json(msg="unexpected %s: %s" % (type(e).__name__, e), exception=traceback.format_exc())
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


def _interpreter():
    import sys

    return sys.executable
