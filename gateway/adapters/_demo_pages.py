"""The demo product's web pages: `GET /w/{instance_id}` shows one workspace.

MarketGate mounts this app at `/apps/<slug>/`; routing here sees the path below the mount.
Every value that reaches the HTML goes through `html.escape`.
"""

from collections.abc import Awaitable, Callable, Sequence
from html import escape

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Route

from gateway.adapters._demo_store import Workspace, WorkspaceStatus

LoadWorkspace = Callable[[str], Awaitable[Workspace | None]]

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body>
<main>
{content}
</main>
</body>
</html>
"""


def _page(title: str, content: str, *, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), content=content), status_code=status_code)


def _workspace_html(workspace: Workspace, *, product_name: str, plan_label: str) -> str:
    if workspace.status is WorkspaceStatus.FROZEN:
        status = "<strong>Frozen</strong>: This workspace is frozen — renew to continue"
    else:
        status = "<strong>Active</strong>"
    plan = workspace.product_name or plan_label
    if workspace.sku_code:
        plan = f"{plan} ({workspace.sku_code})"
    if workspace.linear_value is not None:
        plan = f"{plan}, size {workspace.linear_value}"
    expiry = workspace.expire_time.strftime("%Y-%m-%d %H:%M UTC") if workspace.expire_time else "no expiry"
    return (
        f"<h1>{escape(product_name)}</h1>\n"
        f"<p>Workspace <code>{escape(workspace.instance_id)}</code></p>\n"
        "<dl>\n"
        f'<dt>Status</dt><dd class="status">{status}</dd>\n'
        f'<dt>Plan</dt><dd class="plan">{escape(plan)}</dd>\n'
        f'<dt>Expires</dt><dd class="expiry">{escape(expiry)}</dd>\n'
        "</dl>"
    )


def build_pages(
    load: LoadWorkspace, *, product_name: str, plan_label: str, extra_routes: Sequence[BaseRoute] = ()
) -> Starlette:
    """The ASGI app of the demo product's pages, reading workspaces through `load`."""

    async def workspace_page(request: Request) -> HTMLResponse:
        instance_id = request.path_params["instance_id"]
        workspace = await load(instance_id)
        if workspace is None or not workspace.is_live:
            return _page("Workspace not found", "<h1>Workspace not found</h1>", status_code=404)
        content = _workspace_html(workspace, product_name=product_name, plan_label=plan_label)
        return _page(f"{product_name} — {instance_id}", content)

    return Starlette(routes=[Route("/w/{instance_id}", workspace_page, methods=["GET"]), *extra_routes])
