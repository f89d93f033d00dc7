"""Secrets, key files and their access rules.

Only the light pieces are exported here (settings import them); the key
rings, the envelope encryption, the admin plane and the configuration checks
are imported from their own modules.
"""

from kaitiaki.iam.files import check_owner_only, file_problem, read_owner_only
from kaitiaki.iam.secrets import (
    ACCEPTED_FORMS,
    Secret,
    SecretRef,
    SecretReference,
    SecretStore,
    parse_reference,
)

__all__ = [
    "ACCEPTED_FORMS",
    "Secret",
    "SecretRef",
    "SecretReference",
    "SecretStore",
    "check_owner_only",
    "file_problem",
    "parse_reference",
    "read_owner_only",
]
