"""Monitoring: the alert rules (``rules.py``), alerts that open and resolve
(``alerts.py``) and the figures (``figures.py``), all pure; the service that samples the
gateway and publishes the monitoring streams (``service.py``, I/O)."""
