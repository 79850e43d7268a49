"""``fastgrad.compile``, in parts: ``ir`` (the program), ``lowering`` (each primitive's
instructions, held by its registry entry), ``tracer`` (recording one eager call),
``planner`` (fusing and laying out), ``executor`` (running a plan), ``api`` (the entry
point and its cache). This package imports nothing at import: the registry's entries
import ``lowering`` from it without pulling in the rest."""
