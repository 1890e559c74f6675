"""Online quality of the answers served: the serving side's own measurement, not ``eval/``.

``config`` (the ``online_quality`` section, light: the supervisor reads it), ``quality`` (hit
rate: sampled answers matched against later events), ``stability`` (overlap of consecutive
answers), ``report`` (a serving worker's bounded stream of what it served, to the builder) and
``intake`` (the builder's end of that stream, feeding ``quality`` and ``stability``).
"""
