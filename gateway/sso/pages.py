"""The pages SSO shows a person: an error page for every refusal, and the signed-out page.

Plain HTML with no script, every value escaped, never a stack trace or a secret: the page says
what happened, what to do, and the error code and request id to quote to support.
"""

from html import escape

from starlette.responses import HTMLResponse

from gateway.sso.errors import SsoError

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}
.code{{color:#666;font-size:.9rem}}</style></head>
<body>
<main>
{content}
</main>
</body>
</html>
"""


def page(title: str, content: str, *, status_code: int = 200) -> HTMLResponse:
    """A page; `content` must already be escaped HTML."""
    return HTMLResponse(
        _PAGE.format(title=escape(title), content=content), status_code=status_code, headers=PAGE_HEADERS
    )


def error_page(
    error: SsoError, *, product_name: str | None, login_url: str | None, request_id: str | None
) -> HTMLResponse:
    """The page for a refused sign-in; `login_url` is offered when starting again may help."""
    retry = f'<p><a id="retry" href="{escape(login_url)}">Sign in again</a></p>\n' if login_url and error.retry else ""
    about = f"<p>{escape(product_name)}</p>\n" if product_name else ""
    reference = f" · request <code>{escape(request_id)}</code>" if request_id else ""
    content = (
        f'<h1 id="error-title">{escape(error.title)}</h1>\n'
        f"{about}"
        f'<p id="error-message">{escape(error.message)}</p>\n'
        f"{retry}"
        f'<p class="code">Error code <code id="error-code">{escape(error.code)}</code>{reference}</p>'
    )
    return page(error.title, content, status_code=error.status_code)


def signed_out_page(*, product_name: str, login_url: str) -> HTMLResponse:
    content = (
        f'<h1 id="signed-out">You are signed out of {escape(product_name)}</h1>\n'
        f'<p><a id="login" href="{escape(login_url)}">Sign in again</a></p>'
    )
    return page("Signed out", content)
