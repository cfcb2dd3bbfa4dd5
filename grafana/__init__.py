"""Grafana dashboards as code (``frictionwatch.grafana``).

One module per dashboard builds it with grafana-foundation-sdk; ``python -m
frictionwatch.grafana`` writes them as JSON to ``grafana/dashboards/``, which Grafana loads
through ``grafana/provisioning/``. Edit the Python, regenerate, commit both: a test checks
that the committed JSON is what the code makes.
"""
