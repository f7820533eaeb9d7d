"""The bus: what joins the nodes of a cluster (``base.py`` is the contract)."""
