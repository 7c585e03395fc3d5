"""Every module that defines registry tables, imported together.

Migrations (``migrations/env.py``) and the schema test import this module so that
``SQLModel.metadata`` holds every table. A module that adds tables adds its import here.
"""

from __future__ import annotations

import service.notify.tables
import service.registry.tables  # noqa: F401
