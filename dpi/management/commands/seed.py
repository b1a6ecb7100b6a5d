from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from dpi import demo, seeding
from patients.models import Patient


class Command(BaseCommand):
    help = (
        "Create synthetic patients, staff and records (never real data), and demo accounts with secrets "
        "generated for this install. Deterministic data for a given --seed. Refused with DPI_PRODUCTION=1."
    )

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=300)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--history-days", type=int, default=30, help="days of access history for the DPO")
        parser.add_argument("--if-empty", action="store_true", help="do nothing if patients already exist")
        parser.add_argument("--append", action="store_true", help="add to a database that already has patients")

    def handle(self, *args, patients, seed: int, history_days: int, if_empty: bool, append: bool, **options):
        try:
            demo.refuse_in_production("seed")
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        if patients < 0:
            raise CommandError("--patients must be >= 0")
        if Patient.objects.exists():
            if if_empty:
                self.stdout.write("Patients already present: demo data not reloaded.")
                return
            if not append:
                raise CommandError("the database already has patients (use --append to add more)")

        def progress(done, total):
            # The last count ends its line: the access history and detection that follow may log meanwhile.
            self.stdout.write(f"\r  patients {done}/{total}", ending="\n" if done >= total else "")
            self.stdout.flush()

        result = seeding.seed(patients=patients, seed=seed, progress=progress, history_days=history_days)
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {result.patients} patients, {result.encounters} encounters, {result.notes} notes, "
                f"{result.observations} observations, {result.staff} staff, {result.access_events} access "
                f"events over {history_days} days ({result.alerts} detection alerts)."
            )
        )
        if result.demo_accounts:
            self.stdout.write(
                "Demo accounts created for this install (synthetic data only; add the TOTP secret to an "
                "authenticator app). Saved in " + str(demo.secrets_path()) + "; print them again with "
                "`manage.py demo_accounts`:"
            )
            for line in demo.describe(result.demo_accounts):
                self.stdout.write(line)
