"""Check-character validation of NHI, HPI Organisation/Facility and CPN identifiers.

The algorithms follow HISO 10046 (NHI, old format mod 11 and new format mod 23)
and the HPI modulus-11 appendix; see the standard catalogue, section 3.
"""

from __future__ import annotations

import re

NHI_SYSTEM = "https://standards.digital.health.nz/ns/nhi-id"
HPI_PERSON_SYSTEM = "https://standards.digital.health.nz/ns/hpi-person-id"
HPI_ORGANISATION_SYSTEM = "https://standards.digital.health.nz/ns/hpi-organisation-id"
HPI_FACILITY_SYSTEM = "https://standards.digital.health.nz/ns/hpi-facility-id"

# Letters without I and O, numbered 1..24; digits keep their face value.
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_VALUE = {letter: index + 1 for index, letter in enumerate(_LETTERS)}
_VALUE.update({str(digit): digit for digit in range(10)})
_WEIGHTS = (7, 6, 5, 4, 3, 2)

_NHI_OLD = re.compile(r"[A-HJ-NP-Z]{3}[0-9]{4}")
_NHI_NEW = re.compile(r"[A-HJ-NP-Z]{3}[0-9]{2}[A-HJ-NP-Z]{2}")
_HPI_ORG = re.compile(r"G[A-HJ-NP-Z0-9]{2}[0-9]{3}-[A-HJK]")
_HPI_FACILITY = re.compile(r"F[A-HJ-NP-Z0-9]{2}[0-9]{3}-[A-HJK]")
_CPN = re.compile(r"[0-9]{2}[A-Z0-9]{4}")


def _weighted_sum(base: str) -> int:
    return sum(
        _VALUE[char] * weight for char, weight in zip(base, _WEIGHTS, strict=True)
    )


def nhi_check_character(base: str) -> str | None:
    """The check character for the first six characters of an NHI, or None.

    None means no valid NHI exists with that base (old format, remainder 0).
    """
    base = base.upper()
    total = _weighted_sum(base)
    if base[5].isdigit():
        remainder = total % 11
        if remainder == 0:
            return None
        return str((11 - remainder) % 10)
    return _LETTERS[23 - total % 23 - 1]


def is_valid_nhi(value: str) -> bool:
    """True for an old- or new-format NHI with a correct check character."""
    if not isinstance(value, str) or len(value) != 7 or not value.isascii():
        return False
    value = value.upper()
    if not (_NHI_OLD.fullmatch(value) or _NHI_NEW.fullmatch(value)):
        return False
    return nhi_check_character(value[:6]) == value[6]


def hpi_check_character(base: str) -> str | None:
    """The check letter for a six-character HPI Organisation or Facility base."""
    remainder = _weighted_sum(base.upper()) % 11
    if remainder == 0:
        return None
    return _LETTERS[remainder - 1]


def _is_valid_hpi(value: str, pattern: re.Pattern[str]) -> bool:
    if not isinstance(value, str) or len(value) != 8 or not value.isascii():
        return False
    value = value.upper()
    if not pattern.fullmatch(value):
        return False
    return hpi_check_character(value[:6]) == value[7]


def is_valid_hpi_organisation(value: str) -> bool:
    """True for an HPI Organisation id ``GXXNNN-C`` with a correct check letter."""
    return _is_valid_hpi(value, _HPI_ORG)


def is_valid_hpi_facility(value: str) -> bool:
    """True for an HPI Facility id ``FXXNNN-C`` with a correct check letter."""
    return _is_valid_hpi(value, _HPI_FACILITY)


def is_valid_cpn(value: str) -> bool:
    """True for a Common Person Number in the published ``NNXXXX`` format.

    No check algorithm for CPNs is published, so only the format is checked.
    """
    return isinstance(value, str) and value.isascii() and bool(_CPN.fullmatch(value))
