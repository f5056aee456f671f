"""Retrying: the immutable retry policy and its backoffs (:mod:`.policy`) and the loops behind
``ensure_connection``, ``ensure`` and ``autoretry`` (:mod:`.ensure`).
"""
