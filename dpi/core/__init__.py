"""Infrastructure below every app (imports no app): see docs/STYLE "The layout we grow into"."""
