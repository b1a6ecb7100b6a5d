"""CNIL 2022-100 password rules: entropy (80 bits alone, 50 with attempt limits), common/breached list,
identity, Argon2id; the CNIL's own examples are accepted, shorter ones refused."""

import pytest
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError

from access.passwords import (
    CnilEntropyValidator,
    CommonPasswordBlocklistValidator,
    UserIdentityValidator,
    entropy_bits,
)


def refused(password, user=None):
    try:
        validate_password(password, user)
    except ValidationError as exc:
        return {e.code for e in exc.error_list}
    return set()


@pytest.mark.parametrize("password", [
    "Kp7#mW2!qZ9x",  # CNIL: 12 characters, upper + lower + digits + specials -> 12 x log2(99) = 79.6 -> 80
    "Hq7mWr2kZp9xTb",  # CNIL: 14 characters, upper + lower + digits -> 83.4
    "cheval batterie agrafe nuage tigre lune girafe",  # CNIL: a passphrase of 7 words -> 80.0
])
def test_cnil_examples_reach_80_bits(password):
    assert entropy_bits(password) >= 80
    assert refused(password) == set()


def test_one_class_needs_its_own_length():
    assert entropy_bits("ozwvkbqhfmyjtrxd") == 75  # 16 lower-case letters: 16 x log2(26)
    assert "password_entropy" in refused("ozwvkbqhfmyjtrxd")
    assert refused("ozwvkbqhfmyjtrxdu") == set()  # 17 letters: 79.9 -> 80


@pytest.mark.parametrize("password, bits", [
    ("Kp7#mW2!qZ9", 73),  # 11 characters of 4 classes
    ("Hq7mWr2kZp9xT", 77),  # 13 characters of 3 classes
    ("Hq7mWr2kZp9x", 71),  # 12 characters of 3 classes: the 4th class is needed at 12
    ("cheval batterie agrafe nuage tigre lune", 69),  # 6 words
    ("Kp7#mW2!", 53),  # 8 characters of 4 classes: only the 50-bit rule
])
def test_shorter_passwords_are_refused(password, bits):
    assert entropy_bits(password) == bits
    assert "password_entropy" in refused(password)


def test_repetitions_and_runs_count_once():
    assert entropy_bits("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") == 5
    assert entropy_bits("Ab1!Ab1!Ab1!Ab1!Ab1!Ab1!") == entropy_bits("Ab1!")
    assert "password_entropy" in refused("abcdefghijklmnopqrstuvwxyz")
    # the same word 7 times is not a 7-word passphrase
    assert "password_entropy" in refused("lune lune lune lune lune lune lune")


def test_the_50_bit_rule_when_configured(settings):
    settings.DPI_PASSWORD_MIN_ENTROPY = 50
    assert refused("Kp7#mW2!") == set()  # 8 characters, 4 classes: 52.9 bits
    assert "password_entropy" in refused("Kp7#mW2")  # 7 characters: 46 bits
    # never below 50 bits, whatever the setting says
    assert CnilEntropyValidator(min_bits=20).required == 50


@pytest.mark.parametrize("password", [
    "motdepasse", "Motdepasse2024!", "P@ssw0rd2024!!", "Azertyuiop123456789!", "Marseille13013!!",
    "H0pital-2024-H0pital", "Soleil#2025#Soleil",
])
def test_common_and_breached_passwords_are_refused_even_disguised(password):
    with pytest.raises(ValidationError) as exc:
        CommonPasswordBlocklistValidator().validate(password)
    assert exc.value.code == "password_common"


@pytest.mark.django_db
def test_passwords_built_from_the_identity_are_refused():
    user = User.objects.create_user("jeanne.martin", first_name="Jeanne", last_name="Martin",
                                    email="j.martin@chu.example")
    for password in ["Jeanne.Martin#2026!x", "xQ9!martin-Zk27#w", "N1tram#Qz8!kW2p", "JeAnNe_99_Qz!w#Kp"]:
        with pytest.raises(ValidationError):
            UserIdentityValidator().validate(password, user)
    assert refused("Kp7#mW2!qZ9x-v", user) == set()


@pytest.mark.django_db
def test_passwords_are_hashed_with_argon2id():
    user = User.objects.create_user("hash.check", password="Kp7#mW2!qZ9x-v")
    assert user.password.startswith("argon2$argon2id$")
    assert "Kp7#mW2!qZ9x-v" not in user.password
