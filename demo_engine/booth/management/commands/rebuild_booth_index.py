"""`python manage.py rebuild_booth_index`: make the booth assistant's index again from the published content."""

import time

from django.core.management.base import BaseCommand
from tqdm import tqdm

from demo_engine.booth import index


class Command(BaseCommand):
    help = "Rebuild the booth assistant's index (passages, full text, vectors) from the published content."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (for logs).")

    def handle(self, *args, no_progress: bool = False, **options) -> None:
        started = time.monotonic()
        bar = tqdm(total=0, unit="passage", disable=no_progress, file=self.stderr._out)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        count = index.index_rebuild(progress=progress)
        bar.close()
        self.stdout.write(f"Indexed {count} passages in {time.monotonic() - started:.1f} s.")
