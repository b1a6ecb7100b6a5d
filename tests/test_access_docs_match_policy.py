from pathlib import Path

from access.docs import authorization_doc


def test_authorization_doc_is_generated_from_the_policy_module():
    path = Path(__file__).resolve().parent.parent / "docs" / "authorization.md"
    assert path.read_text() == authorization_doc(), "run: manage.py authorization_matrix"
