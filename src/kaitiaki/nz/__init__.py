"""New Zealand health identifiers and the Health NZ Request-Context header."""

from kaitiaki.nz.identifiers import (
    HPI_FACILITY_SYSTEM,
    HPI_ORGANISATION_SYSTEM,
    HPI_PERSON_SYSTEM,
    NHI_SYSTEM,
    is_valid_cpn,
    is_valid_hpi_facility,
    is_valid_hpi_organisation,
    is_valid_nhi,
)

__all__ = [
    "HPI_FACILITY_SYSTEM",
    "HPI_ORGANISATION_SYSTEM",
    "HPI_PERSON_SYSTEM",
    "NHI_SYSTEM",
    "is_valid_cpn",
    "is_valid_hpi_facility",
    "is_valid_hpi_organisation",
    "is_valid_nhi",
]
