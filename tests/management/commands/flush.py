"""The suite's `flush`: what a transactional test (pytest-django's `transactional_db`, Django's
TransactionTestCase) runs after each test to empty the database. It ends where Django's does, for less.

* The content types and permissions are kept: they follow from the models alone, and Django's flush
  deletes them only for its post_migrate signal to write the same rows again (about 250 inserts).
  The signal still runs, for every receiver (the installation key of `hosts/apps.py` among them).
* On PostgreSQL, DELETE instead of TRUNCATE: TRUNCATE makes new files for every table and index and
  takes an exclusive lock on each, which deadlocked with a stack process still writing; the suite's
  tables hold a few rows each. Django's foreign keys are deferrable, so the order does not matter.
"""
from django.core.management.commands import flush
from django.core.management.sql import emit_post_migrate_signal
from django.db import connections, transaction

KEPT_TABLES = {"django_content_type", "auth_permission"}


class Command(flush.Command):
    def handle(self, **options) -> None:
        if options["interactive"] or options["reset_sequences"] or options["allow_cascade"]:
            return super().handle(**options)  # a run by hand, or a test with its own needs: Django's own
        database = options["database"]
        connection = connections[database]
        tables = [name for name in connection.introspection.django_table_names(only_existing=True)
                  if name not in KEPT_TABLES]
        with transaction.atomic(using=database), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            for table in tables:
                cursor.execute(f"DELETE FROM {connection.ops.quote_name(table)}")
        if not options["inhibit_post_migrate"]:
            emit_post_migrate_signal(options["verbosity"], False, database)
