"""Views of the browser UI: clinical pages, the DPO dashboard, the session lock."""
