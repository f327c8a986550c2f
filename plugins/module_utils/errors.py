# -*- coding: utf-8 -*-
# Copyright: gardenlinux.onmetal contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Errors the engine raises; modules turn them into one line for the user."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class OnmetalError(Exception):
    """A failure the user can act on: one line, naming the option when one is to blame."""

    def __init__(self, message, option=None, **details):
        self.option = option
        self.message = message
        self.details = details
        super(OnmetalError, self).__init__(self.__str__())

    def __str__(self):
        if self.option:
            return "%s: %s" % (self.option, self.message)
        return self.message


class DigestMismatch(OnmetalError):
    """Content read back is not the content that was asked for."""


class NotFound(OnmetalError):
    """The reference, manifest or blob does not exist."""


# Answers worth another try, after a pause.
RETRY_STATUS = (408, 429, 500, 502, 503, 504)


class RegistryError(OnmetalError):
    """The registry answered with an error or could not be reached."""

    def __init__(self, message, option=None, status=None, **details):
        self.status = status
        super(RegistryError, self).__init__(message, option=option, **details)

    @property
    def manifest_race(self):
        """distribution's filesystem storage rewrites a blob's repository link in place when an upload of
        that blob completes; a manifest checked in that moment is refused as naming an unknown blob."""
        return self.status == 400 and "MANIFEST_BLOB_UNKNOWN" in (self.details.get("codes") or ())

    @property
    def retryable(self):
        """Worth another try: a lost connection, 408/429/5xx, or the manifest/link race."""
        return self.status is None or self.status in RETRY_STATUS or self.manifest_race


class AuthError(RegistryError):
    """Credentials were refused or are missing."""

    @property
    def retryable(self):
        return False
