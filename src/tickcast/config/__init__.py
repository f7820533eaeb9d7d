"""Typed, frozen settings: defaults < settings file < TICKCAST_* environment < CLI flags."""
