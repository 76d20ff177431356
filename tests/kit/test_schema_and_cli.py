"""The Kit's migration matches its tables on both databases; `marketgate keys rsa-new`."""

import base64
import stat
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import tenants.directory_models  # noqa: F401  (the tables compared)
from gateway.cli import main
from gateway.koogallery.client_secret import decrypt_client_secret, load_private_key
from tenants.database import sync_url
from tests.conftest import Backend


def test_migration_has_no_drift_for_the_directory_tables(backend: Backend) -> None:
    engine = create_engine(sync_url(backend.database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    mine = [item for item in differences if "directory_" in repr(item)]
    assert mine == []


def test_keys_rsa_new_writes_a_pair_and_prints_the_console_key(tmp_path: Path) -> None:
    runner = CliRunner()
    assert "--bits" in runner.invoke(main, ["keys", "rsa-new", "--help"]).output
    refused = runner.invoke(main, ["keys", "rsa-new", "--bits", "2048", "--out-dir", str(tmp_path)])
    assert refused.exit_code != 0 and not list(tmp_path.iterdir())

    result = runner.invoke(main, ["keys", "rsa-new", "--out-dir", str(tmp_path / "keys")])
    assert result.exit_code == 0, result.output
    printed = result.stdout.strip()
    assert "\n" not in printed
    private_path = tmp_path / "keys" / "rsa-private.pem"
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    key = load_private_key(private_path.read_text())
    assert key.key_size == 3072
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    public = serialization.load_der_public_key(base64.b64decode(printed))
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == key.public_key().public_numbers()
    scheme = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA256(), label=None)
    ciphertext = base64.b64encode(public.encrypt(b"hello", scheme)).decode()
    assert decrypt_client_secret(ciphertext, key)[0] == "hello"
    again = runner.invoke(main, ["keys", "rsa-new", "--out-dir", str(tmp_path / "keys")])
    assert again.exit_code != 0 and "not overwriting" in again.output
