"""The FG-AdaHAT paper folder. `METHODS` registers FG-AdaHAT once per importance measure (`fgadahat_<measure>`,
each with its published alpha and b_L in `configs/fgadahat_<measure>.yaml`) besides everything its tables compare."""

from adahat import METHODS as ADAHAT_METHODS
from fg_adahat.fgadahat import FGAdaHAT
from fg_adahat.importance import MEASURES


def measure_variant(measure: str) -> type:
    """FG-AdaHAT with one importance measure, under the name `fgadahat_<measure>`."""
    return type(f"FGAdaHAT_{measure.upper()}", (FGAdaHAT,),
                {"name": f"fgadahat_{measure}", "__module__": FGAdaHAT.__module__,
                 "__doc__": f"FG-AdaHAT with the {measure.upper()} importance measure."})


METHODS = {**ADAHAT_METHODS, FGAdaHAT.name: FGAdaHAT,
           **{f"fgadahat_{m}": measure_variant(m) for m in MEASURES}}
