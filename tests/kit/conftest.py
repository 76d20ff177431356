"""The Kit tests' products: both can decrypt client secrets with the `rsa_oaep` vector key,
and beta limits tenant identity domains to an allow-list."""

import pytest
from pydantic import SecretStr

from gateway.settings import ProductConfig, Settings
from tests.kit.helpers import RSA_VECTORS

BETA_DOMAIN_ALLOW = ["*.tenantaccount.com", "idp.beta-buyer.example"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    key = SecretStr(RSA_VECTORS["private_key_pkcs8_base64"])
    products = dict(settings.products)
    products["alpha"] = products["alpha"].model_copy(update={"rsa_private_key": key, "max_users_per_sync": 50})
    # beta answers within the default deadline (3 s, the marketplace's own gives up at 5 s): a
    # 5000-member authSync, the most one may carry, must fit it on a busy CI machine too.
    products["beta"] = products["beta"].model_copy(
        update={
            "rsa_private_key": key,
            "tenant_domain_allow": BETA_DOMAIN_ALLOW,
            "answer_deadline_s": ProductConfig.model_fields["answer_deadline_s"].default,
        }
    )
    return settings.model_copy(update={"products": products})
