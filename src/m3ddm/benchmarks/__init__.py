"""Benchmarks behind `m3ddm bench`: speed, memory and FLOP claims live here (tests only check behaviour).

* ``unet``: one UNet forward on a guidance batch per preset (time, peak memory, FLOPs, parameters).
* ``memory``: peak memory of the whole pipeline for a short and a long video (no growth with length).
* ``official``: the official driver's configuration against ours, and each speed lever on its own.

Measurements that report memory run in a fresh process each (``measure.run_isolated``) unless asked otherwise.
"""
