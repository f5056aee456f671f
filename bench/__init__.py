"""Side-by-side benchmarks: brokerpool against kombu, raw py-amqp and pika.

Run ``python -m bench`` (``make bench``); see ``python -m bench --help`` and
``docs/performance.rst``. Results go to ``bench/results.md``,
``bench/results.rst`` and ``bench/results.png``.
"""
