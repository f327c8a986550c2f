# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Push an onmetal/ironcore image: plan (exact bytes), then blobs, manifest, tags.

When every tag asked for exists (a release pushed again), the files are hashed first: the
manifest's digest is known before any write, and a push that changes nothing sends nothing and
asks for no blob. When a tag is to be written (a new release, a new tag), a thread hashes the
files smallest first and each blob goes as soon as its digest is known (a HEAD, and only what is
missing is sent), so the small files upload while the large one is hashed. In a registry
repository that has no tag at all and not this image's config blob, where nothing of this image
is to be expected (a push of ours that broke off wrote the config first), a file of
STREAM_MIN_SIZE or more not hashed yet at its turn streams while it is hashed
(``RegistryTarget.stream_blob``): its first quarter goes out before its digest is known, then the
digest is HEADed, so a blob that is there after all (left by another client, or by a push of
another config) costs that quarter once and is not sent further. Either way the manifest is made,
and its digest known, only after every blob is stored; it goes last, tags after it. Check mode,
a digest in ``ref`` and a push without tags always hash first.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import threading

from ansible_collections.gardenlinux.onmetal.plugins.module_utils import mediatypes as mt
from ansible_collections.gardenlinux.onmetal.plugins.module_utils import oci
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.errors import DigestMismatch, OnmetalError, RegistryError
from ansible_collections.gardenlinux.onmetal.plugins.module_utils.reference import check_tag

ROLE_OPTIONS = ("rootfs", "initramfs", "kernel", "squashfs", "uki", "iso")
# Files from this size on are worth hashing while they upload (below, hashing takes < 50 ms).
STREAM_MIN_SIZE = 64 * 1024 * 1024


def check_file(path, option):
    if not isinstance(path, str) or not path:
        raise OnmetalError("a file path is required", option=option)
    if not os.path.exists(path):
        raise OnmetalError("%s does not exist" % path, option=option)
    if os.path.isdir(path):
        raise OnmetalError("%s is a folder, not a file" % path, option=option)
    if not os.access(path, os.R_OK):
        raise OnmetalError("%s is not readable" % path, option=option)
    return path


def check_artifact(item, option):
    """An extra file as {path, media_type, annotations}: (media type, annotations), or one clear error."""
    if not isinstance(item, dict):
        raise OnmetalError("must be a mapping with path and media_type", option=option)
    check_file(item.get("path"), option + ".path")
    media_type = item.get("media_type")
    if not media_type or not isinstance(media_type, str) or "/" not in media_type or " " in media_type:
        raise OnmetalError("needs a media_type such as application/vnd.gardenlinux.os.release", option=option + ".media_type")
    return media_type, string_map(item.get("annotations"), option + ".annotations")


def created_timestamp(value, option="created"):
    """RFC 3339 (UTC 'Z' form kept as given) or seconds since the epoch, as SOURCE_DATE_EPOCH."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if text.isdigit():
        moment = datetime.datetime.fromtimestamp(int(text), tz=datetime.timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise OnmetalError("'%s' is neither RFC 3339 (2022-11-30T13:31:22Z) nor seconds since the epoch" % text, option=option)
    if "T" not in text:
        raise OnmetalError("'%s' is not RFC 3339: it needs a time (2022-11-30T13:31:22Z)" % text, option=option)
    return text


def string_map(value, option):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OnmetalError("must be a mapping of names to strings", option=option)
    out = {}
    for key, val in value.items():
        if not isinstance(key, str) or not key:
            raise OnmetalError("annotation names must be non-empty strings", option=option)
        if isinstance(val, (dict, list)) or val is None:
            raise OnmetalError("the value of '%s' must be a string" % key, option=option)
        out[key] = val if isinstance(val, str) else json.dumps(val)
    return out


def read_annotation_file(path):
    """oras --annotation-file: {"$manifest": {...}, "$config": {...}, "<file as given>": {...}}."""
    if path is None:
        return {}
    check_file(path, "annotation_file")
    with open(path, "rb") as f:
        data = f.read()
    try:
        value = oci.parse_json_object(data, path)
    except OnmetalError as e:
        raise OnmetalError(e.message, option="annotation_file")
    return {key: string_map(val, "annotation_file (%s)" % key) for key, val in value.items()}


def build_config(command_line, config):
    """Config blob bytes: commandLine (omitted when empty) beside extra fields, keys sorted as Go maps are."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise OnmetalError("must be a mapping of extra config fields", option="config")
    value = dict(config)
    if "commandLine" in value and command_line:
        raise OnmetalError("holds commandLine: give the kernel command line in command_line only", option="config")
    if command_line:
        if not isinstance(command_line, str):
            raise OnmetalError("must be a string", option="command_line")
        value["commandLine"] = command_line
    return oci.go_json(value)


class Layer:
    def __init__(self, option, path, media_type, annotations, role=None):
        self.option = option
        self.path = path
        self.media_type = media_type
        self.annotations = annotations
        self.role = role
        self.digest = None
        self.size = None

    def descriptor(self):
        return oci.descriptor(self.media_type, self.digest, self.size, self.annotations)


def plan_image(params, hash_files=True):
    """Everything but the network: layers with digests, config and manifest bytes.

    params: rootfs, initramfs, kernel, squashfs, uki, iso, command_line, config, flavor,
    artifacts, annotations, config_annotations, annotation_file, created.
    hash_files=False: every check made, but the layers have only their sizes (from the file
    system) and there is no manifest yet; seal_plan() adds them once the digests are known.
    """
    flavor = params.get("flavor") or "onmetal"
    if flavor not in mt.FLAVORS:
        raise OnmetalError("'%s' is not a flavor; choose one of %s" % (flavor, ", ".join(sorted(mt.FLAVORS))), option="flavor")
    table = mt.FLAVORS[flavor]
    file_annotations = read_annotation_file(params.get("annotation_file"))
    warnings = []

    def annotations_for(path, extra=None):
        found = dict(file_annotations.get(path) or file_annotations.get(os.path.basename(path)) or {})
        found.setdefault(mt.TITLE_ANNOTATION, os.path.basename(path))
        found.update(extra or {})
        return found

    layers = []
    for role in ROLE_OPTIONS:
        path = params.get(role)
        if path is None:
            continue
        if role not in table:
            raise OnmetalError("the %s flavor has no %s layer (ironcore has squashfs, uki and iso)" % (flavor, role), option=role)
        check_file(path, role)
        layers.append(Layer(role, path, table[role], annotations_for(path), role=role))
    given = [layer.role for layer in layers]
    if flavor == "onmetal":
        missing = [role for role in mt.BOOT_ROLES if role not in given]
        if missing:
            raise OnmetalError("an onmetal image needs rootfs, initramfs and kernel", option=missing[0])
    elif not given:
        raise OnmetalError("an ironcore image needs at least one of %s" % ", ".join(ROLE_OPTIONS), option="rootfs")

    for index, artifact in enumerate(params.get("artifacts") or []):
        option = "artifacts[%d]" % index
        media_type, extra = check_artifact(artifact, option)
        layers.append(Layer(option, artifact["path"], media_type, annotations_for(artifact["path"], extra)))
    if len(layers) > len(given):
        warnings.append(
            "%d extra artifact(s) go into the %s image as layers: %s's ResolveImage rejects unknown layer types, "
            "so boot consumers will fail on this image; publish extras as a referrer instead"
            % (len(layers) - len(given), flavor, "onmetal-image" if flavor == "onmetal" else "ironcore-image")
        )

    config_bytes = build_config(params.get("command_line"), params.get("config"))
    config_annotations = dict(file_annotations.get("$config") or {})
    config_annotations.update(string_map(params.get("config_annotations"), "config_annotations"))
    manifest_annotations = dict(file_annotations.get("$manifest") or {})
    manifest_annotations.update(string_map(params.get("annotations"), "annotations"))
    created = created_timestamp(params.get("created"))
    if created:
        manifest_annotations[mt.CREATED_ANNOTATION] = created

    plan = {
        "flavor": flavor,
        "layers": layers,
        "config_bytes": config_bytes,
        "config_descriptor": oci.bytes_descriptor(table["config"], config_bytes, config_annotations),
        "manifest_annotations": manifest_annotations,
        "warnings": warnings,
    }
    if not hash_files:
        for layer in layers:
            layer.size = os.path.getsize(layer.path)
        return plan
    for layer in layers:
        layer.digest, layer.size = oci.file_digest(layer.path)
    return seal_plan(plan)


def seal_plan(plan):
    """Add the manifest bytes and digest to a plan whose layers all have their digests."""
    manifest = oci.manifest_bytes(plan["config_descriptor"], [layer.descriptor() for layer in plan["layers"]],
                                  plan["manifest_annotations"])
    plan["manifest_bytes"] = manifest
    plan["digest"] = oci.sha256_digest(manifest)
    return plan


def push_image(target, params, check_mode=False, diff=False):
    """Push what plan_image describes to target.ref; idempotent by digest."""
    ref = target.ref
    tags = []
    for tag in ([ref.tag] if ref.tag else []) + list(params.get("tags") or []):
        check_tag(tag, "tags" if tag != ref.tag else "ref")
        if tag not in tags:
            tags.append(tag)
    plan = plan_image(params, hash_files=False)
    before = {tag: target.resolve(ref.replace(tag=tag, digest=None)) for tag in tags}
    # A tag to write: the push changes something whatever the digest, so blobs may go as soon as
    # each is hashed (a HEAD each, nothing sent that is there).
    overlap = not check_mode and not ref.digest and bool(tags) and not all(before.values())
    # Nothing of this image can be in a repository without tags that lacks its config blob (a
    # broken-off push of ours wrote the config first). The HEAD before the listing: distribution
    # sends every tag, and an existing repository most often holds the config already.
    streaming = overlap and _may_stream(target, plan) and not target.has_blob(plan["config_descriptor"]["digest"]) \
        and not target.has_tags()
    if overlap:
        # Blobs first (the config, then each layer as it is hashed); the manifest only after them.
        _push_blobs_while_hashing(target, plan, streaming)
    else:
        for layer in plan["layers"]:
            digest, size = oci.file_digest(layer.path)
            _check_size(layer, size)
            layer.digest = digest
    seal_plan(plan)
    digest = plan["digest"]
    if ref.digest and ref.digest != digest:
        raise OnmetalError("names %s, but these inputs make %s" % (ref.digest, digest), option="ref")

    stale = [tag for tag in tags if not before[tag] or before[tag]["digest"] != digest]
    untagged_missing = not tags and target.resolve(ref.replace(tag=None, digest=digest)) is None
    result = {
        "digest": digest,
        "ref": str(ref.replace(tag=tags[0] if tags else None, digest=digest)),
        "tags": tags,
        "flavor": plan["flavor"],
        "manifest": json.loads(plan["manifest_bytes"]),
        "config": json.loads(plan["config_bytes"]),
        "warnings": plan["warnings"],
        "changed": bool(stale) or untagged_missing,
    }
    if diff:
        result["diff"] = _diff(target, ref, tags, before, digest, plan)
    blobs = [(plan["config_descriptor"], plan["config_bytes"])] + [(layer.descriptor(), layer.path) for layer in plan["layers"]]
    if not result["changed"]:
        result.update(target.stats.as_dict())
        result["blobs_skipped"] = [blob[0]["digest"] for blob in blobs]
        return result
    if check_mode:
        missing = [blob[0] for blob in blobs if not target.has_blob(blob[0]["digest"])]
        result.update(target.stats.as_dict())
        result["blobs_sent"] = [desc["digest"] for desc in missing]
        result["blobs_skipped"] = [blob[0]["digest"] for blob in blobs if blob[0] not in missing]
        result["bytes_sent"] = sum(desc["size"] for desc in missing)
        result["tags_written"] = stale
        return result

    # Blobs first, manifest next, tags last: no reference ever points at missing content.
    if not overlap:
        for layer, (desc, source) in zip([None] + plan["layers"], blobs):
            try:
                target.push_blob(desc, source)
            except OnmetalError as e:
                raise _naming(e, layer)
    first = stale[0] if stale else None
    target.push_manifest(plan["manifest_bytes"], mt.OCI_MANIFEST, first)
    for tag in stale[1:]:
        target.push_manifest(plan["manifest_bytes"], mt.OCI_MANIFEST, tag)
    result.update(target.stats.as_dict())
    return result


def _may_stream(target, plan):
    """Whether hashing while uploading is worth asking the registry about (no request made here)."""
    return (callable(getattr(target, "stream_blob", None)) and callable(getattr(target, "has_tags", None))
            and any(layer.size >= STREAM_MIN_SIZE for layer in plan["layers"]))


def _naming(error, layer):
    """A layer file that changed or went away while it was pushed: the error names its option.
    (A registry's answer is not the file's fault: it keeps its own option or none.)"""
    if error.option is None and layer is not None and (
            isinstance(error, DigestMismatch) or not isinstance(error, RegistryError)):
        error.option = layer.option
    return error


def _check_size(layer, size):
    if size != layer.size:
        raise OnmetalError("%s changed while it was pushed: %d bytes when planned, %d when hashed"
                           % (layer.path, layer.size, size), option=layer.option)


def _push_blobs_while_hashing(target, plan, stream):
    """The config blob, then the layers smallest first while a thread hashes them in that order:
    each goes as push_blob sends it once its digest is known, or, with stream, a large layer not
    hashed yet at its turn streams (target.stream_blob). Smallest first: the small files are hashed
    at once and upload while the large one is hashed. (The manifest keeps its own layer order.)"""
    layers = sorted(plan["layers"], key=lambda layer: layer.size)
    hasher = _Hasher(layers)
    try:
        target.push_blob(plan["config_descriptor"], plan["config_bytes"])
        for layer, hashed in zip(layers, hasher.futures):
            try:
                if stream and layer.size >= STREAM_MIN_SIZE and not hashed.done():
                    layer.digest = target.stream_blob(layer.path, layer.size, hashed)[0]
                    continue
                digest, size = hashed.result()
                _check_size(layer, size)
                layer.digest = digest
                target.push_blob(layer.descriptor(), layer.path)
            except OnmetalError as e:
                raise _naming(e, layer)
    finally:
        hasher.stop()


class _Hasher:
    """A thread that hashes the layers' files one after the other; futures[i] gets (digest, size)
    of layers[i] (or the error). stop() makes it skip what it has not started."""

    def __init__(self, layers):
        from concurrent.futures import Future  # pylint: disable=import-outside-toplevel

        self.futures = [Future() for dummy in layers]
        self._layers = list(layers)
        self._thread = threading.Thread(target=self._run, name="onmetal-hash")
        self._thread.daemon = True  # never keeps a failed module run alive
        self._thread.start()

    def _run(self):
        for layer, future in zip(self._layers, self.futures):
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(oci.file_digest(layer.path))
            except (IOError, OSError) as e:
                future.set_exception(OnmetalError("cannot read %s: %s" % (layer.path, e.strerror or e), option=layer.option))
            except BaseException as e:  # pylint: disable=broad-except
                future.set_exception(e)

    def stop(self):
        for future in self.futures:
            future.cancel()


def _diff(target, ref, tags, before, digest, plan):
    """Ansible diff: digest per tag and the manifest, before and after."""
    tag = tags[0] if tags else None
    old = before.get(tag) if tag else None
    old_manifest = json.loads(plan["manifest_bytes"]) if old and old["digest"] == digest else None
    if old and old_manifest is None:
        try:
            data = target.fetch_manifest(ref.replace(tag=None, digest=old["digest"]))[0]
            old_manifest = json.loads(data)
        except (OnmetalError, ValueError):
            old_manifest = None
    return {
        "before_header": str(ref.replace(tag=tag, digest=None)),
        "after_header": str(ref.replace(tag=tag, digest=None)),
        "before": _diff_text({t: (before[t] or {}).get("digest") for t in tags}, old_manifest),
        "after": _diff_text({t: digest for t in tags}, json.loads(plan["manifest_bytes"])),
    }


def _diff_text(tag_digests, manifest):
    lines = ["%s: %s" % (tag, digest or "(absent)") for tag, digest in tag_digests.items()]
    if manifest is not None:
        lines.append(json.dumps(manifest, indent=2))
    return "\n".join(lines) + "\n"
