"""Typed, frozen settings: defaults < settings file < TICKCAST_* environment < CLI flags.

``settings.py`` is the flat schema the loader (``load.py``) fills; ``groups.py`` slices
it into one frozen group per component; ``defaults.py`` holds shared defaults. This
package imports no provider.
"""
