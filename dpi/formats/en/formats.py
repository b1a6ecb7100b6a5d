"""English for a French hospital: British order (day, month, year) and a 24-hour clock, as in French.

Django's plain ``en`` formats are American (``N j, Y``, ``m/d/Y``): 09/03/2026 would read as 3 September in
France and 9 March in the United States. Syntax: https://docs.djangoproject.com/en/5.2/ref/templates/builtins/#date
"""

DATE_FORMAT = "j F Y"  # 3 September 2026
TIME_FORMAT = "H:i"  # 14:30
DATETIME_FORMAT = "j F Y, H:i"  # 3 September 2026, 14:30
YEAR_MONTH_FORMAT = "F Y"  # September 2026
MONTH_DAY_FORMAT = "j F"  # 3 September
SHORT_DATE_FORMAT = "d/m/Y"  # 03/09/2026
SHORT_DATETIME_FORMAT = "d/m/Y H:i"  # 03/09/2026 14:30
FIRST_DAY_OF_WEEK = 1  # Monday

DATE_INPUT_FORMATS = [
    "%d/%m/%Y",  # 03/09/2026
    "%d/%m/%y",  # 03/09/26
    "%Y-%m-%d",  # 2026-09-03 (the browser's date input)
]
DATETIME_INPUT_FORMATS = [
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d/%m/%y %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",  # the browser's datetime-local input
]
TIME_INPUT_FORMATS = ["%H:%M:%S", "%H:%M"]
DECIMAL_SEPARATOR = "."
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
