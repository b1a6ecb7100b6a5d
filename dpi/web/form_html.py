"""The fields of the chart's blank entry forms, drawn once per worker process (issue #18).

The chart offers up to six entry forms (note, allergy, problem, vital signs, prescription, document): drawing
their fields through ``web/_field.html`` and the form widgets' templates was about a third of the page's CPU.
A blank form's fields always give the same HTML for the same form, initial values, field ids and language, so
that HTML is kept per worker, keyed by exactly those; it holds no patient, no user and no CSRF token (those are
drawn around it on every page). A form that carries data or errors is always drawn afresh.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

from django import forms
from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from django.utils.translation import get_language

MAX_ENTRIES = 256  # (form, initial values, language) combinations kept; the initial time changes every minute

_cache: dict[tuple, dict[str, SafeString]] = {}
_lock = threading.Lock()


def _draw(form: forms.Form) -> dict[str, SafeString]:
    return {bound.name: render_to_string("web/_field.html", {"field": bound}) for bound in form}


def fields_html(form: forms.Form, key: Hashable | None = None) -> dict[str, SafeString]:
    """The HTML of each field of ``form`` as ``web/_field.html`` draws it, by field name in the form's order.

    ``key`` names everything the blank form's HTML depends on besides the language (its class, the choices a
    role gets, its initial values, its field ids); with a key, a blank form is drawn once per worker."""
    if key is None or form.is_bound:
        return _draw(form)
    return blank_fields_html(key, lambda: form)


def blank_fields_html(key: Hashable, make: Callable[[], forms.Form]) -> dict[str, SafeString]:
    """Like ``fields_html`` for the blank form ``make()``, built only when its HTML is not kept yet."""
    full = (key, get_language())
    html = _cache.get(full)
    if html is None:
        form = make()
        if form.is_bound:
            raise ValueError("only a blank form's HTML is kept")
        html = _draw(form)
        with _lock:
            if len(_cache) >= MAX_ENTRIES:
                _cache.clear()
            _cache[full] = html
    return html


def joined(html: dict[str, SafeString], *, skip: tuple[str, ...] = ()) -> SafeString:
    """The fields' HTML one after the other, as ``{% for field in form %}{% include ... %}{% endfor %}``."""
    return SafeString("".join(h for name, h in html.items() if name not in skip))
