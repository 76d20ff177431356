"""SSO's errors: one root, leaves with a stable `code`, the HTTP status and what a person reads.

`message` is shown on the error page as is: it names what happened and what to do, never a
secret or an internal detail. The exception's own text (`str(error)`) is the detail for the
log line only.
"""

from typing import ClassVar


class SsoError(Exception):
    """Root of SSO's errors; `code` is stable, safe to show and to log."""

    code: ClassVar[str] = "sso_error"
    status_code: ClassVar[int] = 400
    title: ClassVar[str] = "Sign-in failed"
    message: ClassVar[str] = "Signing in did not work. Please start again from the product or the marketplace."
    retry: ClassVar[bool] = True
    """Whether the page offers to start again."""


class UnknownProductError(SsoError):
    code = "sso_unknown_product"
    status_code = 404
    title = "Unknown product"
    message = "This address does not belong to a product sold here."
    retry = False


class RedirectNotAllowedError(SsoError):
    code = "sso_redirect_not_allowed"
    message = "The link asks to continue to an address outside this product. Nothing was done."
    retry = False


class BadCallbackError(SsoError):
    code = "sso_bad_request"
    message = "The sign-in answer is incomplete or malformed. Please start again."


class IdentityDeniedError(SsoError):
    """The identity domain answered the authorization with an error (the user declined, say)."""

    code = "sso_identity_denied"
    message = "Your enterprise's sign-in service did not authorize the sign-in."


class RateLimitedError(SsoError):
    code = "sso_rate_limited"
    status_code = 429
    title = "Too many sign-in attempts"
    message = "There were too many sign-in attempts from your address. Please wait a minute and try again."


class StateInvalidError(SsoError):
    """Unknown, expired or already used state."""

    code = "sso_state_invalid"
    message = "This sign-in link has expired or was already used. Please start again."


class StateMismatchError(SsoError):
    """The state was issued to another browser, or for another tenant."""

    code = "sso_state_mismatch"
    message = "This sign-in was started in another browser or for another enterprise. Please start again."


class UnknownTenantError(SsoError):
    code = "sso_unknown_tenant"
    status_code = 404
    title = "Unknown enterprise"
    message = "Your enterprise has not (or no longer) subscribed to this product through the marketplace."
    retry = False


class NoAppCredentialsError(SsoError):
    code = "sso_no_app_credentials"
    status_code = 503
    title = "Sign-in not set up yet"
    message = "The marketplace has not yet sent this product's sign-in credentials for your enterprise."


class NoAppIdError(SsoError):
    code = "sso_no_app_id"
    status_code = 503
    title = "Sign-in not set up yet"
    message = "This product's marketplace sign-in is not configured yet. Please start from the marketplace."
    retry = False


class InvalidCodeError(SsoError):
    """The code is invalid, expired or was used already (`invalid_grant`)."""

    code = "sso_invalid_code"
    message = "This sign-in link has expired or was already used. Please start again."


class IdentityTimeoutError(SsoError):
    code = "sso_identity_timeout"
    status_code = 504
    title = "Sign-in service too slow"
    message = "Your enterprise's sign-in service did not answer in time. Please try again in a moment."


class IdentityUnavailableError(SsoError):
    code = "sso_identity_unavailable"
    status_code = 502
    title = "Sign-in service unavailable"
    message = "Your enterprise's sign-in service is not answering properly. Please try again later."


class ClientRejectedError(SsoError):
    """The identity domain refused the product's client credentials (`invalid_client`)."""

    code = "sso_client_rejected"
    status_code = 502
    title = "Sign-in not set up correctly"
    message = "Your enterprise's sign-in service refused this product's credentials. The vendor has been told."
    retry = False


class UserinfoInvalidError(SsoError):
    code = "sso_userinfo_invalid"
    status_code = 502
    title = "Sign-in service unavailable"
    message = "Your enterprise's sign-in service did not say who you are. Please try again later."


class TenantMismatchError(SsoError):
    """userinfo names a user of another tenant than the one the sign-in is for."""

    code = "sso_tenant_mismatch"
    status_code = 403
    title = "Wrong enterprise"
    message = "You signed in as a member of another enterprise than the one this sign-in is for."


class MemberNotAuthorizedError(SsoError):
    code = "sso_member_not_authorized"
    status_code = 403
    title = "No access to this product"
    message = "Your enterprise has not authorized you to use this product. Ask your administrator."
    retry = False


class MemberRevokedError(SsoError):
    code = "sso_member_revoked"
    status_code = 403
    title = "No access to this product"
    message = "Your enterprise has withdrawn your access to this product. Ask your administrator."
    retry = False


class MemberDisabledError(SsoError):
    code = "sso_member_disabled"
    status_code = 403
    title = "No access to this product"
    message = "Your access to this product is disabled. Ask your administrator."
    retry = False


class ProductLoginUnsupportedError(SsoError):
    code = "sso_product_has_no_login"
    status_code = 501
    title = "Sign-in not available"
    message = "This product does not take marketplace sign-ins yet."
    retry = False


class ProductUnavailableError(SsoError):
    code = "sso_product_unavailable"
    status_code = 502
    title = "Product unavailable"
    message = "The product did not accept the sign-in. Please try again in a moment."


class SsoUnavailableError(SsoError):
    """MarketGate's own store or database did not answer."""

    code = "sso_unavailable"
    status_code = 503
    title = "Sign-in unavailable"
    message = "Signing in is briefly unavailable. Please try again in a moment."
