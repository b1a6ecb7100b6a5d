from django.core.management.base import BaseCommand, CommandError

from dpi import seeding
from dpi.seeding import DEMO_PASSWORD
from patients.models import Patient


class Command(BaseCommand):
    help = "Create synthetic patients, staff and records (never real data). Deterministic for a given --seed."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=300)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--if-empty", action="store_true", help="do nothing if patients already exist")
        parser.add_argument("--append", action="store_true", help="add to a database that already has patients")

    def handle(self, *args, patients, seed: int, if_empty: bool, append: bool, **options):
        if patients < 0:
            raise CommandError("--patients must be >= 0")
        if Patient.objects.exists():
            if if_empty:
                self.stdout.write("Patients already present: demo data not reloaded.")
                return
            if not append:
                raise CommandError("the database already has patients (use --append to add more)")

        def progress(done, total):
            self.stdout.write(f"\r  patients {done}/{total}", ending="")
            self.stdout.flush()

        result = seeding.seed(patients=patients, seed=seed, progress=progress)
        self.stdout.write("")
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {result.patients} patients, {result.encounters} encounters, {result.notes} notes, "
                f"{result.observations} observations, {result.staff} staff."
            )
        )
        self.stdout.write("Demo accounts (synthetic data only), password: " + DEMO_PASSWORD)
        for username, role, secret in result.demo_accounts:
            self.stdout.write(f"  {username:28} role={role:18} TOTP secret={secret}")
