"""SSO free login (免登): per-tenant OAuth 2.0 with authlib against the buyer's identity domain,
MarketGate sessions in the shared store, and the hand-off into the product.

`Sso` (service.py) is what the application builds; routes live in gateway/routes/sso.py.
"""

from gateway.sso.errors import SsoError
from gateway.sso.options import SsoOptions
from gateway.sso.service import Sso

__all__ = ["Sso", "SsoError", "SsoOptions"]
