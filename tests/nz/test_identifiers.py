import pytest

from kaitiaki.nz.identifiers import (
    hpi_check_character,
    is_valid_cpn,
    is_valid_hpi_facility,
    is_valid_hpi_organisation,
    is_valid_nhi,
    nhi_check_character,
)

# Published test values from the standard catalogue, section 3.
VALID_NHI = [
    "ZZZ0008",
    "ZZZ0016",
    "ZZZ0024",
    "ZAA0067",
    "ZAA0075",
    "ZAC5361",
    "ZKC4633",
    "ZKC7284",
    "ZXP7823",
    "ZAT2518",
    "ZJM9397",
    "ZAK21MS",
    "ZDP92ZR",
    "ZNK28DJ",
    "ZQF54PV",
    "ZTL39SK",
    "ZUA48EH",
    "ZUG37LU",
    "ZUT01RG",
    "ZVE74QH",
    "ZWB84LW",
    "ZXE24NV",
    "ZYC49PX",
    "ZBN77VL",
    "ZZZ00AC",
    "ZSC21TN",
    "ZVB97XQ",
    "zac5361",
]
INVALID_NHI = [
    "ZZZ0044",
    "ZZZ0017",
    "DAB8233",
    "ZZZ00AA",
    "ZZZ00AX",
    "ZHW58CZ",
    "ABC1234",
    "ZZZ1234",
    "",
    "ZAC536",
    "ZAC53611",
    "ZIC5361",
    "ZOC5361",
    "ZAC 361",
    "ZAC\uff15361",
    "ZMW9001",
]


@pytest.mark.parametrize("value", VALID_NHI)
def test_is_valid_nhi_accepts_published_test_values(value: str) -> None:
    assert is_valid_nhi(value)


@pytest.mark.parametrize("value", INVALID_NHI)
def test_is_valid_nhi_refuses_bad_check_or_format(value: str) -> None:
    assert not is_valid_nhi(value)


def test_nhi_check_character_matches_worked_examples() -> None:
    assert nhi_check_character("ZAC536") == "1"
    assert nhi_check_character("ZXE24N") == "V"
    assert nhi_check_character("ZZZ004") is None


@pytest.mark.parametrize("value", ["G00001-G", "G0M086-B", "GZZ956-B"])
def test_is_valid_hpi_organisation_accepts_published(value: str) -> None:
    assert is_valid_hpi_organisation(value)


@pytest.mark.parametrize(
    "value", ["FZZ999-B", "FZZ997-J", "FZZ958-K", "FZZ993-A", "F38006-B"]
)
def test_is_valid_hpi_facility_accepts_published(value: str) -> None:
    assert is_valid_hpi_facility(value)


@pytest.mark.parametrize(
    "value",
    [
        "FXX999-K",
        "F38006-D",
        "FZZ111-A",
        "FS6482-U",
        "G00001-G",
        "FZZ999B",
        "FZZ999-BB",
        "",
    ],
)
def test_is_valid_hpi_facility_refuses_bad_values(value: str) -> None:
    assert not is_valid_hpi_facility(value)


def test_hpi_check_character_matches_appendix_sum() -> None:
    assert hpi_check_character("FB9964") == "G"


@pytest.mark.parametrize(
    ("value", "valid"),
    [("99ZZZS", True), ("92ZZRR", True), ("9ZZZRR", False), ("99zzzs", False)],
)
def test_is_valid_cpn_checks_format(value: str, valid: bool) -> None:
    assert is_valid_cpn(value) is valid
