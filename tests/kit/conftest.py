"""The Kit tests' products: both can decrypt client secrets with the `rsa_oaep` vector key,
and beta limits tenant identity domains to an allow-list."""

import pytest
from pydantic import SecretStr

from gateway.settings import Settings
from tests.kit.helpers import RSA_VECTORS

BETA_DOMAIN_ALLOW = ["*.tenantaccount.com", "idp.beta-buyer.example"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    key = SecretStr(RSA_VECTORS["private_key_pkcs8_base64"])
    products = dict(settings.products)
    products["alpha"] = products["alpha"].model_copy(update={"rsa_private_key": key, "max_users_per_sync": 50})
    products["beta"] = products["beta"].model_copy(
        update={"rsa_private_key": key, "tenant_domain_allow": BETA_DOMAIN_ALLOW}
    )
    return settings.model_copy(update={"products": products})
