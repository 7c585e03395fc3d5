"""Every module that defines registry tables, imported together.

Migrations (``migrations/env.py``) and the schema test import this module so that
``SQLModel.metadata`` holds every table. A module that adds tables adds its import here.
"""

from __future__ import annotations

import service.audit.tables
import service.auth.tables
import service.notify.tables
import service.registry.tables
import service.remediation.tables
import service.reminders.tables
import service.reports.tables
import service.reviews.tables
import service.scheduler.tables
import service.users.tables  # noqa: F401
