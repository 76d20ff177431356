"""What the identity-domain stand-in knows: tenants, clients, users, sessions, codes and tokens.

Everything lives in memory behind one lock: the server may run in a uvicorn thread while a test
adds users or flips a fault from the main thread. Nothing here knows about HTTP or authlib; the
authlib glue (`_identity_oauth`) reads and writes these records, passing the time in explicitly.
"""

import hashlib
import hmac
import secrets
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from gateway.simulator.errors import SimulatorError

Role = Literal["admin", "user"]

DEFAULT_SCOPE = "get_user_info"
CODE_LIFETIME = timedelta(minutes=5)
ACCESS_TOKEN_LIFETIME_S = 7200
REFRESH_TOKEN_LIFETIME = timedelta(days=30)
# PBKDF2-HMAC-SHA256 work factor. The stored hash carries its own count, so changing it is safe.
PASSWORD_ITERATIONS = 100_000


class IdentitySetupError(SimulatorError):
    """The directory was asked for something impossible: unknown tenant, duplicate client, ..."""

    code = "identity_setup"


@dataclass(frozen=True)
class PasswordHash:
    """A salted PBKDF2-HMAC-SHA256 digest; the password itself is never kept."""

    salt: bytes
    iterations: int
    digest: bytes

    @classmethod
    def create(cls, password: str, *, iterations: int = PASSWORD_ITERATIONS) -> "PasswordHash":
        salt = secrets.token_bytes(16)
        return cls(salt, iterations, _pbkdf2(password, salt, iterations))

    def matches(self, password: str) -> bool:
        return hmac.compare_digest(self.digest, _pbkdf2(password, self.salt, self.iterations))


def _pbkdf2(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)


@dataclass(frozen=True)
class IdentityTenant:
    """A buyer enterprise: `tenant_id` is the `tenantId` of the Kit syncs, `name` its projectName."""

    tenant_id: str
    name: str


@dataclass(frozen=True)
class IdentityClient:
    """An OAuth client registered in one tenant's domain (the clientId sent by applicationSync)."""

    tenant_id: str
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]

    def secret_matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.client_secret.encode(), secret.encode())


@dataclass(frozen=True)
class IdentityUser:
    """A user of one tenant, as authSync and the userinfo endpoint describe them."""

    tenant_id: str
    user_name: str
    id: str
    name: str
    email: str
    mobile: str
    role: Role
    organization_code: str
    organization_name: str
    password_hash: PasswordHash | None = field(default=None, repr=False)

    def userinfo(self, tenant: IdentityTenant) -> dict[str, str]:
        """The body of `GET /api/v1/oauth2/userinfo` for this user (spec §4.2 step 5)."""
        return {
            "id": self.id,
            "userName": self.user_name,
            "name": self.name,
            "email": self.email,
            "mobile": self.mobile,
            "role": self.role,
            "organizationName": self.organization_name,
            "organizationCode": self.organization_code,
            "userId": self.id,
            "projectName": tenant.name,
            "tenant": tenant.tenant_id,
        }


@dataclass(frozen=True)
class AuthorizationCode:
    """An issued code; `redirect_uri` is the one the authorization request carried, if any."""

    code: str
    client_id: str
    tenant_id: str
    user_name: str
    redirect_uri: str | None
    scope: str
    issued_at: datetime


@dataclass(frozen=True)
class IssuedToken:
    """One token response: the access token and, when issued, its refresh token."""

    access_token: str
    refresh_token: str | None
    client_id: str
    tenant_id: str
    user_name: str
    scope: str
    access_expires_at: datetime
    refresh_expires_at: datetime | None
    refresh_revoked: bool = False


@dataclass
class IdentityFaults:
    """Fault injection, read on every request. `reset()` puts everything back to healthy."""

    token_delay_s: float = 0.0
    token_status: int | None = None
    userinfo_delay_s: float = 0.0
    userinfo_status: int | None = None
    # (tenant id, userName): userinfo answers with this user whatever the token says.
    userinfo_as: tuple[str, str] | None = None

    def reset(self) -> None:
        self.token_delay_s = 0.0
        self.token_status = None
        self.userinfo_delay_s = 0.0
        self.userinfo_status = None
        self.userinfo_as = None


class RequestStats:
    """Requests served and seconds spent per path, so a benchmark can subtract this server's time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._seconds: defaultdict[str, float] = defaultdict(float)

    def record(self, path: str, seconds: float) -> None:
        with self._lock:
            self._counts[path] += 1
            self._seconds[path] += seconds

    def count(self, path: str | None = None) -> int:
        """Requests to `path`, or to every path."""
        with self._lock:
            return self._counts.get(path, 0) if path is not None else sum(self._counts.values())

    def seconds(self, path: str | None = None) -> float:
        """Seconds spent answering `path` (injected delays included), or every path."""
        with self._lock:
            return self._seconds.get(path, 0.0) if path is not None else sum(self._seconds.values())

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._seconds.clear()


class IdentityDirectory:
    """Tenants, clients and users of the identity-domain stand-in, plus its live state.

    One directory may hold several tenants: each behaves as its own identity domain (a client
    belongs to one tenant; a login session is valid only for clients of the user's tenant).
    Attributes meant for tests: `faults` (fault injection), `stats` (requests per path) and
    `rotate_refresh_tokens` (a refresh answers a new refresh token and revokes the old one).
    """

    def __init__(
        self,
        *,
        rotate_refresh_tokens: bool = True,
        password_iterations: int = PASSWORD_ITERATIONS,
        code_lifetime: timedelta = CODE_LIFETIME,
        access_token_lifetime_s: int = ACCESS_TOKEN_LIFETIME_S,
        refresh_token_lifetime: timedelta = REFRESH_TOKEN_LIFETIME,
    ) -> None:
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.password_iterations = password_iterations
        self.code_lifetime = code_lifetime
        self.access_token_lifetime_s = access_token_lifetime_s
        self.refresh_token_lifetime = refresh_token_lifetime
        self.faults = IdentityFaults()
        self.stats = RequestStats()
        self._lock = threading.RLock()
        self._tenants: dict[str, IdentityTenant] = {}
        self._clients: dict[str, IdentityClient] = {}
        self._users: dict[tuple[str, str], IdentityUser] = {}
        self._sessions: dict[str, tuple[str, str]] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._access_tokens: dict[str, IssuedToken] = {}
        self._refresh_tokens: dict[str, IssuedToken] = {}
        # Compared against when a login names no known user, so both paths cost the same.
        self._decoy = PasswordHash.create(secrets.token_urlsafe(), iterations=password_iterations)

    # Set-up ---------------------------------------------------------------------------------

    def add_tenant(self, tenant_id: str, name: str) -> IdentityTenant:
        """Add (or rename) a tenant."""
        tenant = IdentityTenant(tenant_id, name)
        with self._lock:
            self._tenants[tenant_id] = tenant
        return tenant

    def register_client(
        self, tenant_id: str, *, client_id: str, client_secret: str, redirect_uris: Iterable[str]
    ) -> IdentityClient:
        """Register a confidential client in a tenant's domain; the first URI is the default."""
        uris = tuple(redirect_uris)
        if not uris:
            raise IdentitySetupError(f"client {client_id!r} needs at least one redirect URI")
        client = IdentityClient(tenant_id, client_id, client_secret, uris)
        with self._lock:
            self._require_tenant(tenant_id)
            existing = self._clients.get(client_id)
            if existing is not None and existing.tenant_id != tenant_id:
                raise IdentitySetupError(f"client {client_id!r} already belongs to tenant {existing.tenant_id!r}")
            self._clients[client_id] = client
        return client

    def add_user(
        self,
        tenant_id: str,
        user_name: str,
        *,
        password: str | None = None,
        name: str = "",
        email: str = "",
        mobile: str = "",
        role: Role = "user",
        organization_code: str = "",
        organization_name: str = "",
        user_id: str | None = None,
    ) -> IdentityUser:
        """Add (or replace) a user; without a password the user can only be logged in by `log_in`."""
        password_hash = None if password is None else PasswordHash.create(password, iterations=self.password_iterations)
        user = IdentityUser(
            tenant_id=tenant_id,
            user_name=user_name,
            id=user_id or _new_user_id(),
            name=name or user_name,
            email=email,
            mobile=mobile,
            role=role,
            organization_code=organization_code,
            organization_name=organization_name,
            password_hash=password_hash,
        )
        with self._lock:
            self._require_tenant(tenant_id)
            self._users[(tenant_id, user_name)] = user
        return user

    def remove_user(self, tenant_id: str, user_name: str) -> None:
        """Forget a user; their sessions and tokens stop working."""
        with self._lock:
            self._users.pop((tenant_id, user_name), None)

    # Look-ups -------------------------------------------------------------------------------

    def tenant(self, tenant_id: str) -> IdentityTenant | None:
        with self._lock:
            return self._tenants.get(tenant_id)

    def client(self, client_id: str) -> IdentityClient | None:
        with self._lock:
            return self._clients.get(client_id)

    def user(self, tenant_id: str, user_name: str) -> IdentityUser | None:
        with self._lock:
            return self._users.get((tenant_id, user_name))

    def authenticate(self, tenant_id: str | None, user_name: str, password: str) -> IdentityUser | None:
        """The user whose password this is, or None. Without a tenant, the userName must be unique."""
        with self._lock:
            if tenant_id:
                candidates = [self._users[(tenant_id, user_name)]] if (tenant_id, user_name) in self._users else []
            else:
                candidates = [user for (_, name), user in self._users.items() if name == user_name]
        user = candidates[0] if len(candidates) == 1 else None
        stored = user.password_hash if user is not None and user.password_hash is not None else self._decoy
        matched = stored.matches(password)
        return user if matched and user is not None and user.password_hash is not None else None

    # Sessions -------------------------------------------------------------------------------

    def log_in(self, tenant_id: str, user_name: str) -> str:
        """Start a login session for a user without a password; returns the session cookie value."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            if (tenant_id, user_name) not in self._users:
                raise IdentitySetupError(f"no user {user_name!r} in tenant {tenant_id!r}")
            self._sessions[session_id] = (tenant_id, user_name)
        return session_id

    def log_out(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def session_user(self, session_id: str | None) -> IdentityUser | None:
        """The user a session cookie belongs to, while both exist."""
        if not session_id:
            return None
        with self._lock:
            key = self._sessions.get(session_id)
            return self._users.get(key) if key is not None else None

    def session_count(self) -> int:
        with self._lock:
            return len(self._sessions)

    # Codes and tokens (used by the authlib glue) ---------------------------------------------

    def save_code(self, code: AuthorizationCode) -> None:
        with self._lock:
            self._codes[code.code] = code

    def take_code(self, code: str, *, client_id: str, now: datetime) -> AuthorizationCode | None:
        """Consume a code on its client's first attempt, whatever that attempt's outcome.

        A later failure (say, a wrong redirect_uri) still burns it, as OneAccess's Spring
        lineage does; another client's attempt leaves it alone.
        """
        with self._lock:
            found = self._codes.get(code)
            if found is None or found.client_id != client_id:
                return None
            del self._codes[code]
        return found if now < found.issued_at + self.code_lifetime else None

    def code_count(self) -> int:
        with self._lock:
            return len(self._codes)

    def save_token(self, token: IssuedToken) -> None:
        with self._lock:
            self._access_tokens[token.access_token] = token
            if token.refresh_token is not None:
                self._refresh_tokens[token.refresh_token] = token

    def access_token(self, access_token: str) -> IssuedToken | None:
        with self._lock:
            return self._access_tokens.get(access_token)

    def refresh_token(self, refresh_token: str) -> IssuedToken | None:
        with self._lock:
            return self._refresh_tokens.get(refresh_token)

    def revoke_refresh_token(self, refresh_token: str) -> None:
        with self._lock:
            token = self._refresh_tokens.get(refresh_token)
            if token is not None:
                self._refresh_tokens[refresh_token] = replace(token, refresh_revoked=True)

    def token_count(self) -> int:
        with self._lock:
            return len(self._access_tokens)

    def _require_tenant(self, tenant_id: str) -> None:
        if tenant_id not in self._tenants:
            raise IdentitySetupError(f"unknown tenant {tenant_id!r}")


def _new_user_id() -> str:
    """An id shaped like OneAccess's, e.g. `20201029190841785-CB37-8BD36B...`."""
    digits = "".join(secrets.choice("0123456789") for _ in range(17))
    return f"{digits}-{secrets.token_hex(2).upper()}-{secrets.token_hex(6).upper()}"
