"""What the runner knows before it reads a manifest: models and built-in accounts, as data.

    models.py       every model: its provider family, what it makes, its input schema's name
    accounts.py     built-in provider accounts, their limits, and a manifest's overrides
    environment.py  the process environment over a `.env` file (where keys come from)
"""
