"""Portfolios: pure Decimal valuation (valuation.py) and the service that revalues on quotes.

This package file imports nothing, so importing ``tickcast.portfolio.valuation`` never pulls
in the (I/O) service.
"""
