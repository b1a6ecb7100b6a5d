import pytest
from django.core.exceptions import ValidationError

from patients.ins import compute_key, kind, validate_ins, with_key


def test_valid_nir_is_accepted():
    # 1 85 05 78 006 084, key 97 - (1850578006084 mod 97) = 91
    assert compute_key("1850578006084") == 97 - (1850578006084 % 97)
    validate_ins(with_key("1850578006084"))


def test_wrong_key_is_refused():
    good = with_key("1850578006084")
    bad = good[:13] + f"{(int(good[13:]) + 1) % 100:02d}"
    with pytest.raises(ValidationError) as exc:
        validate_ins(bad)
    assert exc.value.code == "ins_key"


@pytest.mark.parametrize("dept,substitute", [("2A", "19"), ("2B", "18")])
def test_corsica_departments_are_replaced_before_computing(dept, substitute):
    number = f"18505{dept}006084"
    expected = 97 - (int(number.replace(dept, substitute)) % 97)
    assert compute_key(number) == expected
    validate_ins(f"{number}{expected:02d}")
    with pytest.raises(ValidationError):
        validate_ins(f"{number}{(expected + 1) % 100:02d}")


def test_nia_starts_with_7_or_8():
    nia = with_key("7850578006084")
    validate_ins(nia)
    assert kind(nia) == "NIA"
    assert kind(with_key("2850578006084")) == "NIR"


@pytest.mark.parametrize("value", ["", "123", "1850578006084XX", "9850578006084" + "00", "18505780060841234"])
def test_malformed_ins_is_refused(value):
    with pytest.raises(ValidationError):
        validate_ins(value)


def test_spaces_are_ignored():
    ins = with_key("1850578006084")
    validate_ins(" ".join([ins[:1], ins[1:3], ins[3:5], ins[5:7], ins[7:10], ins[10:13], ins[13:]]))
