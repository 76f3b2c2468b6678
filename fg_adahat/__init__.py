"""The FG-AdaHAT paper folder. `METHODS` registers FG-AdaHAT once per importance measure (`fgadahat_<measure>`,
the classes of `measures.py`, each with its published alpha and b_L in `configs/fgadahat_<measure>.yaml`) besides
everything its tables compare."""

from adahat import METHODS as ADAHAT_METHODS
from fg_adahat.fgadahat import FGAdaHAT
from fg_adahat.measures import MEASURE_METHODS

METHODS = {**ADAHAT_METHODS, FGAdaHAT.name: FGAdaHAT, **{cls.name: cls for cls in MEASURE_METHODS}}
