"""Broker URLs: parsing and formatting (:mod:`.parse`), the query-option table (:mod:`.query`) and
the per-host connection targets built from them (:mod:`.targets`).
"""
