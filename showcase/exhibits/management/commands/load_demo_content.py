"""`manage.py load_demo_content`: the conference, AI systems, hardware and examples; safe to run at every start."""

from django.core.management.base import BaseCommand

from showcase.exhibits import services


class Command(BaseCommand):
    help = "Load the demo content once (the run command calls this at every start; later runs change nothing)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Load again: re-create demo rows deleted since (edited rows are left alone).",
        )

    def handle(self, *args, force: bool = False, **options) -> None:
        report = services.demo_content_load(force=force)
        self.stdout.write(report.summary())
