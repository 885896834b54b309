"""Repository-wide test settings.

The contracts plugin registers itself through the ``pytest11`` entry point
(``pyproject.toml``); registering it here too would abort pytest with
"Plugin already registered".
"""
