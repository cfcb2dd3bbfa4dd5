"""frictionwatch: real-time monitor of customer-journey friction."""

__version__ = "0.1.0"
