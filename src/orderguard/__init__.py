"""orderguard: fake-order, brushing and self-referral detection for distribution shops."""

__version__ = "0.1.0"
