"""The alerting servers for the integration tests live in the package (the demo uses them too)."""

from frictionwatch.alerting_stack import WebhookReceiver, start_alertmanager, start_prometheus

__all__ = ["WebhookReceiver", "start_alertmanager", "start_prometheus"]
