"""Operator dashboard: engagement, experiments, catalogue, users, ranking parameters and
the system, for signed-in operators.

Run with ``streamlit run dashboard/app.py`` (``make run`` starts it with the rest of the
platform). Reads PostgreSQL at ``RECSYS_DATABASE_URL`` (the rollup tables the servers
maintain); every change goes through the Admin gRPC API with ``RECSYS_ADMIN_TOKEN``,
recorded with the operator's name.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts only dashboard/ on sys.path; the repository root makes
# `dashboard.*` importable the same way in the app, in tests and in the image.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard import auth, resources  # noqa: E402

VIEWS = Path(__file__).resolve().parent / "views"
PAGES = (
    ("overview.py", "Overview", ":material/monitoring:"),
    ("experiments.py", "Experiments", ":material/science:"),
    ("catalogue.py", "Catalogue", ":material/inventory_2:"),
    ("users.py", "Users", ":material/person_search:"),
    ("parameters.py", "Parameters", ":material/tune:"),
    ("system.py", "System", ":material/dns:"),
)


def main() -> None:
    """Check the settings, sign the operator in, then run the chosen page."""
    st.set_page_config(page_title="Recsys operations", layout="wide")
    settings = resources.settings()
    if settings is None:
        return
    name = auth.require_login(settings.dashboard_logins)
    if name is None:
        return
    pages = [
        st.Page(str(VIEWS / file), title=title, icon=icon, default=index == 0)
        for index, (file, title, icon) in enumerate(PAGES)
    ]
    page = st.navigation(pages)
    with st.sidebar:
        st.caption(f"Signed in as **{name}**")
        if st.button("Log out", key="logout"):
            auth.logout()
            st.rerun()
    page.run()


main()
