"""Dash callbacks, one module per page plus the shell. `register` binds them all to an app and
registers the pages; it returns the page table the app's layout draws first views from."""
from __future__ import annotations

from collections.abc import Callable

import dash

__all__ = ["register", "PAGES", "PARTNER_PATH"]

# (module name, path relative to the app, navigation name, window title)
PAGES = (("executive", "", "Executive", "Executive · LuluPay Analytics"),
         ("operations", "operations", "Operations", "Operations · LuluPay Analytics"),
         ("builds", "builds", "Build intelligence", "Build intelligence · LuluPay Analytics"),
         ("partners", "partners", "Partners", "Partners · LuluPay Analytics"),
         ("assets", "assets", "Assets", "Assets · LuluPay Analytics"),
         ("capacity", "capacity", "Capacity", "Capacity · LuluPay Analytics"),
         ("alerts", "alerts", "Alerts", "Alerts · LuluPay Analytics"),
         ("live", "live", "Live", "Live · LuluPay Analytics"))

PARTNER_PATH = "partners/<partner_id>"  # a path template: its draw takes the partner id too
PARTNER_TITLE = "Partner · LuluPay Analytics"


def register(app: dash.Dash, services) -> dict[str, tuple[str, Callable[[dict, str], object]]]:
    """Bind every page's callbacks and register the pages with Dash Pages. Returns page path
    (relative to the app) → (title, draw(filters, theme)): the first view of a page is drawn on the
    server, by the app's layout for a page load and by Dash Pages on navigation."""
    from callbacks import alerts, assets, builds, capacity, executive, live, operations, partner_view, partners, shell

    shell.register(app, services)
    views = {"executive": executive.register(app, services), "operations": operations.register(app, services),
             "builds": builds.register(app, services), "partners": partners.register(app, services),
             "assets": assets.register(app, services), "capacity": capacity.register(app, services),
             "alerts": alerts.register(app, services),
             "live": live.register(app, services)}
    pages = {}
    for module, path, name, title in PAGES:
        draw = views[module].page
        dash.register_page(module, path="/" + path, name=name, title=title, layout=shell.page_layout(draw))
        pages[path] = (title, draw)
    # one partner: /partners/<partner_id> (the same view as /partners with exactly one partner selected)
    one = partner_view.register(app, services)
    views["partners"].partner_view = one
    dash.register_page("partner", path_template="/" + PARTNER_PATH, name="Partner", title=PARTNER_TITLE,
                       layout=shell.page_layout(one.page, path_args=("partner_id",)))
    pages[PARTNER_PATH] = (PARTNER_TITLE, one.page)
    return pages
